"""Full FLUX weights between diffusers names (unfused q/k/v) and ComfyUI/BFL names (fused).

The trainer works on diffusers' FluxTransformer2DModel; ComfyUI loads BFL-style weights. The
mapping mirrors ComfyUI's own ``comfy.utils.flux_to_diffusers`` (a drift test compares them):
q/k/v (and in single blocks the MLP input) are stacked into one Linear, and the final
AdaLayerNormContinuous stores (scale, shift) where BFL stores (shift, scale).
"""

from __future__ import annotations

import torch

from . import spec
from .lora_format import ModelDims

# the unfused Linears (diffusers -> ComfyUI names); the fused q/k/v(/mlp) ones are stacked below
_DOUBLE = {d: c for d, (c, slot) in spec.DOUBLE_LINEARS.items() if slot is None}
_DOUBLE_NORMS = {
    "attn.norm_q.weight": "img_attn.norm.query_norm.scale",
    "attn.norm_k.weight": "img_attn.norm.key_norm.scale",
    "attn.norm_added_q.weight": "txt_attn.norm.query_norm.scale",
    "attn.norm_added_k.weight": "txt_attn.norm.key_norm.scale",
}
_SINGLE = {d: c for d, (c, slot) in spec.SINGLE_LINEARS.items() if slot is None}
_SINGLE_NORMS = {"attn.norm_q.weight": "norm.query_norm.scale", "attn.norm_k.weight": "norm.key_norm.scale"}
_TOP = {
    "x_embedder": "img_in",
    "context_embedder": "txt_in",
    "proj_out": "final_layer.linear",
    "time_text_embed.timestep_embedder.linear_1": "time_in.in_layer",
    "time_text_embed.timestep_embedder.linear_2": "time_in.out_layer",
    "time_text_embed.text_embedder.linear_1": "vector_in.in_layer",
    "time_text_embed.text_embedder.linear_2": "vector_in.out_layer",
    "time_text_embed.guidance_embedder.linear_1": "guidance_in.in_layer",
    "time_text_embed.guidance_embedder.linear_2": "guidance_in.out_layer",
}


def _swap_halves(t: torch.Tensor) -> torch.Tensor:
    a, b = t.chunk(2, dim=0)
    return torch.cat([b, a], dim=0)


def _norm_scale(key: str) -> str:
    return key[: -len(".weight")] + ".scale" if key.endswith("_norm.weight") else key


def _norm_names(dims: ModelDims):
    """(diffusers name, checkpoint name) of every QK-norm."""
    for i in range(dims.n_double):
        for d, c in _DOUBLE_NORMS.items():
            yield f"transformer_blocks.{i}.{d}", f"double_blocks.{i}.{c}"
    for i in range(dims.n_single):
        for d, c in _SINGLE_NORMS.items():
            yield f"single_transformer_blocks.{i}.{d}", f"single_blocks.{i}.{c}"


def diffusers_to_comfy(sd: dict[str, torch.Tensor], dims: ModelDims) -> dict[str, torch.Tensor]:
    """diffusers FluxTransformer2DModel state dict -> ComfyUI Flux state dict."""
    out: dict[str, torch.Tensor] = {}
    for end in ("weight", "bias"):
        for d, c in _TOP.items():
            if f"{d}.{end}" in sd:
                out[f"{c}.{end}"] = sd[f"{d}.{end}"]
        if f"norm_out.linear.{end}" in sd:
            out[f"final_layer.adaLN_modulation.1.{end}"] = _swap_halves(sd[f"norm_out.linear.{end}"])
        for i in range(dims.n_double):
            p, q = f"transformer_blocks.{i}", f"double_blocks.{i}"
            out[f"{q}.img_attn.qkv.{end}"] = torch.cat([sd[f"{p}.attn.to_{x}.{end}"] for x in "qkv"])
            out[f"{q}.txt_attn.qkv.{end}"] = torch.cat([sd[f"{p}.attn.add_{x}_proj.{end}"] for x in "qkv"])
            for d, c in _DOUBLE.items():
                out[f"{q}.{c}.{end}"] = sd[f"{p}.{d}.{end}"]
        for i in range(dims.n_single):
            p, q = f"single_transformer_blocks.{i}", f"single_blocks.{i}"
            out[f"{q}.linear1.{end}"] = torch.cat([sd[f"{p}.attn.to_{x}.{end}"] for x in "qkv"] + [sd[f"{p}.proj_mlp.{end}"]])
            for d, c in _SINGLE.items():
                out[f"{q}.{c}.{end}"] = sd[f"{p}.{d}.{end}"]
    for d, c in _norm_names(dims):
        out[c] = sd[d]
    return out


def comfy_to_diffusers(sd: dict[str, torch.Tensor], dims: ModelDims) -> dict[str, torch.Tensor]:
    """The inverse of :func:`diffusers_to_comfy`.

    Accepts QK-norms as ``.scale`` (BFL checkpoints, ComfyUI before 0.17) or ``.weight`` (what
    ComfyUI 0.17 and later name them in memory and save).
    """
    sd = {_norm_scale(k): v for k, v in sd.items()}
    h, m = dims.hidden, dims.mlp_hidden
    out: dict[str, torch.Tensor] = {}
    for end in ("weight", "bias"):
        for d, c in _TOP.items():
            if f"{c}.{end}" in sd:
                out[f"{d}.{end}"] = sd[f"{c}.{end}"]
        if f"final_layer.adaLN_modulation.1.{end}" in sd:
            out[f"norm_out.linear.{end}"] = _swap_halves(sd[f"final_layer.adaLN_modulation.1.{end}"])
        for i in range(dims.n_double):
            p, q = f"transformer_blocks.{i}", f"double_blocks.{i}"
            for x, t in zip("qkv", sd[f"{q}.img_attn.qkv.{end}"].split(h)):
                out[f"{p}.attn.to_{x}.{end}"] = t
            for x, t in zip("qkv", sd[f"{q}.txt_attn.qkv.{end}"].split(h)):
                out[f"{p}.attn.add_{x}_proj.{end}"] = t
            for d, c in _DOUBLE.items():
                out[f"{p}.{d}.{end}"] = sd[f"{q}.{c}.{end}"]
        for i in range(dims.n_single):
            p, q = f"single_transformer_blocks.{i}", f"single_blocks.{i}"
            parts = sd[f"{q}.linear1.{end}"].split([h, h, h, m])
            for x, t in zip("qkv", parts[:3]):
                out[f"{p}.attn.to_{x}.{end}"] = t
            out[f"{p}.proj_mlp.{end}"] = parts[3]
            for d, c in _SINGLE.items():
                out[f"{p}.{d}.{end}"] = sd[f"{q}.{c}.{end}"]
    for d, c in _norm_names(dims):
        out[d] = sd[c]
    return out
