"""Masks that ComfyUI already makes, as a Seg2Any colour map plus its official JSON.

Core ``SAM3_Detect`` (individual masks), a mask editor or any segmentation node give a MASK batch
(N, H, W); a Seg2Any layout needs one prompt per entity and a colour-coded map where every pixel
belongs to at most one entity. This module is the bridge the 'Layout from Masks' node uses, so one
node turns a detector's masks plus a list of prompts (one per line) into the same segmentation +
segments pair 'Load Seg2Any Layout' and the Layout Editor give.

Overlaps: detectors return overlapping masks (a person in front of a car is inside the car's box
mask too). Where masks overlap, the one covering fewer pixels wins, so small objects in front stay
visible; ties go to the earlier mask. A mask that ends up with no pixel of its own is an error
naming it, never a silently dropped entity. Pure numpy: no ComfyUI import.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np

from ..errors import LayoutError

# Colours the Layout Editor's exports use as background: never an entity's.
RESERVED = {(0, 0, 0), (255, 255, 255), (128, 128, 128), (1, 2, 3)}


def prompt_lines(text: str) -> list[str]:
    """One prompt per non-empty line (surrounding spaces dropped)."""
    return [ln.strip() for ln in (text or "").splitlines() if ln.strip()]


def entity_colours(n: int) -> list[tuple[int, int, int]]:
    """n clearly different colours: golden-ratio hues over a few shades (as the editor picks them)."""
    out: list[tuple[int, int, int]] = []
    seen: set[tuple[int, int, int]] = set(RESERVED)
    i = 0
    while len(out) < n:
        s = 0.55 if i % 3 == 2 else 0.85
        v = 0.7 if i % 4 == 3 else 0.95
        r, g, b = colorsys.hsv_to_rgb((0.07 + i * 0.618034) % 1.0, s, v)
        c = (round(r * 255), round(g * 255), round(b * 255))
        if c not in seen:
            seen.add(c)
            out.append(c)
        i += 1
    return out


def _name(i: int, prompt: str) -> str:
    short = prompt if len(prompt) <= 40 else prompt[:37] + "..."
    return f"mask {i + 1} ('{short}')"


def colour_map_from_masks(masks: np.ndarray, prompts: Sequence[str], caption: str = "") -> tuple[np.ndarray, dict]:
    """(H, W, 3) uint8 colour map (black background) and the official JSON dict for N masks.

    ``masks``: (N, H, W) or (H, W), bool or 0..1 floats (> 0.5 is inside). ``prompts``: one per
    mask, in the same order; the JSON lists the entities in that order.
    """
    m = np.asarray(masks)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3:
        raise LayoutError(f"masks must be a batch (N, H, W), got shape {tuple(m.shape)}")
    prompts = [p.strip() for p in prompts]
    if len(prompts) != m.shape[0]:
        raise LayoutError(
            f"{m.shape[0]} mask(s) but {len(prompts)} prompt(s): give exactly one prompt per line, in the masks' order"
        )
    if m.shape[0] == 0:
        raise LayoutError("the mask batch is empty: connect at least one mask")
    inside = m > 0.5 if m.dtype != np.bool_ else m
    areas = inside.reshape(inside.shape[0], -1).sum(axis=1)
    for i, (a, p) in enumerate(zip(areas, prompts)):
        if not p:
            raise LayoutError(f"{_name(i, p)}: the prompt is empty")
        if a == 0:
            raise LayoutError(f"{_name(i, p)} is empty (no pixel above 0.5): remove it or its prompt line")
    labels = np.zeros(inside.shape[1:], np.int32)
    # paint the largest first so smaller masks end on top (stable: earlier wins among equal areas)
    for i in sorted(range(len(prompts)), key=lambda k: (-int(areas[k]), -k)):
        labels[inside[i]] = i + 1
    kept = np.bincount(labels.ravel(), minlength=len(prompts) + 1)[1:]
    for i, p in enumerate(prompts):
        if kept[i] == 0:
            raise LayoutError(
                f"{_name(i, p)} is completely covered by smaller masks: nothing of it would be drawn; "
                "remove it or split the masks"
            )
    colours = entity_colours(len(prompts))
    palette = np.array([(0, 0, 0)] + colours, np.uint8)
    spec = {
        "caption": (caption or "").strip(),
        "segments_info": [{"color": list(c), "text": p} for c, p in zip(colours, prompts)],
    }
    return palette[labels], spec
