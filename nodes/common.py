"""What every node module shares: the pack's paths (computed once), the logger, shared inputs.

Node modules import only this module and :mod:`.types` from ``nodes/``, never each other; logic
two nodes need lives below ``nodes/`` (in ``seg2any/``), so a node module reads top to bottom.
Everything is reported through the ``seg2any`` logger (ComfyUI's console shows INFO and up).
"""

from __future__ import annotations

import logging
import os

from comfy_api.latest import io

from seg2any.attention.rules import MODES
from seg2any.flux import spec

log = logging.getLogger("seg2any")

PACK_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_DIR = os.path.join(PACK_ROOT, "seg2any", "demo")  # the shipped demo model and its LoRA
SPIECE = os.path.join(DEMO_DIR, "spiece.model")  # the T5 tokenizer model (the editor's token counts)
EXAMPLE_LAYOUTS = os.path.join(PACK_ROOT, "example_workflows", "layouts")

ISOLATION_TIP = (
    "Joint blocks with attribute isolation: 'auto' = the official {}-{} for FLUX (first half of the single blocks), "
    "'none', or 'A-B'".format(*spec.ISOLATION_BLOCKS)
)


def attention_inputs():
    """The Seg2Any attention settings, the same on the Conditioning node and the sampler."""
    return [
        io.Combo.Input(
            "mode",
            options=list(MODES),
            default="hard",
            tooltip="hard: semantic alignment + attribute isolation; base: alignment only; place: PLACE-style soft masks",
        ),
        io.Float.Input(
            "shape_strength",
            default=1.0,
            min=0.01,
            max=1.0,
            step=0.01,
            tooltip="alpha: < 1 loosens how tightly shapes follow the masks",
        ),
        io.String.Input("isolation_blocks", default="auto", tooltip=ISOLATION_TIP),
    ]
