"""Entity Contour Encoder and Seg2Any Conditioning (for the stock samplers)."""

from __future__ import annotations

import numpy as np
import torch
from comfy_api.latest import io

from seg2any.adapters.comfyui_conditioning import build_conditionings, image_size
from seg2any.adapters.comfyui_demo import fitted
from seg2any.conditioning.condition_tokens import ConditionTokens, keep_mask_from_contour
from seg2any.conditioning.contour import entity_contour_map, generation_size
from seg2any.conditioning.settings import EncodedLayout
from seg2any.errors import ModelMismatchError
from seg2any.flux import spec

from .common import attention_inputs, log
from .types import CATEGORY, Condition
from .types import Layout as LayoutType


def encode_condition(vae, layout: EncodedLayout, cond_scale_factor: int) -> tuple[ConditionTokens, torch.Tensor]:
    """Contour map at image/s, VAE-encoded (posterior mean), with the empty-token keep mask."""
    lay = fitted(layout, vae)[0].layout
    h, w = generation_size(lay.height, lay.width, cond_scale_factor)
    if (h, w) != (lay.height, lay.width):
        log.info(
            "Seg2Any: %dx%d layout generates at %dx%d (multiple of %d)",
            lay.width,
            lay.height,
            w,
            h,
            spec.PIXELS_PER_TOKEN * cond_scale_factor,
        )
    contour = entity_contour_map(lay.masks, h, w, cond_scale_factor)
    image = torch.from_numpy(contour.astype(np.float32) / 255.0)[None]
    latent = vae.encode(image)
    if latent.ndim != 4 or latent.shape[1] != spec.LATENT_CHANNELS:
        raise ModelMismatchError(
            f"this VAE makes {latent.shape[1]}-channel latents; Seg2Any on FLUX needs the FLUX VAE "
            f"({spec.LATENT_CHANNELS} channels, ae.safetensors)"
        )
    keep = keep_mask_from_contour(contour)
    return ConditionTokens(latent.detach().float().cpu(), keep, cond_scale_factor, (h, w)), image


class ContourEncoder(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Seg2AnyEntityContourEncoder",
            display_name="Entity Contour Encoder (Seg2Any)",
            category=CATEGORY,
            description=(
                "Draws every entity's outline (white on black) at image / cond_scale_factor and VAE-encodes it into "
                "Seg2Any condition tokens; tokens with no outline are dropped. Use 2 at 1024 px (the SACap model), 1 at 512 px."
            ),
            inputs=[
                io.Vae.Input("vae"),
                LayoutType.Input("layout"),
                io.Int.Input("cond_scale_factor", default=2, min=1, max=4, tooltip="Contour map resolution = image / this"),
            ],
            outputs=[
                Condition.Output(display_name="condition"),
                io.Image.Output(display_name="contour_map"),
                io.Int.Output(display_name="width"),
                io.Int.Output(display_name="height"),
            ],
        )

    @classmethod
    def execute(cls, vae, layout, cond_scale_factor):
        cond, image = encode_condition(vae, layout, cond_scale_factor)
        h, w = cond.image_size
        return io.NodeOutput(cond, image, w, h)


class ConditioningNode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Seg2AnyConditioning",
            display_name="Seg2Any Conditioning",
            category=CATEGORY,
            description=(
                "Positive and negative CONDITIONING (the official true-CFG negative: the negative prompt in every region) "
                "plus an empty latent of the right size, for KSampler / SamplerCustomAdvanced with a Seg2Any model."
            ),
            inputs=[
                LayoutType.Input("layout"),
                Condition.Input(
                    "condition", optional=True, tooltip="Without it: Seg2Any masks and adapters, no condition tokens"
                ),
                *attention_inputs(),
                io.Float.Input("guidance", default=3.5, min=0.0, max=100.0, step=0.1),
                io.Int.Input("batch_size", default=1, min=1, max=64),
            ],
            outputs=[
                io.Conditioning.Output(display_name="positive"),
                io.Conditioning.Output(display_name="negative"),
                io.Latent.Output(display_name="latent"),
            ],
        )

    @classmethod
    def execute(cls, layout, mode, shape_strength, isolation_blocks, guidance, batch_size, condition=None):
        pos, neg = build_conditionings(layout, condition, mode, shape_strength, isolation_blocks, guidance)
        h, w = image_size(layout, condition)
        latent = torch.zeros(spec.latent_shape(batch_size, h, w))
        return io.NodeOutput(pos, neg, {"samples": latent})
