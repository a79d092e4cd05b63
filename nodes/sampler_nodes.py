"""Masked FLUX Sampler: layout + condition + sampling settings -> LATENT, through ComfyUI's sampler."""

from __future__ import annotations

import comfy.model_sampling
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview
import torch
from comfy_api.latest import io

from seg2any.schedule import flux_shift_mu, official_sigmas

from .condition_nodes import attention_inputs, build_conditionings, image_size
from .types import CATEGORY, Condition
from .types import Layout as LayoutType

OFFICIAL = "seg2any (official)"


def with_flux_shift(model, width: int, height: int):
    """FLUX.1-dev's resolution-dependent shift, as ComfyUI's ModelSamplingFlux node sets it."""

    class ModelSamplingAdvanced(comfy.model_sampling.ModelSamplingFlux, comfy.model_sampling.CONST):
        pass

    m = model.clone()
    ms = ModelSamplingAdvanced(model.model.model_config)
    ms.set_parameters(shift=flux_shift_mu((width // 16) * (height // 16)))
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
                "'seg2any (official)' is the upstream schedule; CFG > 1 runs true CFG with the layout's negative prompt."
            ),
            inputs=[
                io.Model.Input("model", tooltip="A FLUX model after Load Seg2Any LoRA"),
                LayoutType.Input("layout"),
                Condition.Input("condition", optional=True),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True),
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
        positive, negative = build_conditionings(layout, condition, mode, shape_strength, isolation_blocks, guidance)
        h, w = image_size(layout, condition)
        latent = torch.zeros((batch_size, 16, h // 8, w // 8))
        m = with_flux_shift(model, w, h)
        if scheduler == OFFICIAL:
            sigmas = official_sigmas(steps, (h // 16) * (w // 16))
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
