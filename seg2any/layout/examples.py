"""Layouts of our own making: the shipped example workflows' colour maps and captions.

They are drawn procedurally so the repository carries the recipe, not just the pictures:
``python -m seg2any.layout.examples OUT_DIR`` writes every ``X.png`` + ``X.json`` pair.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
from PIL import Image, ImageDraw


def _spec(caption, seed, items):
    return {"caption": caption, "seed": seed, "segments_info": [{"color": list(c), "text": t} for c, t in items]}


def reading_nook(size: int = 1024):
    """A few entities with different materials (in the spirit of the official 'animals' example)."""
    img = Image.new("RGB", (size, size), (0, 0, 0))
    d = ImageDraw.Draw(img)
    s = size / 1024
    chair, cat, lamp, plant, rug = (30, 60, 200), (230, 140, 30), (200, 200, 40), (40, 170, 60), (150, 40, 120)
    d.polygon([(180 * s, 900 * s), (860 * s, 900 * s), (760 * s, 1010 * s), (120 * s, 1010 * s)], fill=rug)
    d.rounded_rectangle([260 * s, 420 * s, 700 * s, 900 * s], radius=int(60 * s), fill=chair)
    d.ellipse([330 * s, 470 * s, 610 * s, 640 * s], fill=cat)
    d.rectangle([800 * s, 260 * s, 815 * s, 900 * s], fill=lamp)
    d.polygon([(730 * s, 260 * s), (885 * s, 260 * s), (850 * s, 150 * s), (765 * s, 150 * s)], fill=lamp)
    d.rectangle([60 * s, 760 * s, 200 * s, 900 * s], fill=plant)
    d.ellipse([20 * s, 480 * s, 240 * s, 780 * s], fill=plant)
    spec = _spec(
        "A cozy reading nook in warm evening light: a ginger cat asleep on a deep blue velvet armchair, a brass floor "
        "lamp with a glowing shade, a potted monstera and a patterned wool rug.",
        1234,
        [
            (chair, "Velvet armchair: a deep blue velvet armchair with rounded arms and brass studs."),
            (cat, "Ginger cat: a fluffy ginger tabby cat curled up asleep, tail wrapped around its paws."),
            (lamp, "Brass floor lamp: a slender polished brass floor lamp with a warm glowing linen shade."),
            (plant, "Monstera: a lush potted monstera plant with large split leaves in a white ceramic pot."),
            (rug, "Wool rug: a patterned magenta and cream wool rug with a geometric border."),
        ],
    )
    return img, spec


LETTERS = "AKMRSTWXYZBDEGHJNPQV"
BADGE_COLOURS = [
    "crimson",
    "emerald green",
    "royal blue",
    "golden yellow",
    "violet",
    "orange",
    "teal",
    "pink",
    "black",
    "white",
    "silver",
    "brown",
    "navy blue",
    "lime green",
    "maroon",
    "turquoise",
    "lavender",
    "copper",
    "olive green",
    "sky blue",
]


def badge_grid(size: int = 1024, n: int = 20):
    """n circular badges whose prompts ask for colours unrelated to their map colours.

    Attribute isolation is what keeps each badge's colour and letter to itself; the map uses
    close colours (two blues one step apart) to show that matching is exact.
    """
    img = Image.new("RGB", (size, size), (255, 255, 255))
    d = ImageDraw.Draw(img)
    cols, rows = 5, (n + 4) // 5
    cw, ch = size / cols, size / rows
    rng = np.random.default_rng(7)
    items = []
    used = set()
    for i in range(n):
        r, c = divmod(i, cols)
        col = tuple(int(v) for v in rng.integers(20, 236, size=3))
        if i == 7:
            prev = items[6][0]
            col = (prev[0], prev[1], prev[2] + 1)  # one step from its neighbour
        while col in used:
            col = (col[0], col[1], (col[2] + 5) % 256)
        used.add(col)
        cx, cy = (c + 0.5) * cw, (r + 0.5) * ch
        rad = 0.38 * min(cw, ch)
        d.ellipse([cx - rad, cy - rad, cx + rad, cy + rad], fill=col)
        items.append((col, f"A {BADGE_COLOURS[i]} circular badge with a bold white letter '{LETTERS[i]}' in the centre."))
    spec = _spec(
        f"A tidy grid of {n} enamel pin badges on a white background, each a different colour with one bold letter.",
        42,
        items,
    )
    return img, spec


def mask_editor_inputs(size: int = 768):
    """A base picture and three RGBA copies whose transparent pixels are the painted masks
    (ComfyUI's LoadImage turns transparency into its MASK output)."""
    yy, xx = np.mgrid[0:size, 0:size]
    base = np.zeros((size, size, 3), np.uint8)
    base[..., 0] = (120 + 80 * yy / size).astype(np.uint8)
    base[..., 1] = (160 + 60 * yy / size).astype(np.uint8)
    base[..., 2] = 230
    masks = {
        "balloon": (xx - 0.3 * size) ** 2 + (yy - 0.3 * size) ** 2 < (0.13 * size) ** 2,
        "mountain": (yy > 0.45 * size + 0.5 * np.abs(xx - 0.65 * size)) & (yy < 0.85 * size),
        "cabin": (np.abs(xx - 0.25 * size) < 0.12 * size) & (yy > 0.72 * size) & (yy < 0.9 * size),
    }
    out = {"base": Image.fromarray(base)}
    for name, m in masks.items():
        rgba = np.concatenate([base, np.where(m, 0, 255).astype(np.uint8)[..., None]], axis=2)
        out[name] = Image.fromarray(rgba, "RGBA")
    return out


def write_all(out_dir: str) -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for name, (img, spec) in {"reading_nook": reading_nook(), "badge_grid": badge_grid()}.items():
        img.save(os.path.join(out_dir, name + ".png"))
        with open(os.path.join(out_dir, name + ".json"), "w", encoding="utf-8") as f:
            json.dump(spec, f, indent=2)
        written += [name + ".png", name + ".json"]
    for name, img in mask_editor_inputs().items():
        fn = f"seg2any_example_painted_{name}.png"
        img.save(os.path.join(out_dir, fn))
        written.append(fn)
    return written


if __name__ == "__main__":
    print("\n".join(write_all(sys.argv[1] if len(sys.argv) > 1 else "example_workflows/layouts")))
