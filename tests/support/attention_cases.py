"""Random Seg2Any attention problems (layouts with overlaps, background, condition tokens, batch
padding) and their float64 reference, shared by the core, comfyui-free GPU and benchmark code."""

from __future__ import annotations

import math

import numpy as np
import torch

from seg2any.attention.rules import MaskRule, SequencePlan, dense_mask, row_layout


def random_masks(rng, n: int, size: int = 64) -> np.ndarray:
    """n rectangles (overlapping at random, leaving some background) on a size x size canvas."""
    masks = np.zeros((n, size, size), bool)
    for i in range(n):
        h, w = rng.integers(size // 8, size // 2 + 1, 2)
        y, x = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
        masks[i, y : y + h, x : x + w] = True
    return masks


def pixel_masks(n: int = 10, size: int = 1024, seed: int = 0) -> np.ndarray:
    """n rectangles of 100-400 px at random places on a size x size image (GPU-size layouts)."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), bool)
    for i in range(n):
        y, x = rng.integers(0, size - 200, 2)
        h, w = rng.integers(100, 400, 2)
        masks[i, y : y + h, x : x + w] = True
    return masks


def random_row(rng, n: int, grid: tuple[int, int], n_cond: int, mode: str = "hard", global_len: int | None = None):
    text = (int(rng.integers(2, 9)) if global_len is None else global_len,) + tuple(int(t) for t in rng.integers(1, 6, n))
    return row_layout(text, random_masks(rng, n), grid, n_cond, mode)


def plan_of(seed: int, specs, *, reorder: bool = True, bucket: int = 1, mode: str = "hard") -> SequencePlan:
    """specs: [(entities, (gh, gw), n_cond), ...] -> a batch plan (rows padded to one length)."""
    rng = np.random.default_rng(seed)
    return SequencePlan.build([random_row(rng, n, g, c, mode) for n, g, c in specs], bucket=bucket, reorder=reorder)


def qkv(B: int, H: int, L: int, D: int, seed: int = 0, dtype=torch.float64, device="cpu"):
    g = torch.Generator(device=device).manual_seed(seed)
    return tuple(torch.randn(B, H, L, D, generator=g, device=device, dtype=dtype) for _ in range(3))


def reference(q, k, v, tags, rule: MaskRule) -> torch.Tensor:
    """Softmax attention in float64 with the rules' dense bias (B, 1, L, L)."""
    bias = dense_mask(tags, rule, dtype=torch.float64)
    s = (q.double() @ k.double().transpose(-1, -2)) / math.sqrt(q.shape[-1]) + bias
    return torch.softmax(s, -1) @ v.double()


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())
