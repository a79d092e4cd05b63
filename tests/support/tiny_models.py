"""Tiny random text encoder and VAE in the formats the demo and ComfyUI use (test-only)."""

from __future__ import annotations

import math

import torch


def tiny_t5_config(d_model: int = 32) -> dict:
    """The demo's small T5 family (training.models.TINY_T5) at another width."""
    from training.models import TINY_T5

    return dict(TINY_T5, d_model=d_model, d_ff=2 * d_model)


def random_like(shapes: dict, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in sorted(shapes.items()):
        if len(shape) == 0:
            out[k] = torch.tensor(1.0)
        elif k.endswith(("norm.weight", "norm1.weight", "norm2.weight", "norm_out.weight", "layer_norm.weight")) or (
            len(shape) == 1 and "norm" in k and k.endswith("weight")
        ):
            out[k] = torch.ones(shape)
        elif k.endswith(".bias") or len(shape) == 1:
            out[k] = 0.02 * torch.randn(shape, generator=g)
        else:
            fan_in = math.prod(shape[1:])
            out[k] = torch.randn(shape, generator=g) / math.sqrt(fan_in)
    return out


def tiny_t5_state_dict(cfg: dict, seed: int = 0) -> dict:
    from transformers import T5Config, T5EncoderModel

    m = T5EncoderModel(T5Config(**cfg))
    sd = {k: v for k, v in m.state_dict().items() if k != "encoder.embed_tokens.weight"}
    return random_like({k: v.shape for k, v in sd.items()}, seed)


TINY_VAE = {
    "double_z": True,
    "z_channels": 16,
    "resolution": 256,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 32,
    "ch_mult": [1, 1, 2, 2],
    "num_res_blocks": 1,
    "attn_resolutions": [],
    "dropout": 0.0,
}


def tiny_vae_state_dict(seed: int = 0) -> dict:
    """Random weights for ComfyUI's AutoencoderKL with TINY_VAE (shapes taken from the real class)."""
    from comfy.ldm.models.autoencoder import AutoencoderKL

    m = AutoencoderKL(ddconfig=TINY_VAE, embed_dim=16)
    return random_like({k: v.shape for k, v in m.state_dict().items()}, seed)
