"""Exact scores for images generated from synthetic-shape layouts.

Shapes are drawn from a few far-apart colours (each with one second shade), so a generated pixel
can be assigned to a colour family by nearest colour and every question (right place? right
colour? another entity's colour bleeding in? texture?) becomes a count, with no learned judge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from seg2any.errors import LayoutError
from seg2any.layout.layout import Layout
from seg2any.layout.token_grid import nearest_exact_index

from .data.synthetic import palette as default_palette

RGB = tuple[int, int, int]
BACKGROUND = "background"
PLAIN_MAX_DARK = 0.15  # plain: less than this share of the second shade
PATTERN_DARK = (0.15, 0.85)  # striped/dotted: the second shade within these bounds (inclusive)


def classify(
    image: np.ndarray, families: Mapping[str, tuple[RGB, RGB]], background: RGB
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(family index (H, W), second-shade flag (H, W), family names); index 0 is the background.

    Ties go to the earlier prototype: background first, then families in the given order, each
    colour before its second shade; so the result never depends on dict hashing or float noise.
    """
    names = [BACKGROUND]
    protos: list[tuple[RGB, int, bool]] = [(tuple(background), 0, False)]
    for name, (rgb, dark) in families.items():
        if tuple(rgb) == tuple(background):
            continue  # the background's own colour is the background class
        names.append(name)
        protos.append((tuple(rgb), len(names) - 1, False))
        protos.append((tuple(dark), len(names) - 1, True))
    px = image.reshape(-1, 3).astype(np.int32)
    best = np.full(px.shape[0], np.iinfo(np.int32).max, dtype=np.int32)
    fam = np.zeros(px.shape[0], dtype=np.int32)
    dark = np.zeros(px.shape[0], dtype=bool)
    for rgb, f, is_dark in protos:
        d = ((px - np.asarray(rgb, dtype=np.int32)) ** 2).sum(axis=1)
        better = d < best  # strict: an equal distance keeps the earlier prototype
        best[better] = d[better]
        fam[better] = f
        dark[better] = is_dark
    return fam.reshape(image.shape[:2]), dark.reshape(image.shape[:2]), names


def shape_metrics(
    image: np.ndarray,
    layout: Layout,
    attributes: Sequence[Mapping],
    background: RGB,
    palette: Mapping[str, tuple[RGB, RGB]] | None = None,
) -> tuple[list[dict], dict]:
    """Per-entity records and their aggregate for one generated image.

    ``attributes[i]`` (``color``, ``rgb``, ``dark_rgb``, ``texture``) describes ``layout.entities[i]``;
    its colours override the palette entry of the same name. Entities should have distinct colours:
    leakage between two entities of the same colour cannot be seen, and both share one IoU target.
    """
    image = np.asarray(image)
    if image.shape != (layout.height, layout.width, 3) or image.dtype != np.uint8:
        raise LayoutError(f"image is {image.dtype} {tuple(image.shape)}, expected uint8 ({layout.height}, {layout.width}, 3)")
    if len(attributes) != len(layout.entities):
        raise LayoutError(f"{len(attributes)} attribute records for {len(layout.entities)} entities")
    families = dict(default_palette() if palette is None else palette)
    for a in attributes:
        families[a["color"]] = (tuple(a["rgb"]), tuple(a["dark_rgb"]))
    fam, dark, names = classify(image, families, background)
    ids = []
    for a in attributes:
        if a["color"] not in names:
            raise LayoutError(f"entity colour {a['color']!r} is the background colour {list(background)}")
        ids.append(names.index(a["color"]))
    records = []
    for i, (ent, a) in enumerate(zip(layout.entities, attributes)):
        gt = ent.mask
        own = ids[i]
        pred = fam == own
        area = int(gt.sum())
        union = int((gt | pred).sum())
        inside = fam[gt]
        others = sorted({ids[j] for j in range(len(ids)) if j != i} - {own})
        if area:
            majority = int(np.argmax(np.bincount(inside, minlength=len(names))))  # argmax: lowest id wins ties
            dark_frac = float(dark[gt].mean())
            leak = float(np.isin(inside, others).mean()) if others else 0.0
        else:
            majority, dark_frac, leak = -1, float("nan"), float("nan")
        lo, hi = PATTERN_DARK
        tex_ok = dark_frac < PLAIN_MAX_DARK if a["texture"] == "plain" else lo <= dark_frac <= hi
        records.append(
            {
                "index": i,
                "prompt": ent.prompt,
                "color": a["color"],
                "texture": a["texture"],
                "area": area,
                "iou": int((gt & pred).sum()) / union if area else float("nan"),
                "majority": names[majority] if majority >= 0 else None,
                "colour_ok": majority == own,
                "leakage": leak,
                "dark_fraction": dark_frac,
                "texture_ok": bool(tex_ok),
            }
        )
    return records, aggregate(records)


def aggregate(records: Sequence[Mapping]) -> dict:
    """Means over entities (pool records of many images first); entities with empty masks are left out."""
    rs = [r for r in records if r["area"] > 0]
    if not rs:
        return {
            "miou": float("nan"),
            "colour_acc": float("nan"),
            "leakage": float("nan"),
            "texture_acc": float("nan"),
            "n_entities": 0,
        }
    return {
        "miou": float(np.mean([r["iou"] for r in rs])),
        "colour_acc": float(np.mean([r["colour_ok"] for r in rs])),
        "leakage": float(np.mean([r["leakage"] for r in rs])),
        "texture_acc": float(np.mean([r["texture_ok"] for r in rs])),
        "n_entities": len(rs),
    }


def segment_labels(layout: Layout) -> np.ndarray:
    """(H, W) int: 1 + the index of the entity covering each pixel (the last one on overlaps), 0 = background."""
    labels = np.zeros((layout.height, layout.width), np.int64)
    for i, e in enumerate(layout.entities):
        labels[e.mask] = i + 1
    return labels


def variance_explained(image: np.ndarray, labels: np.ndarray) -> float:
    """1 - within-segment variance / total variance of the image's pixel colours.

    How much of the picture the layout accounts for, with no knowledge of what each entity should
    look like: uniform noise scores about 0, flat regions that follow the segments score 1. The
    ``labels`` map (any size) is resized to the image by nearest neighbour. A uniform image scores 0.
    """
    img = np.asarray(image, np.float64).reshape(image.shape[0], image.shape[1], -1)
    h, w = img.shape[:2]
    lab = np.asarray(labels)[nearest_exact_index(labels.shape[0], h)][:, nearest_exact_index(labels.shape[1], w)]
    px = img.reshape(h * w, -1)
    total = ((px - px.mean(axis=0)) ** 2).sum()
    if total == 0:
        return 0.0
    _, seg = np.unique(lab.reshape(-1), return_inverse=True)
    n = np.bincount(seg).astype(np.float64)
    sums = np.stack([np.bincount(seg, weights=px[:, c]) for c in range(px.shape[1])], 1)
    within = ((px - (sums / n[:, None])[seg]) ** 2).sum()
    return float(1.0 - within / total)
