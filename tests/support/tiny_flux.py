"""Tiny random FLUX models and LoRAs for the comfyui tier, plus name conversion helpers.

Weights are drawn so every part of the network matters (non-trivial modulation, norms near 1);
the diffusers-named view of the same weights comes from ComfyUI's own ``flux_to_diffusers`` map,
so tests do not depend on our mapping code to build their expectations.
"""

from __future__ import annotations

import math

import torch

from seg2any.flux.lora_format import LoraFactor, ModelDims, Seg2AnyLora, cond_targets, default_targets

TINY = dict(hidden_size=64, num_heads=2, axes_dim=[8, 12, 12], depth=2, depth_single_blocks=2, context_in_dim=32, vec_in_dim=16)


def checkpoint_shapes(model_patcher) -> dict[str, torch.Size]:
    """Parameter shapes of a ComfyUI FLUX under the names its checkpoints use (BFL's).

    ComfyUI 0.17 and later build QK-norms as ``torch.nn.RMSNorm`` (``.weight``) and rename the
    checkpoints' ``.scale`` on load; a test model must be written the way real files are.
    """
    dm = model_patcher.model.diffusion_model
    shapes = {}
    for path, module in dm.named_modules():
        for name, p in module.named_parameters(recurse=False):
            if isinstance(module, torch.nn.RMSNorm) and name == "weight":
                name = "scale"
            shapes[f"{path}.{name}" if path else name] = p.shape
    return shapes


def random_flux_sd(shapes: dict[str, torch.Size], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in sorted(shapes.items()):
        if k.endswith(".scale"):
            sd[k] = 1.0 + 0.1 * torch.randn(shape, generator=g)
        elif k.endswith(".bias"):
            sd[k] = 0.05 * torch.randn(shape, generator=g)
        else:
            fan_in = shape[1] if len(shape) > 1 else shape[0]
            sd[k] = torch.randn(shape, generator=g) / math.sqrt(fan_in)
    return sd


def comfy_to_diffusers(sd: dict[str, torch.Tensor], params: dict) -> dict[str, torch.Tensor]:
    """FLUX checkpoint -> diffusers FluxTransformer2DModel names (unfused q/k/v), by ComfyUI's maps.

    The checkpoint goes through the running ComfyUI's own loader renaming first (its key map
    speaks its module names), and only names a real diffusers FLUX has are kept: ComfyUI's map
    also lists aliases for other trainers' files (LyCORIS ``ff.linear_in``, FLUX.2).
    """
    import comfy.supported_models
    import comfy.utils

    sd = comfy.supported_models.Flux({"image_model": "flux"}).process_unet_state_dict(dict(sd))
    key_map = comfy.utils.flux_to_diffusers(
        {"depth": params["depth"], "depth_single_blocks": params["depth_single_blocks"], "hidden_size": params["hidden_size"]},
        output_prefix="",
    )
    wanted = _diffusers_names(params)
    out = {}
    for dk, target in key_map.items():
        if dk not in wanted:
            continue
        if isinstance(target, str):
            if target in sd:
                out[dk] = sd[target]
            continue
        if len(target) == 2:
            ck, (dim, start, length) = target
            if ck in sd:
                out[dk] = sd[ck].narrow(dim, start, length).clone()
        else:
            ck, fn = target[0], target[2]
            if ck in sd:
                # ComfyUI's map is diffusers->comfy; the swap is its own inverse.
                out[dk] = fn(sd[ck])
    return out


def _diffusers_names(params: dict) -> set[str]:
    from diffusers import FluxTransformer2DModel

    from seg2any.adapters.diffusers_pipeline import flux_config_from_params

    with torch.device("meta"):
        return set(FluxTransformer2DModel(**flux_config_from_params(params)).state_dict())


def random_lora(params: dict, rank: int = 4, seed: int = 1, scale_b: float = 0.05, with_cond: bool = True) -> Seg2AnyLora:
    """Both adapters with non-zero B (PEFT init would make B = 0 and hide routing bugs)."""
    g = torch.Generator().manual_seed(seed)
    h = params["hidden_size"]
    dims = ModelDims(
        params["depth"],
        params["depth_single_blocks"],
        h,
        int(h * params.get("mlp_ratio", 4.0)),
        params.get("in_channels", 16) * 4,
    )

    def make(names):
        out = {}
        for n in names:
            fin, fout = dims.linear_shape(n)
            out[n] = LoraFactor(
                torch.randn(rank, fin, generator=g) / math.sqrt(fin),
                scale_b * torch.randn(fout, rank, generator=g),
                1.0,
            )
        return out

    default = make(default_targets(dims.n_double, dims.n_single))
    cond = make(cond_targets(dims.n_double, dims.n_single)) if with_cond else {}
    return Seg2AnyLora(default, cond, source="random")
