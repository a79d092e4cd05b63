"""From pixel masks to the image-token grid, as the official mask builder does it.

FLUX packs the VAE latent 2x2, so one image token covers a 16x16 pixel patch. The official code
downsamples each entity mask to the token grid with ``F.interpolate(mode='nearest-exact')``:
a token takes the value of the one source pixel nearest its patch centre, with no area
threshold (thin entities can vanish; we report that instead of ignoring it). The "place" mode
uses the covered area fraction instead.
"""

from __future__ import annotations

import numpy as np


def nearest_exact_index(src: int, dst: int) -> np.ndarray:
    """Source index per destination index, computed the way PyTorch's CPU kernel does.

    In exact arithmetic this is ``floor((i + 0.5) * src / dst)``. Torch evaluates the scale in
    float32 for float32/uint8 tensors, which moves the index by one for a few size pairs (about
    0.1%, e.g. 62 -> 7); the official code interpolates ``mask.float()``, so matching the float32
    path keeps token masks (and the trainer's resized masks) bit-identical to it.
    """
    if src < 1 or dst < 1:
        raise ValueError(f"sizes must be positive, got {src} -> {dst}")
    scale = np.float32(src) / np.float32(dst)
    pos = ((np.arange(dst, dtype=np.float64) + 0.5) * np.float64(scale)).astype(np.float32)
    return np.minimum(np.floor(pos).astype(np.int64), src - 1)


def token_masks(masks: np.ndarray, grid_h: int, grid_w: int) -> np.ndarray:
    """(N, H, W) bool pixel masks -> (N, grid_h * grid_w) bool token membership (row-major)."""
    n, h, w = masks.shape
    if n == 0:
        return np.zeros((0, grid_h * grid_w), dtype=bool)
    rows = nearest_exact_index(h, grid_h)
    cols = nearest_exact_index(w, grid_w)
    return masks[:, rows][:, :, cols].reshape(n, grid_h * grid_w)


def area_fractions(masks: np.ndarray, grid_h: int, grid_w: int) -> np.ndarray:
    """(N, H, W) -> (N, grid_h * grid_w) float64 fraction of each token's pixels inside each mask.

    When H, W are exact multiples of the grid this is the official pixel_unshuffle average;
    otherwise each token averages the pixels whose centres fall inside its cell.
    """
    n, h, w = masks.shape
    if n == 0:
        return np.zeros((0, grid_h * grid_w), dtype=np.float64)
    m = masks.astype(np.float64)
    if h % grid_h == 0 and w % grid_w == 0:
        fh, fw = h // grid_h, w // grid_w
        return m.reshape(n, grid_h, fh, grid_w, fw).mean(axis=(2, 4)).reshape(n, -1)
    rb = np.minimum((np.arange(h) * grid_h) // h, grid_h - 1)
    cb = np.minimum((np.arange(w) * grid_w) // w, grid_w - 1)
    sums = np.zeros((n, grid_h, grid_w))
    np.add.at(sums, (slice(None), rb[:, None], cb[None, :]), m)
    counts = np.zeros((grid_h, grid_w))
    np.add.at(counts, (rb[:, None], cb[None, :]), 1.0)
    return (sums / counts[None]).reshape(n, -1)


def vanished_entities(masks: np.ndarray, grid_h: int, grid_w: int) -> list[int]:
    """Indices of entities with pixels in the mask but no token at this grid size."""
    tm = token_masks(masks, grid_h, grid_w)
    return [i for i in range(masks.shape[0]) if masks[i].any() and not tm[i].any()]
