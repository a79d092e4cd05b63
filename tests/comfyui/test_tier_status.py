"""Makes the comfyui tier's state visible in every run, skipped or not."""

import pytest

from tests.conftest import COMFYUI_PATH, HAVE_COMFY, IN_CI


def test_comfyui_tier_available():
    if not HAVE_COMFY and IN_CI:
        pytest.fail(f"CI=true but no ComfyUI checkout at COMFYUI_PATH={COMFYUI_PATH}: the comfyui tier must run in CI")
    if not HAVE_COMFY:
        pytest.skip(f"ComfyUI tier SKIPPED: no ComfyUI checkout at COMFYUI_PATH={COMFYUI_PATH}")
    import comfy.model_management

    assert comfy.model_management.get_torch_device().type == "cpu"
