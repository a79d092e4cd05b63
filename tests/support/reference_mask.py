"""Dense float64 attention bias, built the way the official pipeline builds it.

This is the *reference* the compact rules are tested against, so it deliberately shares no
logic with :mod:`seg2any.attention.rules`: it walks the official algorithm
(``pipeline_flux.py: prepare_attention_mask``) step by step on an L x L permission matrix with
entries in {0, 1, alpha, fraction}, then takes the log. Never use it at run time: it is O(L^2)
float64 per sample and per mask kind.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def official_bias(
    text_lens: list[int],
    masks: np.ndarray,
    grid: tuple[int, int],
    n_cond: int,
    *,
    text_pad: int = 0,
    cond_pad: int = 0,
    alpha: float = 1.0,
    mode: str = "base",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(base bias, hard bias or None), each (L, L) float64 with 0 / log(w) / -inf entries.

    ``text_lens`` = [len T0, len T1..TN]; a nonzero ``text_pad`` is appended as one extra text
    segment (the official batch padding), ``cond_pad`` padding tokens follow the condition tokens.
    """
    h, w = grid
    seg_lens = list(text_lens) + ([text_pad] if text_pad else [])
    T = sum(seg_lens)
    n_img = h * w
    L = T + n_img + n_cond + cond_pad
    A = torch.zeros((L, L), dtype=torch.float64)
    img0, img1 = T, T + n_img
    cond1 = img1 + n_cond
    g = text_lens[0]

    A[img0:cond1, img0:cond1] = 1
    A[img0:img1, img1:cond1] = alpha
    A[img1:cond1, img0:img1] = alpha
    A[:g, :g] = 1
    A[:g, img0:img1] = 1
    A[img0:img1, :g] = 1
    if cond_pad:
        A[:, -cond_pad:] = 0
        A[-cond_pad:, :] = 0
        A[-cond_pad:, -cond_pad:] = 1

    if mode == "hard":
        self_attend = torch.zeros((n_img, n_img), dtype=torch.bool)
        union = torch.zeros((n_img, n_img), dtype=torch.bool)
        fg = torch.zeros((n_img,), dtype=torch.bool)

    offsets = np.cumsum([0] + seg_lens[1:])
    for i in range(len(offsets) - 1):
        s, e = g + int(offsets[i]), g + int(offsets[i + 1])
        A[s:e, s:e] = 1
        if i >= masks.shape[0]:
            continue  # the text padding segment
        m = torch.from_numpy(masks[i].astype(np.float64))
        if mode in ("base", "hard"):
            col = F.interpolate(m[None, None], (h, w), mode="nearest-exact").flatten()
        else:  # place: area fraction; exact multiples use the official pixel_unshuffle mean
            fh, fw = m.shape[0] // h, m.shape[1] // w
            col = F.avg_pool2d(m[None, None], (fh, fw)).flatten()
        A[s:e, img0:img1] = col[None, :]
        A[img0:img1, s:e] = col[:, None]
        if mode == "hard":
            mb = col > 0
            fg |= mb
            self_attend |= mb[:, None] & mb[None, :]
            union |= mb[:, None] | mb[None, :]

    base = torch.log(A)
    if mode != "hard":
        return base, None
    B = A.clone()
    B[img0:img1, img0:img1] = ((~union) | self_attend).double()
    fg_idx = fg.nonzero(as_tuple=True)[0]
    B[img0 + fg_idx, :g] = 0
    bg_idx = (~fg).nonzero(as_tuple=True)[0]
    B[img0 + bg_idx, img0:img1] = 1
    return base, torch.log(B)
