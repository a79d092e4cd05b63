"""Test tiers.

* core    - pure PyTorch/NumPy, always runs.
* comfyui - needs a real ComfyUI checkout at $COMFYUI_PATH (default /opt/ComfyUI); skipped with a
            loud line when it is absent.
* gpu     - needs CUDA; skipped elsewhere.
* slow    - long-running; opt in with --run-slow.
"""

from __future__ import annotations

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _find_shared() -> str:
    """The team's shared folder (official example layouts, T5 tokenizer): $SEG2ANY_SHARED, else
    beside the checkout, else /work/shared (where CI clones elsewhere)."""
    if os.environ.get("SEG2ANY_SHARED"):
        return os.environ["SEG2ANY_SHARED"]
    for cand in (os.path.join(os.path.dirname(ROOT), "shared"), "/work/shared"):
        if os.path.isdir(os.path.join(cand, "data")):
            return cand
    return os.path.join(os.path.dirname(ROOT), "shared")


def _is_comfy(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "comfy", "model_management.py"))


def _find_comfy() -> str:
    """$COMFYUI_PATH, else /opt/ComfyUI, else the oldest snapshot .ci/run extracted into .cache/comfyui/
    (so a plain ``python -m pytest tests`` after one ``bash .ci/run`` still runs the comfyui tier)."""
    if os.environ.get("COMFYUI_PATH"):
        return os.environ["COMFYUI_PATH"]
    if _is_comfy("/opt/ComfyUI"):
        return "/opt/ComfyUI"
    cache = os.path.join(ROOT, ".cache", "comfyui")
    found = sorted(
        (os.path.join(cache, d) for d in (os.listdir(cache) if os.path.isdir(cache) else ())),
        key=lambda d: [int(x) if x.isdigit() else x for x in os.path.basename(d).replace("-", ".").split(".")],
    )
    found = [d for d in found if _is_comfy(d)]
    return found[0] if found else "/opt/ComfyUI"


SHARED = _find_shared()
COMFYUI_PATH = _find_comfy()
HAVE_COMFY = _is_comfy(COMFYUI_PATH)
# In CI (CI=true) a tier whose prerequisites are missing is a failure, never a quiet skip.
IN_CI = os.environ.get("CI", "").lower() == "true"

if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False, help="run tests marked slow")


def pytest_configure(config):
    # measured attention choices ("auto" on CUDA) go to a file of this run, not the user's cache
    if "SEG2ANY_TUNING_FILE" not in os.environ:
        import tempfile

        os.environ["SEG2ANY_TUNING_FILE"] = os.path.join(tempfile.mkdtemp(prefix="seg2any-tuning-"), "choices.json")
    for name, text in [
        ("comfyui", "needs a real ComfyUI at $COMFYUI_PATH"),
        ("gpu", "needs a CUDA device"),
        ("slow", "long-running; enabled with --run-slow"),
    ]:
        config.addinivalue_line("markers", f"{name}: {text}")


def pytest_collection_modifyitems(config, items):
    import torch

    skip_comfy = pytest.mark.skip(reason=f"ComfyUI tier SKIPPED: no ComfyUI at COMFYUI_PATH={COMFYUI_PATH}")
    skip_gpu = pytest.mark.skip(reason="GPU tier SKIPPED: no CUDA device")
    skip_slow = pytest.mark.skip(reason="slow test: pass --run-slow")
    for item in items:
        path = str(item.fspath)
        if f"{os.sep}comfyui{os.sep}" in path:
            item.add_marker("comfyui")
            if not HAVE_COMFY and not IN_CI:
                item.add_marker(skip_comfy)
        if f"{os.sep}gpu{os.sep}" in path:
            item.add_marker("gpu")
            if not torch.cuda.is_available():
                item.add_marker(skip_gpu)
        if "slow" in item.keywords and not config.getoption("--run-slow"):
            item.add_marker(skip_slow)


def pytest_report_header(config):
    import torch

    comfy = f"ComfyUI at {COMFYUI_PATH}" if HAVE_COMFY else f"NO ComfyUI at {COMFYUI_PATH}: comfyui tier will be SKIPPED"
    gpu = "CUDA available" if torch.cuda.is_available() else "no CUDA: gpu tier will be SKIPPED"
    shared = SHARED if os.path.isdir(SHARED) else f"NOT FOUND at {SHARED}: official-example tests will be SKIPPED"
    return [f"seg2any tiers: core=on; comfyui: {comfy}; gpu: {gpu}", f"seg2any shared data: {shared}"]


@pytest.fixture(scope="session")
def shared_dir():
    if not os.path.isdir(SHARED):
        pytest.skip(f"shared data folder not found at {SHARED} (set SEG2ANY_SHARED)")
    return SHARED
