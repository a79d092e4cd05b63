"""ComfyUI entry point of the Seg2Any node pack (V3 nodes through ``comfy_entrypoint``).

The pack root goes on ``sys.path`` so its method package ``seg2any`` imports by name; the node
classes live in the pack-relative ``nodes`` package (ComfyUI owns the top-level name ``nodes``).
Outside ComfyUI (the CLI, the core tests) this file defines nothing.
"""

import os
import sys

_ROOT = os.path.dirname(os.path.abspath(__file__))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

WEB_DIRECTORY = "./web"

try:
    import comfy_api.latest  # noqa: F401
except ImportError:  # not running inside ComfyUI
    pass
else:
    from .nodes import comfy_entrypoint  # noqa: F401
