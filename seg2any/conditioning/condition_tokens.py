"""Condition tokens: the VAE-encoded contour map, packed like image latents, empty ones dropped.

One condition token is a 2x2 patch of the condition latent, i.e. a 16x16 pixel patch of the
contour image (which is the image downsampled by ``cond_scale_factor`` s). A token whose pixel
patch is entirely black carries no outline and is dropped, which is where Seg2Any saves most of
its condition cost. A kept token at condition-grid cell (i, j) takes the RoPE position of the
image token at (i*s, j*s), the top-left image token of the block it covers (the official choice,
which the released weights were trained with).

The official code decides "black" by summing the normalised patch, which could in principle
cancel to zero for a patch holding greys above and below mid-grey; we keep every patch with any
non-black pixel, so outline information is never lost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ModelMismatchError
from ..flux import spec


def keep_mask_from_contour(contour: np.ndarray | torch.Tensor, patch: int = spec.PIXELS_PER_TOKEN) -> np.ndarray:
    """Contour image (h, w[, 3]), uint8 or 0..1 float -> (h/patch, w/patch) bool: any non-black pixel."""
    arr = contour.detach().cpu().numpy() if isinstance(contour, torch.Tensor) else np.asarray(contour)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3:
        arr = arr.max(axis=2) if arr.shape[2] in (1, 3, 4) else arr
    h, w = arr.shape[:2]
    if h % patch or w % patch:
        raise ModelMismatchError(f"contour map {w}x{h} is not a multiple of {patch} pixels")
    nonblack = arr != 0
    return nonblack.reshape(h // patch, patch, w // patch, patch).any(axis=(1, 3))


def pack_latents(z: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) latent -> (B, h/2 * w/2, C*4) tokens; channel-major inside each 2x2 patch.

    Same order as diffusers ``_pack_latents`` and ComfyUI's Flux ``process_img``.
    """
    b, c, h, w = z.shape
    if h % 2 or w % 2:
        raise ModelMismatchError(f"latent {w}x{h} must have even sides to pack 2x2")
    z = z.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return z.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack_latents(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`pack_latents` for a latent of h x w (even)."""
    b, n, d = tokens.shape
    c = d // 4
    z = tokens.reshape(b, h // 2, w // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return z.reshape(b, c, h, w)


def condition_positions(keep: np.ndarray, scale: int) -> np.ndarray:
    """(gh, gw) keep mask -> (C, 3) int64 RoPE ids (0, i*s, j*s) of the kept cells, row-major."""
    ii, jj = np.nonzero(keep)
    ids = np.zeros((ii.size, 3), dtype=np.int64)
    ids[:, 1] = ii * scale
    ids[:, 2] = jj * scale
    return ids


@dataclass(frozen=True, eq=False)
class ConditionTokens:
    """What the model needs from the contour map for one layout.

    ``latent`` is the raw VAE latent of the contour map (B=1, before the model's shift/scale);
    ``keep`` marks the tokens that survive filtering; ``scale`` is cond_scale_factor and
    ``image_size`` the (height, width) in pixels the condition was made for.
    """

    latent: torch.Tensor
    keep: np.ndarray
    scale: int
    image_size: tuple[int, int]

    def __post_init__(self):
        gh, gw = self.grid
        lh, lw = self.latent.shape[-2:]
        if (lh, lw) != (2 * gh, 2 * gw):
            raise ModelMismatchError(
                f"condition latent is {lw}x{lh} but a {self.image_size[1]}x{self.image_size[0]} image with "
                f"cond_scale_factor {self.scale} needs {2 * gw}x{2 * gh}"
            )

    @property
    def grid(self) -> tuple[int, int]:
        h, w = self.image_size
        step = spec.PIXELS_PER_TOKEN * self.scale
        return h // step, w // step

    @property
    def count(self) -> int:
        return int(self.keep.sum())

    def positions(self) -> np.ndarray:
        return condition_positions(self.keep, self.scale)

    def tokens(self, process_in=None) -> torch.Tensor:
        """(C, spec.PACKED_CHANNELS) kept tokens; ``process_in`` maps the raw latent into model space first."""
        z = self.latent if process_in is None else process_in(self.latent)
        packed = pack_latents(z[:1])[0]
        idx = torch.from_numpy(np.flatnonzero(self.keep.reshape(-1)))
        return packed[idx.to(packed.device)]
