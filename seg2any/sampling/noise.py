"""Initial noise: ComfyUI's (one CPU generator for the batch) or the official ``infer.py``'s.

ComfyUI's ``prepare_noise`` seeds one CPU generator and draws the whole (B, 16, h, w) latent from
it, so image i of a batch differs from a batch-1 run with seed + i, and the pixels do not depend on
the GPU. The official ``infer.py`` gives image i its own ``torch.Generator('cuda')`` seeded with
seed + i, and diffusers' ``randn_tensor`` draws a (1, 16, h, w) latent per generator on that device
in the pipeline's dtype (bf16), before 2x2 packing. Reproducing it bit for bit needs the same device
kind and dtype; the packing order then follows from :func:`seg2any.conditioning.condition_tokens.pack_latents`.
"""

from __future__ import annotations

import torch

KINDS = ("comfy", "official")


def comfy_noise(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """float32 on the CPU, exactly what ``comfy.sample.prepare_noise`` draws for a latent of ``shape``."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)


def official_noise(seed: int, shape: tuple[int, ...], device, dtype: torch.dtype) -> torch.Tensor:
    """Image i from its own generator on ``device`` seeded with seed + i, drawn in ``dtype``."""
    device = torch.device(device)
    rows = [
        torch.randn((1, *shape[1:]), generator=torch.Generator(device).manual_seed(seed + i), device=device, dtype=dtype)
        for i in range(shape[0])
    ]
    return torch.cat(rows, 0)


def initial_noise(kind: str, seed: int, shape: tuple[int, ...], device, dtype: torch.dtype) -> torch.Tensor:
    """(B, C, h, w) float32 on ``device``; ``dtype`` is the model's (the official draws in it)."""
    if kind == "comfy":
        return comfy_noise(seed, shape).to(device)
    if kind == "official":
        return official_noise(seed, shape, device, dtype).to(torch.float32)
    raise ValueError(f"noise must be one of {KINDS}, got {kind!r}")
