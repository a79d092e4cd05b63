"""A picture of a layout: entities tinted in colour, outlined, numbered, with a legend.

Meant for checking a layout before spending a sampling run on it: which pixels belong to which
prompt, where masks overlap, which entities vanish at the token grid.

The picture is shown scaled to its node, so text drawn at the layout's own resolution is
unreadable at one end (6 px on a 128 px layout) and wasted at the other. With a legend, the
layout is therefore drawn at a working size (long side between ``WORK_MIN`` and ``WORK_MAX``
pixels) and the legend is a panel beside it with text of a fixed pixel size, so the legend reads
the same at any layout size.
"""

from __future__ import annotations

import colorsys

import cv2
import numpy as np

from .layout import Layout
from .token_grid import vanished_entities

WORK_MIN, WORK_MAX = 768, 1024  # long side of the drawn layout when a legend is added
FONT = cv2.FONT_HERSHEY_SIMPLEX
LEGEND_SCALE = 0.9  # cv2 font scale: capitals about 20 px high, drawn 2 px thick to survive downscaling
LEGEND_THICK = 2
LEGEND_WIDTH = 720
LEGEND_ROW = 42
LEGEND_PAD = 16


def palette(n: int) -> list[tuple[int, int, int]]:
    """n well-separated saturated colours (golden-ratio hues)."""
    out = []
    for i in range(n):
        h = (i * 0.61803398875) % 1.0
        r, g, b = colorsys.hsv_to_rgb(h, 0.85, 0.95)
        out.append((int(r * 255), int(g * 255), int(b * 255)))
    return out


def work_size(h: int, w: int) -> tuple[int, int]:
    """(height, width) the layout is drawn at beside a legend."""
    long = max(h, w)
    f = WORK_MIN / long if long < WORK_MIN else (WORK_MAX / long if long > WORK_MAX else 1.0)
    return max(1, round(h * f)), max(1, round(w * f))


def render_layout(
    layout: Layout,
    base: np.ndarray | None = None,
    *,
    grid: tuple[int, int] | None = None,
    opacity: float = 0.55,
    legend: bool = True,
    legend_width: int | None = None,
) -> np.ndarray:
    """uint8 RGB picture. ``base`` (any H, W, 3 uint8) is drawn underneath (else dark grey).

    ``legend=False`` (or the older ``legend_width=0``): the tinted layout alone at the layout's own
    size. Otherwise: the layout at its working size with the legend panel beside it (the taller
    of the two sets the height). With ``grid`` (token rows, cols) vanishing entities are flagged.
    """
    if legend_width == 0:
        legend = False
    h, w = (layout.height, layout.width) if not legend else work_size(layout.height, layout.width)
    masks = np.asarray(layout.masks, bool)
    if masks.shape[1:] != (h, w) and len(masks):
        masks = np.stack([cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0 for m in masks])
    if base is None:
        canvas = np.full((h, w, 3), 40, np.uint8)
    elif base.shape[:2] != (h, w):
        shrink = base.shape[0] * base.shape[1] > h * w
        canvas = cv2.resize(base, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    else:
        canvas = base.copy()
    colors = [e.color if e.color is not None else c for e, c in zip(layout.entities, palette(len(layout.entities)))]
    tint = canvas.astype(np.float32)
    for m, c in zip(masks, colors):
        tint[m] = tint[m] * (1 - opacity) + np.array(c, np.float32) * opacity
    out = tint.clip(0, 255).astype(np.uint8)
    overlap = masks.sum(axis=0) > 1 if len(masks) else np.zeros((h, w), bool)
    if overlap.any():
        period = max(3, round(max(h, w) / 170))
        stripes = ((np.add.outer(np.arange(h), np.arange(w)) // period) % 2 == 0) & overlap
        out[stripes] = (255, 255, 255)
    scale = max(h, w) / WORK_MIN  # 1 at the working size
    for i, (m, c) in enumerate(zip(masks, colors)):
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, (255, 255, 255), max(1, round(2 * scale)))
        ys, xs = np.nonzero(m)
        if ys.size:
            _label(out, str(i + 1), (int(np.median(xs)), int(np.median(ys))), max(0.35, 0.9 * scale), c)
    if not legend:
        return out
    gone = set(vanished_entities(layout.masks, *grid)) if grid is not None and len(layout.masks) else set()
    return _with_legend(out, _legend_rows(layout, colors, gone))


def _legend_rows(layout: Layout, colors, gone) -> list[tuple[str, tuple[int, int, int] | None]]:
    rows = [(f"global: {layout.global_prompt or '(none)'}", None)]
    for i, (e, c) in enumerate(zip(layout.entities, colors)):
        rows.append((f"{i + 1}: {e.prompt}" + ("  [vanishes at token grid]" if i in gone else ""), c))
    return rows


def _fit(text: str, width: int) -> str:
    """The text cut (with '...') to fit ``width`` pixels at the legend's font."""
    if cv2.getTextSize(text, FONT, LEGEND_SCALE, LEGEND_THICK)[0][0] <= width:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # longest prefix that fits with the ellipsis
        mid = (lo + hi + 1) // 2
        if cv2.getTextSize(text[:mid] + "...", FONT, LEGEND_SCALE, LEGEND_THICK)[0][0] <= width:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo] + "..."


def _with_legend(picture: np.ndarray, rows) -> np.ndarray:
    """The picture with a fixed-size legend panel on its right (rows never shrink to fit)."""
    h, w = picture.shape[:2]
    need = 2 * LEGEND_PAD + LEGEND_ROW * len(rows)
    H = max(h, need)
    panel = np.full((H, LEGEND_WIDTH, 3), 24, np.uint8)
    swatch = 22
    y = LEGEND_PAD + LEGEND_ROW // 2
    for text, c in rows:
        x = LEGEND_PAD
        if c is not None:
            cv2.rectangle(panel, (x, y - swatch // 2), (x + swatch, y + swatch // 2), c, -1)
            cv2.rectangle(panel, (x, y - swatch // 2), (x + swatch, y + swatch // 2), (235, 235, 235), 1)
        x += swatch + 10
        shown = _fit(text, LEGEND_WIDTH - x - LEGEND_PAD)
        (_, th), _ = cv2.getTextSize(shown, FONT, LEGEND_SCALE, LEGEND_THICK)
        ink = (235, 235, 235) if c is not None else (200, 200, 200)
        cv2.putText(panel, shown, (x, y + th // 2), FONT, LEGEND_SCALE, ink, LEGEND_THICK, cv2.LINE_AA)
        y += LEGEND_ROW
    left = np.full((H, w, 3), 24, np.uint8)
    left[:h] = picture
    return np.concatenate([left, panel], axis=1)


def _label(img, text, center, scale, color):
    (tw, th), _ = cv2.getTextSize(text, FONT, scale, 2)
    x, y = center[0] - tw // 2, center[1] + th // 2
    ink = (0, 0, 0) if 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2] > 128 else (255, 255, 255)
    cv2.rectangle(img, (x - 5, y - th - 5), (x + tw + 5, y + 5), (255, 255, 255), -1)
    cv2.rectangle(img, (x - 4, y - th - 4), (x + tw + 4, y + 4), color, -1)
    cv2.putText(img, text, (x, y), FONT, scale, ink, 2, cv2.LINE_AA)
