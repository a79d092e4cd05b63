"""Build ComfyUI FLUX / VAE objects of any size from state dicts, the way ComfyUI's loaders do.

ComfyUI's UNETLoader infers FLUX sizes from the weights but fixes the head count and RoPE axes
(so nothing narrower than 3072 loads). The shipped demo model and the tests need small FLUX
models, so this module goes through the same classes (``supported_models.Flux`` ->
``model_base.Flux`` -> ``ModelPatcher``) with explicit parameters instead.
"""

from __future__ import annotations

import dataclasses

import comfy.ldm.flux.model
import comfy.model_management
import comfy.model_patcher
import comfy.sd
import comfy.supported_models
import torch

from ..flux import spec


def flux_params(**overrides) -> dict:
    """A complete FluxParams dict for the running ComfyUI (fields differ between versions)."""
    base = {  # FLUX.1-dev
        "in_channels": spec.LATENT_CHANNELS,
        "out_channels": spec.LATENT_CHANNELS,
        "vec_in_dim": spec.VEC_IN_DIM,
        "context_in_dim": spec.CONTEXT_DIM,
        "hidden_size": spec.HIDDEN,
        "mlp_ratio": spec.MLP_RATIO,
        "num_heads": spec.HEADS,
        "depth": spec.DOUBLE_BLOCKS,
        "depth_single_blocks": spec.SINGLE_BLOCKS,
        "axes_dim": list(spec.AXES_DIM),
        "theta": spec.ROPE_THETA,
        "patch_size": spec.PATCH,
        "qkv_bias": True,
        "guidance_embed": True,
        "txt_ids_dims": [],
    }
    defaults = dict(base)
    base.update(overrides)
    names = {f.name for f in dataclasses.fields(comfy.ldm.flux.model.FluxParams)}
    # a field newer ComfyUI versions added (e.g. txt_ids_dims) may be dropped when it holds its
    # neutral value: older versions behave exactly like that; any other value needs the newer one
    unknown = {k for k in set(overrides) - names if not (k in defaults and overrides[k] == defaults[k])}
    if unknown:
        raise ValueError(
            f"FluxParams of this ComfyUI has no field(s) {sorted(unknown)} with non-default values; update ComfyUI to load this model"
        )
    return {k: v for k, v in base.items() if k in names}


def build_flux(params: dict, state_dict: dict | None = None, dtype=torch.float32, manual_cast_dtype=None):
    """A ModelPatcher around ``model_base.Flux`` with ``params``, loaded from ``state_dict``.

    Without a state dict the weights stay as initialised (for benchmarks with random weights).
    The state dict is in checkpoint names (BFL's, QK-norms ``.scale``); ComfyUI's own
    ``process_unet_state_dict`` renames them for its modules, as its UNETLoader does (0.17 and
    later name QK-norms ``.weight``). Missing or unexpected keys raise: a partially loaded model
    would be garbage.
    """
    cfg = dict(params)
    cfg["image_model"] = "flux"
    guidance = cfg.get("guidance_embed", True)
    klass = comfy.supported_models.Flux if guidance else comfy.supported_models.FluxSchnell
    model_config = klass(cfg)
    model_config.set_inference_dtype(dtype, manual_cast_dtype)
    model = model_config.get_model({})
    if state_dict is not None:
        dm = model.diffusion_model
        missing, unexpected = dm.load_state_dict(model_config.process_unet_state_dict(_strip(state_dict)), strict=False)
        if missing or unexpected:
            raise ValueError(f"FLUX state dict does not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")
    load = comfy.model_management.get_torch_device()
    offload = comfy.model_management.unet_offload_device()
    return comfy.model_patcher.ModelPatcher(model, load_device=load, offload_device=offload)


def _strip(sd: dict) -> dict:
    prefix = "model.diffusion_model."
    if any(k.startswith(prefix) for k in sd):
        return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
    return sd


def build_vae(state_dict: dict, ddconfig: dict, embed_dim: int):
    """A ComfyUI VAE (``comfy.sd.VAE``) with an explicit AutoencoderKL configuration.

    ``comfy.sd.VAE`` accepts a config for exactly this, but keeps its default latent channel
    count; we set the real one on the instance.
    """
    vae = comfy.sd.VAE(sd=state_dict, config={"params": {"ddconfig": ddconfig, "embed_dim": embed_dim}})
    vae.latent_channels = int(ddconfig["z_channels"])
    return vae
