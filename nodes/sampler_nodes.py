"""Masked FLUX Sampler: layout + condition + sampling settings -> LATENT, through ComfyUI's sampler."""

from __future__ import annotations

import comfy.model_sampling
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview
import torch
from comfy_api.latest import io

from seg2any.adapters.comfyui_conditioning import build_conditionings, image_size
from seg2any.adapters.comfyui_demo import fitted
from seg2any.conditioning.contour import generation_size
from seg2any.errors import ModelMismatchError
from seg2any.flux import spec
from seg2any.sampling.schedule import flux_shift_mu, official_sigmas
from seg2any.sampling.trained_size import scale_images

from .common import attention_inputs, log
from .types import CATEGORY, Condition
from .types import Layout as LayoutType

OFFICIAL = "seg2any (official)"
NOISE_TIP = (
    "ComfyUI's noise: one CPU generator seeded once for the whole batch, so image i differs from a "
    "batch-1 run with seed + i and from the official infer.py, which draws image i on the GPU in bf16 with "
    "seed + i (python -m seg2any generate --noise official reproduces that)"
)


def checked_layout(model, layout, condition):
    """The layout at the size this model renders it, checked against the condition's size; logs
    one line when a model with a trained resolution (the demo) resizes it."""
    layout, fit = fitted(layout, model)
    if fit is not None:
        (log.warning if fit.vanished else log.info)("Seg2Any: %s", fit.message)
    if condition is not None:
        lay = layout.layout
        want = generation_size(lay.height, lay.width, condition.scale)
        if tuple(condition.image_size) != want:
            ch, cw = condition.image_size
            raise ModelMismatchError(
                f"the condition was encoded for {cw}x{ch} px but this model renders the {lay.width}x{lay.height} layout "
                f"at {want[1]}x{want[0]}: give the Entity Contour Encoder the same layout and this model's VAE"
            )
    return layout


def with_flux_shift(model, width: int, height: int):
    """FLUX.1-dev's resolution-dependent shift, as ComfyUI's ModelSamplingFlux node sets it."""

    class ModelSamplingAdvanced(comfy.model_sampling.ModelSamplingFlux, comfy.model_sampling.CONST):
        pass

    m = model.clone()
    ms = ModelSamplingAdvanced(model.model.model_config)
    ms.set_parameters(shift=flux_shift_mu(spec.image_tokens(height, width)))
    m.add_object_patch("model_sampling", ms)
    return m


class MaskedFluxSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Seg2AnyMaskedFluxSampler",
            display_name="Masked FLUX Sampler (Seg2Any)",
            category=CATEGORY,
            description=(
                "Samples a Seg2Any layout with ComfyUI's own samplers (progress bar, previews, interrupt). "
                "'seg2any (official)' is the upstream schedule; CFG > 1 runs true CFG with the layout's negative prompt. "
                "A model trained at one small size (the demo) samples the layout resized to it; 'Scale Image to "
                "Layout' brings the decoded image back to the layout's size."
            ),
            inputs=[
                io.Model.Input("model", tooltip="A FLUX model after Load Seg2Any LoRA"),
                LayoutType.Input("layout"),
                Condition.Input("condition", optional=True),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True, tooltip=NOISE_TIP),
                io.Int.Input("steps", default=28, min=1, max=200),
                io.Float.Input("guidance", default=3.5, min=0.0, max=100.0, step=0.1, tooltip="FLUX embedded guidance"),
                io.Float.Input(
                    "cfg", default=1.0, min=1.0, max=30.0, step=0.1, tooltip="> 1 enables true CFG (twice the compute)"
                ),
                io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, default="euler"),
                io.Combo.Input("scheduler", options=[OFFICIAL] + list(comfy.samplers.KSampler.SCHEDULERS), default=OFFICIAL),
                *attention_inputs(),
                io.Int.Input("batch_size", default=1, min=1, max=64),
            ],
            outputs=[io.Latent.Output()],
        )

    @classmethod
    def execute(
        cls,
        model,
        layout,
        seed,
        steps,
        guidance,
        cfg,
        sampler_name,
        scheduler,
        mode,
        shape_strength,
        isolation_blocks,
        batch_size,
        condition=None,
    ):
        layout = checked_layout(model, layout, condition)
        positive, negative = build_conditionings(layout, condition, mode, shape_strength, isolation_blocks, guidance)
        h, w = image_size(layout, condition)
        latent = torch.zeros(spec.latent_shape(batch_size, h, w))
        m = with_flux_shift(model, w, h)
        if scheduler == OFFICIAL:
            sigmas = official_sigmas(steps, spec.image_tokens(h, w))
        else:
            sigmas = comfy.samplers.calculate_sigmas(m.get_model_object("model_sampling"), scheduler, steps).cpu()
        noise = comfy.sample.prepare_noise(latent, seed)
        sampler = comfy.samplers.sampler_object(sampler_name)
        callback = latent_preview.prepare_callback(m, len(sigmas) - 1)
        samples = comfy.sample.sample_custom(
            m,
            noise,
            cfg,
            sampler,
            sigmas,
            positive,
            negative,
            latent,
            callback=callback,
            disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED,
            seed=seed,
        )
        return io.NodeOutput({"samples": samples})


class ScaleToLayout(io.ComfyNode):
    """The decoded image at the layout's size: the demo renders at its trained size, FLUX at the
    layout's size rounded down to a multiple of 16 x cond_scale_factor."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Seg2AnyScaleToLayout",
            display_name="Scale Image to Layout (Seg2Any)",
            category=CATEGORY,
            description=(
                "Resizes images to the layout's width x height (antialiased bicubic); images already that size pass "
                "through unchanged. Put it after VAE Decode when the model renders at another size (the demo model)."
            ),
            inputs=[io.Image.Input("image"), LayoutType.Input("layout")],
            outputs=[io.Image.Output(display_name="image")],
        )

    @classmethod
    def execute(cls, image, layout):
        lay = layout.layout
        return io.NodeOutput(scale_images(image, lay.height, lay.width))
