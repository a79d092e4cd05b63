"""Load Seg2Any Demo Model: the small model trained here, so a workflow runs with no downloads."""

from __future__ import annotations

import os

from comfy_api.latest import io

from seg2any.adapters.comfyui_demo import load_demo

from .common import DEMO_DIR
from .types import CATEGORY


class DemoModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Seg2AnyDemoModelLoader",
            display_name="Load Seg2Any Demo Model",
            category=CATEGORY,
            description=(
                "A few-MB FLUX-architecture model trained on synthetic coloured shapes, with its own small T5 and VAE. "
                "Pair it with the 'seg2any_demo_lora/' checkpoint in Load Seg2Any LoRA. For real images use FLUX.1-dev "
                "and the official Seg2Any weights."
            ),
            inputs=[],
            outputs=[io.Model.Output(), io.Clip.Output(), io.Vae.Output()],
        )

    @classmethod
    def execute(cls):
        if not os.path.isfile(os.path.join(DEMO_DIR, "flux.safetensors")):
            raise FileNotFoundError(f"the demo model is missing from {DEMO_DIR}; reinstall the pack or run training/make_demo.py")
        model, clip, vae = load_demo(DEMO_DIR)
        return io.NodeOutput(model, clip, vae)
