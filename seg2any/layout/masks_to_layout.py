"""Masks that ComfyUI already makes, as a Seg2Any colour map plus its official JSON.

Core ``SAM3_Detect`` (individual masks), a mask editor or any segmentation node give a MASK batch
(N, H, W); a Seg2Any layout needs one prompt per entity and a colour-coded map where every pixel
belongs to at most one entity. This module is the bridge the 'Layout from Masks' node uses, so one
node turns a detector's masks plus a list of prompts (one per line) into the same segmentation +
segments pair 'Load Seg2Any Layout' and the Layout Editor give.

Boxes: core ComfyUI's ``BOUNDING_BOX`` values (``CreateBoundingBoxes``, RT-DETR, SAM3 on recent
ComfyUI) are pixel rectangles ``{"x", "y", "width", "height"}``: one dict, a list of dicts, or one
list per image of a batch. A box with its own prompt is a rectangular entity; a pixel belongs to it
when the pixel's centre lies inside the box, so an integer box covers exactly ``width x height``
pixels. A box that reaches outside the image or covers no pixel is an error naming it: a
silently clipped or dropped box would draw something the user did not ask for.

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


def _name(i: int, prompt: str, kind: str = "mask") -> str:
    short = prompt if len(prompt) <= 40 else prompt[:37] + "..."
    return f"{kind} {i + 1} ('{short}')"


def _mask_batch(masks) -> np.ndarray:
    m = np.asarray(masks)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3:
        raise LayoutError(f"masks must be a batch (N, H, W), got shape {tuple(m.shape)}")
    return m > 0.5 if m.dtype != np.bool_ else m


def box_list(value) -> list[dict]:
    """The boxes of one image from a ComfyUI ``BOUNDING_BOX`` value (dict, list, or one list per image).

    A batch with boxes on more than one image is refused: a layout is one picture, and guessing
    which image's boxes were meant would draw the wrong entities.
    """
    if value is None:
        return []
    if isinstance(value, dict):
        return [value]
    if not isinstance(value, (list, tuple)):
        raise LayoutError(f"bounding boxes must be a box or a list of boxes, got {type(value).__name__}")
    if value and all(isinstance(v, (list, tuple)) for v in value):
        frames = [list(v) for v in value]
        used = [i for i, f in enumerate(frames) if f]
        if len(used) > 1:
            raise LayoutError(
                f"the bounding boxes hold boxes for {len(used)} images (a batch); a layout is one image: "
                "give the boxes of one image"
            )
        return frames[used[0]] if used else []
    return list(value)


def _box_numbers(box, where: str) -> tuple[float, float, float, float]:
    if not isinstance(box, dict):
        raise LayoutError(f"{where}: a bounding box must be {{x, y, width, height}}, got {type(box).__name__}")
    out = []
    for key in ("x", "y", "width", "height"):
        v = box.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
            raise LayoutError(f"{where}: '{key}' must be a number, got {v!r}")
        out.append(float(v))
    return out[0], out[1], out[2], out[3]


def box_masks(boxes: Sequence[dict], prompts: Sequence[str], height: int, width: int) -> np.ndarray:
    """(N, H, W) bool: each box's pixels (pixel centres inside the box), checked against the image.

    ``prompts`` only name the boxes in errors ("box 2 ('a dog')"); their count must match.
    """
    prompts = [p.strip() for p in prompts]
    if len(prompts) != len(boxes):
        raise LayoutError(
            f"{len(boxes)} box(es) but {len(prompts)} box prompt(s): give exactly one prompt per line, in the boxes' order"
        )
    out = np.zeros((len(boxes), height, width), bool)
    centres_y = np.arange(height) + 0.5
    centres_x = np.arange(width) + 0.5
    for i, (box, p) in enumerate(zip(boxes, prompts)):
        where = _name(i, p, "box")
        x, y, w, h = _box_numbers(box, where)
        at = f"(x {x:g}, y {y:g}, width {w:g}, height {h:g})"
        if w <= 0 or h <= 0:
            raise LayoutError(f"{where} {at} has zero area: give it a width and a height")
        if x < 0 or y < 0 or x + w > width or y + h > height:
            raise LayoutError(f"{where} {at} reaches outside the {width}x{height} image")
        rows = (centres_y >= y) & (centres_y < y + h)
        cols = (centres_x >= x) & (centres_x < x + w)
        if not rows.any() or not cols.any():
            raise LayoutError(f"{where} {at} covers no pixel centre: make it at least one pixel wide and high")
        out[i] = rows[:, None] & cols[None, :]
    return out


def colour_map_from_masks(
    masks: np.ndarray | None,
    prompts: Sequence[str],
    caption: str = "",
    *,
    boxes: Sequence[dict] = (),
    box_prompts: Sequence[str] = (),
    size: tuple[int, int] | None = None,
) -> tuple[np.ndarray, dict]:
    """(H, W, 3) uint8 colour map (black background) and the official JSON dict for N masks + M boxes.

    ``masks``: (N, H, W) or (H, W), bool or 0..1 floats (> 0.5 is inside), or None. ``prompts``:
    one per mask, in the same order. ``boxes`` (ComfyUI bounding boxes, pixels) with
    ``box_prompts`` become entities after the masks; ``size`` (height, width) is the image size
    when no masks give it. The JSON lists masks, then boxes, in their order.
    """
    prompts = [p.strip() for p in prompts]
    box_prompts = [p.strip() for p in box_prompts]
    names = []
    if masks is not None:
        m = _mask_batch(masks)
        if len(prompts) != m.shape[0]:
            raise LayoutError(
                f"{m.shape[0]} mask(s) but {len(prompts)} prompt(s): give exactly one prompt per line, in the masks' order"
            )
        if m.shape[0] == 0 and not boxes:
            raise LayoutError("the mask batch is empty: connect at least one mask")
        size = tuple(m.shape[1:])
        names += [_name(i, p) for i, p in enumerate(prompts)]
    elif prompts:
        raise LayoutError("mask prompts are given but no masks are connected")
    else:
        if not boxes:
            raise LayoutError("no entities: connect masks or bounding boxes, each with one prompt per line")
        if size is None:
            raise LayoutError("bounding boxes without masks need the image size (width and height)")
        m = np.zeros((0, *size), bool)
    if boxes or box_prompts:
        bm = box_masks(boxes, box_prompts, int(size[0]), int(size[1]))
        m = np.concatenate([m, bm]) if m.shape[0] else bm
        names += [_name(i, p, "box") for i, p in enumerate(box_prompts)]
        prompts = prompts + box_prompts
    inside = m
    areas = inside.reshape(inside.shape[0], -1).sum(axis=1)
    for i, (a, p) in enumerate(zip(areas, prompts)):
        if not p:
            raise LayoutError(f"{names[i]}: the prompt is empty")
        if a == 0:
            raise LayoutError(f"{names[i]} is empty (no pixel above 0.5): remove it or its prompt line")
    labels = np.zeros(inside.shape[1:], np.int32)
    # paint the largest first so smaller masks end on top (stable: earlier wins among equal areas)
    for i in sorted(range(len(prompts)), key=lambda k: (-int(areas[k]), -k)):
        labels[inside[i]] = i + 1
    kept = np.bincount(labels.ravel(), minlength=len(prompts) + 1)[1:]
    for i in range(len(prompts)):
        if kept[i] == 0:
            raise LayoutError(
                f"{names[i]} is completely covered by smaller masks: nothing of it would be drawn; remove it or split the masks"
            )
    colours = entity_colours(len(prompts))
    palette = np.array([(0, 0, 0)] + colours, np.uint8)
    spec = {
        "caption": (caption or "").strip(),
        "segments_info": [{"color": list(c), "text": p} for c, p in zip(colours, prompts)],
    }
    return palette[labels], spec
