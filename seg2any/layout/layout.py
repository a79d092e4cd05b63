"""Layouts: a global prompt plus entities, each a binary mask with its own prompt.

Two ways in, matching how people hold segmentation data:
* a list of masks with prompts (ComfyUI MASK inputs, SAM outputs, painted masks);
* a colour-coded segmentation image plus the official Seg2Any JSON
  (``caption``, ``seed``, ``segments_info[color, text]``).

The colour path follows the official ``infer.py`` exactly: colours match bit for bit (two blues
one step apart are two entities), entity order is the sorted RGB order of the colours, and
colours that the JSON does not list are background. Unlike the official code nothing is dropped
silently: a listed colour missing from the image is an error, unlisted colours are reported.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import LayoutError

RGB = tuple[int, int, int]


@dataclass(frozen=True, eq=False)
class Entity:
    """One region: what to draw (prompt) and where (mask at the layout's pixel resolution)."""

    prompt: str
    mask: np.ndarray  # bool (H, W)
    color: RGB | None = None
    label: str = ""
    order: int | None = None  # place in the user's list (the JSON / editor order), 0-based; None: as stored

    def place(self, index: int) -> int:
        """0-based place in the user's list: ``order``, or ``index`` (its place as stored) when unset."""
        return self.order if self.order is not None else index

    @property
    def area(self) -> int:
        return int(self.mask.sum())


@dataclass(frozen=True, eq=False)
class Layout:
    """A global caption and N entities sharing one pixel grid.

    ``eq=False`` keeps identity semantics: layouts travel through ComfyUI conditioning, where
    equality decides batching, and two layouts that merely look alike must not be merged.
    """

    global_prompt: str
    entities: tuple[Entity, ...]
    height: int
    width: int
    seed: int | None = None
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self):
        for i, e in enumerate(self.entities):
            if e.mask.shape != (self.height, self.width):
                raise LayoutError(
                    f"{e.label or f'entity {i + 1}'}: mask is {_wh(e.mask.shape)} but the layout is {self.width}x{self.height}"
                )

    @property
    def prompts(self) -> list[str]:
        return [e.prompt for e in self.entities]

    @property
    def masks(self) -> np.ndarray:
        """(N, H, W) bool; (0, H, W) for a layout without entities."""
        if not self.entities:
            return np.zeros((0, self.height, self.width), dtype=bool)
        return np.stack([e.mask for e in self.entities])

    def with_prompts(self, global_prompt: str, entity_prompts: Sequence[str]) -> Layout:
        """Same masks, other words: how the official true-CFG path builds its negative layout."""
        if len(entity_prompts) != len(self.entities):
            raise LayoutError(f"{len(entity_prompts)} prompts for {len(self.entities)} entities")
        ents = tuple(
            Entity(prompt=p, mask=e.mask, color=e.color, label=e.label, order=e.order)
            for e, p in zip(self.entities, entity_prompts)
        )
        return Layout(global_prompt, ents, self.height, self.width, self.seed, self.notes)


def _wh(shape) -> str:
    return f"{shape[1]}x{shape[0]}"


def entity_label(index: int, prompt: str, color: RGB | None = None) -> str:
    """How messages name an entity: its 1-based place in the user's list (the JSON's segments, the
    editor's rows; never the sorted-colour order the model reads them in), its colour as the
    editor shows it, and a prompt excerpt: "entity 1 (#ff0000) 'a cat'"."""
    short = prompt if len(prompt) <= 40 else prompt[:37] + "..."
    col = " (#{:02x}{:02x}{:02x})".format(*color) if color is not None else ""
    return f"entity {index + 1}{col} '{short}'" if short else f"entity {index + 1}{col}"


# ----------------------------------------------------------------------------------------------
# masks + prompts


def _as_bool_mask(m: Any, what: str) -> np.ndarray:
    try:
        arr = m.detach().cpu().numpy() if hasattr(m, "detach") else np.asarray(m)
    except Exception as exc:  # pragma: no cover - defensive
        raise LayoutError(f"{what}: cannot read the mask ({exc})") from exc
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise LayoutError(f"{what}: a mask must be 2-D (H, W), got shape {tuple(arr.shape)}")
    if arr.dtype == bool:
        return arr.copy()
    if np.issubdtype(arr.dtype, np.floating):
        return arr > 0.5
    return arr > (127 if arr.dtype == np.uint8 and arr.max() > 1 else 0)


def layout_from_masks(
    global_prompt: str,
    masks: Iterable[Any],
    prompts: Sequence[str],
    *,
    image_size: tuple[int, int] | None = None,
    seed: int | None = None,
) -> Layout:
    """Build a layout from masks (bool/0-1 float/0-255) and one prompt per mask.

    ``image_size`` (height, width), when given, is the size the masks must have (e.g. the
    reference image the user painted on), so a mismatch is reported against it.
    """
    masks = list(masks)
    prompts = list(prompts)
    if len(masks) != len(prompts):
        raise LayoutError(f"{len(masks)} masks but {len(prompts)} prompts: give exactly one prompt per mask")
    ents: list[Entity] = []
    ref_shape: tuple[int, int] | None = tuple(image_size) if image_size is not None else None
    ref_name = "the image"
    for i, (m, p) in enumerate(zip(masks, prompts)):
        p = (p or "").strip()
        label = entity_label(i, p)
        if not p:
            raise LayoutError(f"entity {i + 1}: the prompt is empty")
        mb = _as_bool_mask(m, label)
        if ref_shape is None:
            ref_shape, ref_name = mb.shape, label
        elif mb.shape != ref_shape:
            raise LayoutError(f"{label}: mask is {_wh(mb.shape)} but {ref_name} is {_wh(ref_shape)}")
        if not mb.any():
            raise LayoutError(f"{label}: the mask is empty (no pixel is set)")
        ents.append(Entity(prompt=p, mask=mb, label=label, order=i))
    if ref_shape is None:
        raise LayoutError("a layout needs at least one mask, or an image size")
    return Layout((global_prompt or "").strip(), tuple(ents), int(ref_shape[0]), int(ref_shape[1]), seed)


# ----------------------------------------------------------------------------------------------
# colour image + official JSON


@dataclass(frozen=True)
class SegmentSpec:
    """The parsed colour -> prompt table (official JSON or one 'colour: prompt' per line)."""

    caption: str | None
    seed: int | None
    segments: tuple[tuple[RGB, str], ...]


_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")


def parse_color(value: Any, where: str) -> RGB:
    """[r, g, b] (0-255 ints), '#rrggbb' or 'r,g,b'."""
    if isinstance(value, str):
        s = value.strip()
        m = _HEX.match(s)
        if m:
            h = m.group(1)
            return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))
        parts = [p for p in re.split(r"[\s,;()\[\]]+", s) if p]
        value = parts
    if isinstance(value, (list, tuple)) and len(value) == 3:
        out = []
        for v in value:
            try:
                f = float(v)
            except (TypeError, ValueError):
                out = None
                break
            if f != int(f) or not 0 <= f <= 255:
                out = None
                break
            out.append(int(f))
        if out is not None:
            return (out[0], out[1], out[2])
    raise LayoutError(f"{where}: a colour must be three integers 0-255 (or '#rrggbb'), got {value!r}")


def parse_segment_spec(spec: str | dict) -> SegmentSpec:
    """Read the official JSON (a dict or its text) or a plain 'colour: prompt' list."""
    if isinstance(spec, str):
        text = spec.strip()
        if not text:
            raise LayoutError("the colour -> prompt table is empty")
        if text[0] in "{[":
            try:
                spec = json.loads(text)
            except json.JSONDecodeError as exc:
                raise LayoutError(f"segments JSON is malformed: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
        else:
            return _parse_lines(text)
    if isinstance(spec, list):
        spec = {"segments_info": spec}
    if not isinstance(spec, dict):
        raise LayoutError(f"segments JSON must be an object with 'segments_info', got {type(spec).__name__}")
    if "segments_info" not in spec:
        raise LayoutError("segments JSON has no 'segments_info' list")
    info = spec["segments_info"]
    if not isinstance(info, list):
        raise LayoutError(f"'segments_info' must be a list, got {type(info).__name__}")
    caption = spec.get("caption")
    if caption is not None and not isinstance(caption, str):
        raise LayoutError(f"'caption' must be a string, got {type(caption).__name__}")
    seed = spec.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise LayoutError(f"'seed' must be an integer, got {seed!r}")
    segs = []
    for i, item in enumerate(info):
        where = f"segments_info[{i}]"
        if not isinstance(item, dict):
            raise LayoutError(f"{where} must be an object with 'color' and 'text'")
        if "color" not in item:
            raise LayoutError(f"{where} has no 'color'")
        color = parse_color(item["color"], where)
        text = item.get("text")
        if not isinstance(text, str) or not text.strip():
            raise LayoutError(f"{where} (colour {list(color)}): 'text' is missing or empty")
        segs.append((color, text.strip()))
    _check_duplicates(segs, lambda i: f"segments_info[{i}]")
    return SegmentSpec(caption, seed, tuple(segs))


def _parse_lines(text: str) -> SegmentSpec:
    segs = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or (line.startswith("#") and not re.match(r"^#[0-9a-fA-F]{6}(?![0-9a-fA-F])", line)):
            continue  # blank or a comment; '#rrggbb ...' is an entry
        if ":" not in line:
            raise LayoutError(f"line {n}: expected 'colour: prompt' (e.g. '#ff0000: a red car'), got {line!r}")
        col, prompt = line.split(":", 1)
        color = parse_color(col, f"line {n}")
        if not prompt.strip():
            raise LayoutError(f"line {n} (colour {list(color)}): the prompt is empty")
        segs.append((color, prompt.strip()))
    if not segs:
        raise LayoutError("the colour -> prompt table has no entries")
    _check_duplicates(segs, lambda i: f"entry {i + 1}")
    return SegmentSpec(None, None, tuple(segs))


def _check_duplicates(segs, name):
    seen: dict[RGB, int] = {}
    for i, (c, _) in enumerate(segs):
        if c in seen:
            raise LayoutError(f"colour {list(c)} is listed twice: {name(seen[c])} and {name(i)}")
        seen[c] = i


def as_rgb_uint8(image: Any) -> np.ndarray:
    """(H, W, 3) uint8 from uint8 or 0..1 float data (ComfyUI IMAGE rows); refuses non-RGB.

    A float image loaded from a PNG holds v/255 exactly, so rounding recovers the bytes.
    """
    arr = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 2:
        raise LayoutError(f"the segmentation image must be RGB (H, W, 3); got a single-channel image {_wh(arr.shape)}")
    if arr.ndim != 3:
        raise LayoutError(f"the segmentation image must be RGB (H, W, 3); got shape {tuple(arr.shape)}")
    if arr.shape[2] == 4:
        alpha = arr[..., 3]
        opaque = 255 if arr.dtype == np.uint8 else 1.0
        if not np.all(alpha == opaque):
            raise LayoutError("the segmentation image has transparent pixels (RGBA); save it as RGB so every pixel has a colour")
        arr = arr[..., :3]
    if arr.shape[2] != 3:
        raise LayoutError(f"the segmentation image must be RGB (H, W, 3); got {arr.shape[2]} channels")
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if np.issubdtype(arr.dtype, np.floating):
        if arr.min() < 0 or arr.max() > 1:
            raise LayoutError("a float segmentation image must hold values in 0..1")
        return np.rint(arr.astype(np.float64) * 255.0).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        if arr.min() < 0 or arr.max() > 255:
            raise LayoutError("an integer segmentation image must hold values in 0..255")
        return arr.astype(np.uint8)
    raise LayoutError(f"unsupported segmentation image dtype {arr.dtype}")


def image_colors(seg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(colours (K,3) sorted lexicographically, pixel counts (K,), index map (H, W))."""
    flat = seg.reshape(-1, 3).astype(np.int64)
    keys = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    uniq, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    colors = np.stack([(uniq >> 16) & 255, (uniq >> 8) & 255, uniq & 255], axis=1)
    return colors, counts, inverse.reshape(seg.shape[:2])


def layout_from_segmentation(
    image: Any,
    spec: str | dict | SegmentSpec,
    *,
    global_prompt: str | None = None,
) -> Layout:
    """Layout from a colour-coded segmentation image and its colour -> prompt table.

    ``global_prompt`` overrides the JSON ``caption`` when it is not empty.
    """
    seg = as_rgb_uint8(image)
    spec = spec if isinstance(spec, SegmentSpec) else parse_segment_spec(spec)
    caption = (global_prompt or "").strip() or (spec.caption or "").strip()
    colors, counts, index = image_colors(seg)
    present = {tuple(int(v) for v in c): k for k, c in enumerate(colors)}
    text_of = dict(spec.segments)
    place = {c: i for i, (c, _) in enumerate(spec.segments)}
    h, w = seg.shape[:2]
    missing = [(c, t) for c, t in spec.segments if c not in present]
    if missing:
        raise LayoutError(_missing_message(missing, spec.segments, present, colors, counts, (w, h)))
    ents = []
    notes = []
    unlisted = []
    # Official order: sorted RGB triples (np.unique), whatever the JSON order.
    for k, c in enumerate(colors):
        color = (int(c[0]), int(c[1]), int(c[2]))
        if color not in text_of:
            unlisted.append((color, int(counts[k])))
            continue
        prompt = text_of[color]
        i = place[color]  # named by its place in the JSON, though the model reads sorted colours
        ents.append(Entity(prompt=prompt, mask=index == k, color=color, label=entity_label(i, prompt, color), order=i))
    if unlisted:
        notes.append(unlisted_note(unlisted, h * w))
    return Layout(caption, tuple(ents), h, w, spec.seed, tuple(notes))


def _pct(n: int, total: int) -> str:
    """A share that never reads 0.0% for pixels that exist."""
    p = 100.0 * n / total
    return f"{p:.1f}%" if p >= 0.1 or n == 0 else "<0.1%"


def unlisted_note(unlisted: Sequence[tuple[RGB, int]], total: int, show: int = 3) -> str:
    """One line about colours the table does not list: how many, their pixel share, the largest.

    An anti-aliased or JPEG-saved map has dozens of blended edge colours of a few pixels each;
    listing them one by one buries the one that matters (usually the background).
    """
    ranked = sorted(unlisted, key=lambda t: -t[1])
    n_px = sum(n for _, n in ranked)
    largest = ", ".join(f"{list(c)} {_pct(n, total)}" for c, n in ranked[:show])
    if len(ranked) == 1:
        return f"1 colour not in the table counts as background: {largest} of the pixels ({n_px} pixels)"
    rest = ranked[show:]
    tail = ""
    if rest:
        m = sum(n for _, n in rest)
        tail = f"; the other {len(rest)} cover {_pct(m, total)} ({m} pixels; anti-aliased edges or compression?)"
    return (
        f"{len(ranked)} colours not in the table count as background, {_pct(n_px, total)} of the pixels ({n_px} pixels); "
        f"largest {largest}{tail}"
    )


def _missing_message(missing, segments, present, colors, counts, size) -> str:
    """Listed colours absent from the image, with the listed entity colour nearest to the first.

    The hint names an entity the table lists (with its prompt), never an unlisted colour such as
    the background: a near miss is a typo of another entity's colour far more often than of black.
    """
    w, h = size
    color, text = missing[0]
    head = f"colour {list(color)} ('{text[:40]}') does not occur in the segmentation image ({w}x{h})"
    if len(missing) > 1:
        head += f"; neither do {len(missing) - 1} other listed colour(s): " + ", ".join(str(list(c)) for c, _ in missing[1:6])
        head += " ..." if len(missing) > 6 else ""
    found = [(c, t) for c, t in segments if c in present]
    if found:
        d = [int(np.abs(np.array(c) - np.array(color)).sum()) for c, _ in found]
        c, t = found[int(np.argmin(d))]
        n = int(counts[present[c]])
        return head + f"; the nearest listed entity colour in the image is {list(c)} ('{t[:40]}', {n} pixels)"
    top = np.argsort(-counts, kind="stable")[:3]
    shown = ", ".join(f"{[int(v) for v in colors[k]]} {_pct(int(counts[k]), w * h)}" for k in top)
    return head + f"; none of the listed colours occurs (the wrong image?): its main colours are {shown}"


def load_layout_pair(json_path: str, png_path: str | None = None) -> Layout:
    """An official-format layout from its files: X.json and its colour map (X.png beside it unless given)."""
    from PIL import Image

    png = png_path or os.path.splitext(json_path)[0] + ".png"
    if not os.path.isfile(png):
        raise FileNotFoundError(f"no segmentation image {png} next to {json_path}")
    with open(json_path, encoding="utf-8") as f:
        spec = json.load(f)
    with Image.open(png) as im:
        return layout_from_segmentation(np.array(im), spec)
