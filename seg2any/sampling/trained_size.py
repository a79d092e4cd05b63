"""Rendering a layout at the resolution a small model was trained at, and scaling the image back.

A model trained at one size (the shipped demo: 128x128, an 8x8 token grid) turns to noise far from
it: its RoPE positions and object scales were never seen. So a layout of any size and shape is
resized to about the trained pixel count (same aspect ratio, sides multiples of 16), rendered
there, and the image is scaled back to the layout's size. FLUX.1-dev, which handles 0.25-2 MP,
never takes this path: only models that declare a trained resolution do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..flux import spec
from ..layout.layout import Entity, Layout
from ..layout.token_grid import nearest_exact_index, token_masks

DEMO_RESOLUTION = 128  # training/experiment.py trains the demo on 128x128 synthetic shapes


def trained_size(height: int, width: int, resolution: int, multiple: int = spec.PIXELS_PER_TOKEN) -> tuple[int, int]:
    """(h, w) with about ``resolution**2`` pixels and the layout's aspect ratio, multiples of ``multiple``."""
    s = resolution / math.sqrt(height * width)
    h = max(multiple, round(height * s / multiple) * multiple)
    w = max(multiple, round(width * s / multiple) * multiple)
    return int(h), int(w)


def resize_layout(layout: Layout, height: int, width: int) -> Layout:
    """Masks resized with nearest-exact (the rule the official code uses for the token grid), so an
    entity keeps exactly its own pixels and no blend appears; entities that vanish stay in the
    layout (with an empty mask) so the captions keep their order."""
    rows = nearest_exact_index(layout.height, height)
    cols = nearest_exact_index(layout.width, width)
    ents = tuple(Entity(e.prompt, e.mask[rows][:, cols], e.color, e.label, e.order) for e in layout.entities)
    return Layout(layout.global_prompt, ents, height, width, layout.seed, layout.notes)


@dataclass(frozen=True, eq=False)
class Fit:
    """A layout resized for a model's trained resolution, and what to tell the user about it."""

    layout: Layout  # at the rendering size
    size: tuple[int, int]  # (height, width) the image is scaled back to: the original layout's
    vanished: tuple[int, ...]  # entities with pixels in the layout but no image token once resized
    message: str


def render_size(height: int, width: int, resolution: int | None = None) -> tuple[int, int]:
    """(h, w) in pixels a run renders a ``height x width`` layout at: a model's trained size when it
    declares one (the demo), else the layout's whole image tokens (FLUX.1-dev)."""
    if resolution:
        return trained_size(height, width, resolution)
    rows, cols = spec.token_grid(height, width)
    return rows * spec.PIXELS_PER_TOKEN, cols * spec.PIXELS_PER_TOKEN


def vanished_at_render(layout: Layout, resolution: int | None = None) -> tuple[tuple[int, int], tuple[int, ...]]:
    """(render size, entities with pixels but no image token there), as the run computes the tokens:
    a trained-size model samples the layout resized with nearest-exact, FLUX maps the layout's own
    masks straight onto its token grid. One function for the sampler's line, the builder's report and
    the editor's status line, so none of them warns about a size that is never rendered."""
    h, w = render_size(layout.height, layout.width, resolution)
    masks = layout.masks
    if resolution and (h, w) != (layout.height, layout.width):
        masks = resize_layout(layout, h, w).masks
    return (h, w), _vanished(layout, masks, h, w)


def _vanished(layout: Layout, masks, height: int, width: int) -> tuple[int, ...]:
    """Entities with pixels in ``layout`` but no image token in ``masks`` (the layout at height x width)."""
    tm = token_masks(masks, *spec.token_grid(height, width))
    return tuple(i for i, e in enumerate(layout.entities) if e.mask.any() and not tm[i].any())


def fit_layout(layout: Layout, resolution: int, who: str = "the model") -> Fit | None:
    """None when the layout is already at the rendering size; else the resized layout and ONE line."""
    h, w = trained_size(layout.height, layout.width, resolution)
    if (h, w) == (layout.height, layout.width):
        return None
    small = resize_layout(layout, h, w)
    gone = _vanished(layout, small.masks, h, w)
    msg = (
        f"{who} was trained at {resolution}x{resolution} px: the {layout.width}x{layout.height} layout is rendered at "
        f"{w}x{h} and the image scaled back to {layout.width}x{layout.height}"
    )
    if gone:
        names = "; ".join(layout.entities[i].label or f"entity {i + 1}" for i in gone)
        msg += f"; {len(gone)} entit{'y vanishes' if len(gone) == 1 else 'ies vanish'} at that size: {names}"
    return Fit(small, (layout.height, layout.width), gone, msg)


def scale_images(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, H, W, C) floats in 0..1 -> (B, height, width, C): antialiased bicubic, clamped.

    One function for the CLI and the ComfyUI node, so both paths give the same pixels.
    """
    if images.shape[1:3] == (height, width):
        return images
    x = images.movedim(-1, 1).float()
    y = F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False, antialias=True)
    return y.clamp(0, 1).movedim(1, -1).to(images.dtype)


def scale_uint8(images: list[np.ndarray], height: int, width: int) -> list[np.ndarray]:
    """uint8 (H, W, 3) images through :func:`scale_images`."""
    x = torch.from_numpy(np.stack(images).astype(np.float32) / 255.0)
    y = scale_images(x, height, width)
    return list((y * 255.0).round().to(torch.uint8).numpy())
