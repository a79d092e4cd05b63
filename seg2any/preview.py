"""A picture of a layout: entities tinted in colour, outlined, numbered, with a legend.

Meant for checking a layout before spending a sampling run on it: which pixels belong to which
prompt, where masks overlap, which entities vanish at the token grid.
"""

from __future__ import annotations

import colorsys

import cv2
import numpy as np

from .layout import Layout
from .token_grid import vanished_entities


def palette(n: int) -> list[tuple[int, int, int]]:
    """n well-separated saturated colours (golden-ratio hues)."""
    out = []
    for i in range(n):
        h = (i * 0.61803398875) % 1.0
        r, g, b = colorsys.hsv_to_rgb(h, 0.85, 0.95)
        out.append((int(r * 255), int(g * 255), int(b * 255)))
    return out


def render_layout(
    layout: Layout,
    base: np.ndarray | None = None,
    *,
    grid: tuple[int, int] | None = None,
    opacity: float = 0.55,
    legend_width: int = 360,
) -> np.ndarray:
    """(H, W + legend, 3) uint8. ``base`` (H, W, 3) uint8 is drawn underneath (else dark grey).

    With ``grid`` (token rows, cols) entities that vanish at that resolution are flagged.
    """
    h, w = layout.height, layout.width
    if base is None:
        canvas = np.full((h, w, 3), 40, np.uint8)
    else:
        canvas = cv2.resize(base, (w, h), interpolation=cv2.INTER_AREA) if base.shape[:2] != (h, w) else base.copy()
    colors = [e.color if e.color is not None else c for e, c in zip(layout.entities, palette(len(layout.entities)))]
    tint = canvas.astype(np.float32)
    for e, c in zip(layout.entities, colors):
        tint[e.mask] = tint[e.mask] * (1 - opacity) + np.array(c, np.float32) * opacity
    out = tint.clip(0, 255).astype(np.uint8)
    masks = layout.masks
    overlap = masks.sum(axis=0) > 1 if len(masks) else np.zeros((h, w), bool)
    if overlap.any():
        stripes = ((np.add.outer(np.arange(h), np.arange(w)) // 6) % 2 == 0) & overlap
        out[stripes] = (255, 255, 255)
    gone = set(vanished_entities(masks, *grid)) if grid is not None and len(masks) else set()
    scale = max(0.4, min(h, w) / 900)
    for i, (e, c) in enumerate(zip(layout.entities, colors)):
        contours, _ = cv2.findContours(e.mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, (255, 255, 255), max(1, int(2 * scale)))
        ys, xs = np.nonzero(e.mask)
        if ys.size:
            cy, cx = int(np.median(ys)), int(np.median(xs))
            _label(out, str(i + 1), (cx, cy), scale * 1.4, c)
    if legend_width <= 0:
        return out
    legend = np.full((h, legend_width, 3), 24, np.uint8)
    y = int(28 * scale) + 6
    line = int(26 * scale) + 8
    rows = [(f"global: {layout.global_prompt or '(none)'}", (200, 200, 200))]
    for i, (e, c) in enumerate(zip(layout.entities, colors)):
        flag = "  [vanishes at token grid]" if i in gone else ""
        rows.append((f"{i + 1}: {e.prompt}{flag}", c))
    for text, c in rows:
        if y > h - 4:
            break
        cv2.rectangle(legend, (6, y - int(14 * scale)), (6 + int(14 * scale), y), c, -1)
        shown = text if len(text) <= 44 else text[:41] + "..."
        cv2.putText(
            legend, shown, (12 + int(16 * scale), y), cv2.FONT_HERSHEY_SIMPLEX, 0.45 * scale, (235, 235, 235), 1, cv2.LINE_AA
        )
        y += line
    return np.concatenate([out, legend], axis=1)


def _label(img, text, center, scale, color):
    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), _ = cv2.getTextSize(text, font, scale, 2)
    x, y = center[0] - tw // 2, center[1] + th // 2
    ink = (0, 0, 0) if 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2] > 128 else (255, 255, 255)
    cv2.rectangle(img, (x - 5, y - th - 5), (x + tw + 5, y + 5), (255, 255, 255), -1)
    cv2.rectangle(img, (x - 4, y - th - 4), (x + tw + 4, y + 4), color, -1)
    cv2.putText(img, text, (x, y), font, scale, ink, 2, cv2.LINE_AA)
