"""The official inference schedule (FlowMatchEulerDiscrete with FLUX.1-dev's dynamic shift)."""

from __future__ import annotations

import math

import torch


def flux_shift_mu(image_tokens: int, base_seq=256, max_seq=4096, base_shift=0.5, max_shift=1.15) -> float:
    """mu grows linearly with the image token count (and extrapolates above 4096, like upstream)."""
    m = (max_shift - base_shift) / (max_seq - base_seq)
    return image_tokens * m + (base_shift - m * base_seq)


def official_sigmas(steps: int, image_tokens: int) -> torch.Tensor:
    """sigma_k = e^mu / (e^mu + 1/s_k - 1) for s = linspace(1, 1/N, N), then a final 0."""
    if steps < 1:
        raise ValueError("steps must be >= 1")
    mu = flux_shift_mu(image_tokens)
    s = torch.linspace(1.0, 1.0 / steps, steps, dtype=torch.float64)
    shifted = math.exp(mu) / (math.exp(mu) + (1.0 / s - 1.0))
    return torch.cat([shifted, torch.zeros(1, dtype=torch.float64)]).float()
