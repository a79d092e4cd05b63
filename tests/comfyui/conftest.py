"""Import the real ComfyUI in-process, CPU only, before any test module touches it."""

from __future__ import annotations

import os
import sys

from tests.conftest import COMFYUI_PATH, HAVE_COMFY

if HAVE_COMFY:
    if COMFYUI_PATH not in sys.path:
        sys.path.insert(0, COMFYUI_PATH)
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    import comfy.cli_args  # noqa: E402

    comfy.cli_args.args.cpu = True
    comfy.cli_args.args.use_pytorch_cross_attention = True
    import comfy.model_management  # noqa: E402,F401
else:
    # Nothing here can import without ComfyUI; test_tier_status.py reports the skip loudly.
    collect_ignore_glob = ["test_[!t]*.py"]
