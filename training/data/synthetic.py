"""Coloured shapes: a synthetic layout-to-image task whose success can be measured exactly.

Every entity has a colour, a texture and a shape, and every image is a pure function of
(seed, index), so a small model can be trained and scored (``training.metrics``) without any
downloaded data. Colours are few and far apart so a generated pixel can be assigned to a colour
family with a nearest-colour rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from seg2any.errors import LayoutError
from seg2any.layout.layout import Entity, Layout, entity_label

from .sample import Sample

RGB = tuple[int, int, int]

# name -> (colour, second shade). The second shade is darker, except for black where nothing is
# darker, so it is a dark grey; metrics only need it to be distinct and nearest to its own family.
_PALETTE: dict[str, tuple[RGB, RGB]] = {
    "red": ((220, 30, 30), (130, 10, 10)),
    "green": ((40, 190, 40), (10, 100, 10)),
    "blue": ((40, 80, 230), (15, 30, 130)),
    "yellow": ((245, 225, 40), (140, 140, 20)),
    "purple": ((150, 50, 200), (80, 15, 110)),
    "orange": ((250, 140, 20), (170, 80, 0)),
    "white": ((245, 245, 245), (180, 180, 180)),
    "black": ((20, 20, 20), (75, 75, 75)),
}
# Backgrounds are plain; a palette colour used as background is never used for a shape in that image.
_BACKGROUNDS: dict[str, RGB] = {"gray": (128, 128, 128), "white": _PALETTE["white"][0], "black": _PALETTE["black"][0]}
KINDS = ("circle", "square", "triangle", "diamond")
TEXTURES = ("plain", "striped", "dotted")
STRIPES = 16  # texture periods across the canvas (stripes, dot rows)
MIN_AREA = 0.03  # of the canvas; smaller visible remnants are not drawn at all
SIZE_RANGE = (0.20, 0.45)  # of the canvas side


def palette() -> dict[str, tuple[RGB, RGB]]:
    """name -> (rgb, dark_rgb)."""
    return dict(_PALETTE)


def background_colours() -> dict[str, RGB]:
    return dict(_BACKGROUNDS)


@dataclass(frozen=True)
class Shape:
    """A drawn shape in canvas pixels (centre, side / diameter); enough to re-render it."""

    kind: str
    color: str
    texture: str
    cx: float
    cy: float
    size: float
    say_plain: bool = True

    def phrase(self, *, full: bool = True) -> str:
        words = [self.color, self.texture, self.kind] if self.texture != "plain" else [self.color, self.kind]
        if self.texture == "plain" and (full or self.say_plain):
            words.insert(0, "plain")
        return ("an " if words[0][0] in "aeiou" else "a ") + " ".join(words)


def shape_mask(shape: Shape, resolution: int) -> np.ndarray:
    """Full (unoccluded) mask, sampled at pixel centres."""
    c = np.arange(resolution, dtype=np.float64) + 0.5
    dx = np.abs(c[None, :] - shape.cx)
    dy = c[:, None] - shape.cy
    h = shape.size / 2
    if shape.kind == "circle":
        return dx * dx + dy * dy <= h * h
    if shape.kind == "square":
        return (dx <= h) & (np.abs(dy) <= h)
    if shape.kind == "diamond":
        return dx + np.abs(dy) <= h
    if shape.kind == "triangle":  # apex up, base as wide as it is tall
        return (dy <= h) & (dx <= (dy + h) / 2)
    raise ValueError(f"unknown shape kind {shape.kind!r}")


def texture_pattern(texture: str, resolution: int) -> np.ndarray:
    """Where the darker shade goes (canvas-wide; a shape shows it through its mask)."""
    period = max(4, resolution // STRIPES)
    y, x = np.mgrid[0:resolution, 0:resolution]
    if texture == "plain":
        return np.zeros((resolution, resolution), dtype=bool)
    if texture == "striped":
        return ((x + y) // (period // 2)) % 2 == 1
    if texture == "dotted":
        ox = (x % period) + 0.5 - period / 2
        oy = (y % period) + 0.5 - period / 2
        return ox * ox + oy * oy <= (0.33 * period) ** 2
    raise ValueError(f"unknown texture {texture!r}")


@dataclass(frozen=True)
class Scene:
    background: str
    shapes: tuple[Shape, ...]  # kept shapes, paint order (= entity order)
    masks: tuple[np.ndarray, ...]  # visible pixels per shape
    caption: str
    seed: int


class SyntheticShapes(torch.utils.data.Dataset):
    """``n`` deterministic samples; item ``i`` depends only on (seed, i)."""

    def __init__(self, n: int, resolution: int = 128, seed: int = 0, max_shapes: int = 4, empty_every: int = 0):
        if empty_every < 0:
            raise ValueError(f"empty_every must be 0 (never) or positive, got {empty_every}")
        if not 1 <= max_shapes <= len(_PALETTE) - 1:
            raise ValueError(f"max_shapes must be 1..{len(_PALETTE) - 1} (colours are distinct per image)")
        if resolution < 16:
            raise ValueError(f"resolution must be at least 16, got {resolution}")
        self.n, self.resolution, self.seed, self.max_shapes = int(n), int(resolution), int(seed), int(max_shapes)
        self.empty_every = int(empty_every)  # every K-th scene is a bare background (no entity, no condition token)

    def __len__(self) -> int:
        return self.n

    def key(self, index: int) -> str:
        return f"shapes-{self.seed}-{index}"

    @cached_property
    def _patterns(self) -> dict[str, np.ndarray]:
        return {t: texture_pattern(t, self.resolution) for t in TEXTURES}

    def scene(self, index: int) -> Scene:
        if not 0 <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} samples")
        r = self.resolution
        rng = np.random.default_rng([self.seed, index])
        bg = str(rng.choice(list(_BACKGROUNDS)))
        colours = [c for c in _PALETTE if _PALETTE[c][0] != _BACKGROUNDS[bg]]
        if self.empty_every and index % self.empty_every == self.empty_every - 1:
            return Scene(bg, (), (), f"a plain {bg} background", int(rng.integers(0, 2**31 - 1)))
        for _ in range(100):  # at most a handful of retries: the top shape usually survives
            count = int(rng.integers(1, self.max_shapes + 1))
            cands = []
            for col in rng.choice(colours, size=count, replace=False):
                size = float(rng.uniform(*SIZE_RANGE)) * r
                cx, cy = (float(v) for v in rng.uniform(size / 2, r - size / 2, size=2))
                kind, tex = str(rng.choice(KINDS)), str(rng.choice(TEXTURES))
                cands.append(Shape(kind, str(col), tex, cx, cy, size, bool(rng.random() < 0.5)))
            kept = self._visible(cands)
            if kept:
                break
        shapes = tuple(s for s, _ in kept)
        order = rng.permutation(len(shapes))
        phrases = [shapes[i].phrase() for i in order]
        listed = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
        return Scene(bg, shapes, tuple(m for _, m in kept), f"{listed} on a {bg} background", int(rng.integers(0, 2**31 - 1)))

    def _visible(self, cands: list[Shape]) -> list[tuple[Shape, np.ndarray]]:
        """Top-down, so dropping a remnant never changes what the shapes above it show."""
        r = self.resolution
        covered = np.zeros((r, r), dtype=bool)
        kept = []
        for s in reversed(cands):
            full = shape_mask(s, r)
            vis = full & ~covered
            area = int(vis.sum())
            if area < MIN_AREA * r * r:
                continue
            if s.texture != "plain":
                # A remnant that happens to miss the pattern would look plain: not drawn, so the
                # texture metric is exact on ground truth.
                frac = self._patterns[s.texture][vis].mean()
                if not 0.2 <= frac <= 0.8:
                    continue
            covered |= full
            kept.append((s, vis))
        return kept[::-1]

    def __getitem__(self, index: int) -> Sample:
        sc = self.scene(index)
        img = np.empty((self.resolution, self.resolution, 3), dtype=np.uint8)
        img[:] = _BACKGROUNDS[sc.background]
        ents = []
        for i, (s, m) in enumerate(zip(sc.shapes, sc.masks)):
            rgb, dark = _PALETTE[s.color]
            img[m] = rgb
            img[m & self._patterns[s.texture]] = dark
            prompt = s.phrase(full=False)
            ents.append(Entity(prompt=prompt, mask=m, label=entity_label(i, prompt)))
        layout = Layout(sc.caption, tuple(ents), self.resolution, self.resolution, sc.seed)
        return Sample(self.key(index), img, layout)

    def attributes(self, index: int) -> list[dict]:
        """Per entity, in layout order: what the metrics check."""
        return [
            {
                "kind": s.kind,
                "color": s.color,
                "texture": s.texture,
                "rgb": _PALETTE[s.color][0],
                "dark_rgb": _PALETTE[s.color][1],
            }
            for s in self.scene(index).shapes
        ]

    def background(self, index: int) -> tuple[str, RGB]:
        name = self.scene(index).background
        return name, _BACKGROUNDS[name]


def map_colour(i: int, n: int) -> RGB:
    """Segmentation colour of entity ``i`` of ``n``: red grows with ``i`` and is never 0.

    ``layout_from_segmentation`` orders entities by sorted RGB; a strictly increasing red channel
    makes that order the entity order, so the round trip keeps indices, and black stays background.
    """
    return (255 * (i + 1) // n, (80 + 97 * i) % 256, (200 + 151 * i) % 256)


def colour_map(sample: Sample) -> tuple[np.ndarray, dict]:
    """Colour-coded segmentation image (background black) and the official JSON for it."""
    lay = sample.layout
    masks = lay.masks
    n = len(masks)
    if n > 255:
        raise LayoutError(f"{sample.key}: {n} entities do not fit the colour scheme (at most 255)")
    if n and (masks.sum(axis=0) > 1).any():
        raise LayoutError(f"{sample.key}: entities overlap, which one colour per pixel cannot express")
    seg = np.zeros((lay.height, lay.width, 3), dtype=np.uint8)
    info = []
    for i, (e, m) in enumerate(zip(lay.entities, masks)):
        if not m.any():
            raise LayoutError(f"{sample.key}: {e.label or f'entity {i + 1}'} is empty and would vanish from the colour map")
        c = map_colour(i, n)
        seg[m] = c
        info.append({"color": list(c), "text": e.prompt})
    spec: dict = {"caption": lay.global_prompt}
    if lay.seed is not None:
        spec["seed"] = int(lay.seed)
    spec["segments_info"] = info
    return seg, spec
