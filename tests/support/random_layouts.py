"""Official-format layouts (colour map + JSON) nobody tuned on: random shapes from a seeded RNG.

Shapes are drawn at ``supersample`` x the size and shrunk with area interpolation, as a paint
program or a resized segmentation does it, so edges carry blended colours the JSON does not list
(a 1280x1920 map with a dozen entities holds well over 100 colours). Prompts use the demo
model's words (colour, texture, shape), since the demo knows no others.
"""

from __future__ import annotations

import cv2
import numpy as np

from seg2any.layout.token_grid import nearest_exact_index
from seg2any.sampling.trained_size import DEMO_RESOLUTION, trained_size

COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "white")
KINDS = ("circle", "square", "triangle", "diamond")
TEXTURES = ("plain", "striped", "dotted")
BACKGROUNDS = ("gray", "black", "white")


def _prompt(rng) -> str:
    colour, kind, tex = COLOURS[rng.integers(len(COLOURS))], KINDS[rng.integers(len(KINDS))], TEXTURES[rng.integers(3)]
    words = [tex, colour, kind]
    return ("an " if words[0][0] in "aeiou" else "a ") + " ".join(words)


def _draw(canvas: np.ndarray, kind: str, cx: float, cy: float, r: float, angle: float, colour) -> None:
    col = tuple(int(c) for c in colour)
    if kind == "circle":
        cv2.ellipse(canvas, (int(cx), int(cy)), (int(r), int(r * 0.8)), angle, 0, 360, col, -1)
        return
    n = {"square": 4, "triangle": 3, "diamond": 4}[kind]
    start = np.deg2rad(angle) + (np.pi / 4 if kind == "square" else 0)
    t = start + np.arange(n) * 2 * np.pi / n
    pts = np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1).round().astype(np.int32)
    cv2.fillPoly(canvas, [pts], col)


def random_layout(
    seed: int, width: int, height: int, n_entities: int, *, supersample: int = 3, tiny: bool = False
) -> tuple[np.ndarray, dict]:
    """(colour map (H, W, 3) uint8, official JSON dict). Black is the (unlisted) background.

    ``tiny`` adds a 3x3-pixel entity placed between the demo's token centres, so it exists in the
    map and gets no image token at the demo's size; it is the last entry of ``segments_info``.
    """
    rng = np.random.default_rng(seed)
    s = supersample
    big = np.zeros((height * s, width * s, 3), np.uint8)
    side = min(width, height) * s
    colours = set()
    entries = []
    for _ in range(n_entities):
        while True:
            c = tuple(int(v) for v in rng.integers(16, 256, 3))
            if c not in colours:
                colours.add(c)
                break
        r = side * rng.uniform(0.12, 0.3) * (1.0 if n_entities < 8 else 0.6)
        cx, cy = rng.uniform(r, width * s - r), rng.uniform(r, height * s - r)
        _draw(big, KINDS[rng.integers(len(KINDS))], cx, cy, r, float(rng.uniform(0, 360)), c)
        entries.append({"color": list(c), "text": _prompt(rng)})
    img = cv2.resize(big, (width, height), interpolation=cv2.INTER_AREA) if s > 1 else big
    if tiny:
        # midway between the pixels that become token centres at the demo's size (nearest-exact twice)
        h, w = trained_size(height, width, DEMO_RESOLUTION)
        rows = nearest_exact_index(height, h)[nearest_exact_index(h, h // 16)]
        cols = nearest_exact_index(width, w)[nearest_exact_index(w, w // 16)]
        i, j = len(rows) // 3, len(cols) // 3
        assert rows[i + 1] - rows[i] >= 8 and cols[j + 1] - cols[j] >= 8, "layout too small for a vanishing entity"
        y, x = (rows[i] + rows[i + 1]) // 2 - 1, (cols[j] + cols[j + 1]) // 2 - 1
        c = (7, 250, 9)
        img[y : y + 3, x : x + 3] = c
        entries.append({"color": list(c), "text": "a plain red dot"})
    present = {tuple(int(v) for v in c) for c in np.unique(img.reshape(-1, 3), axis=0)}
    entries = [e for e in entries if tuple(e["color"]) in present]  # fully covered shapes are gone
    caption = ", ".join(e["text"] for e in entries[:4]) + f" on a {BACKGROUNDS[rng.integers(3)]} background"
    return img, {"caption": caption, "seed": int(rng.integers(0, 2**31 - 1)), "segments_info": entries}
