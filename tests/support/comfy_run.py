"""Run a (patched) ComfyUI FLUX directly or through ComfyUI's real sampling code."""

from __future__ import annotations

import comfy.patcher_extension
import comfy.sampler_helpers
import comfy.samplers
import torch

from seg2any.adapters.comfyui import COND_KEY, Seg2AnyBatch


def direct(patcher, x, t, context, y, guidance, infos=None, control=None, extra_options=None):
    """One diffusion-model call with the patcher's weights and wrappers active (any dtype)."""
    dm = patcher.model.diffusion_model
    topts = {"wrappers": patcher.wrappers, **(extra_options or {})}
    kwargs = {} if infos is None else {COND_KEY: Seg2AnyBatch(list(infos))}
    with torch.inference_mode():  # ComfyUI runs nodes (and so weight patching) in inference mode
        patcher.patch_model()
        try:
            return dm(x, t, context=context, y=y, guidance=guidance, control=control, transformer_options=topts, **kwargs)
        finally:
            patcher.unpatch_model()


def denoise(patcher, x_in, sigma, positive, negative=None, cfg=1.0):
    """ComfyUI's own CFGGuider + one Euler step from sigma to 0, which returns the (CFG-combined)
    denoised latent for input ``x_in`` (model space, batch of any size)."""
    guider = comfy.samplers.CFGGuider(patcher)
    guider.set_conds(positive, negative if negative is not None else positive)
    guider.set_cfg(cfg)
    sampler = comfy.samplers.sampler_object("euler")
    sigmas = torch.tensor([float(sigma), 0.0])
    noise = x_in / sigma
    latent = torch.zeros_like(x_in)
    out = guider.sample(noise, latent, sampler, sigmas, disable_pbar=True, seed=0)
    return patcher.model.process_latent_in(out)
