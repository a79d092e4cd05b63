"""The Layout Editor's document: a whole Seg2Any layout stored as one compact JSON string.

The editor node keeps its layout inside the workflow (a widget value), so a shared workflow file
carries the painting. The string arrives from any client, so it is parsed defensively and every
size is bounded before anything is decoded. Format (``version`` 1)::

    {"version": 1, "width": W, "height": H, "caption": "...",
     "entities": [{"color": "#rrggbb", "prompt": "...", "visible": true, "locked": false}, ...],
     "seed": 42, "map": "data:image/png;base64,..."}

Entities are in the user's order (the editor's list), which is also the order of the output JSON.
``seed`` (optional) is the official JSON's seed, kept from an import for the export and the
outputs; ``locked`` (optional) is editor state only (strokes leave a locked entity's pixels).

``map`` is a W x H RGBA PNG of the colour map: each painted pixel holds its entity's colour, the
background is transparent (any colour may be an entity's, black included: the official badge example
uses black for a badge on a white background). Opaque black also reads as background when no entity
is black, so a plain RGB colour map is a valid map too. A PNG keeps painted shapes small (kilobytes
where a raw map is megabytes). Hidden
entities (``visible: false``) stay in the document but are left out of the outputs, the way a
hidden layer is left out of an export.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
from dataclasses import dataclass

import numpy as np

from ..errors import LayoutError
from .layout import RGB, Entity, Layout, as_rgb_uint8, entity_label, parse_segment_spec

VERSION = 1
MIN_SIDE, MAX_SIDE = 16, 4096
MAX_ENTITIES = 255  # the editor paints into an 8-bit index map (0 = background)
MAX_PROMPT_CHARS = 2000
MAX_CAPTION_CHARS = 10000
MAX_DOCUMENT_CHARS = 16 * 1024 * 1024  # a 4096^2 map of painted shapes is far below this
BACKGROUND_CHOICES: tuple[RGB, ...] = ((0, 0, 0), (255, 255, 255), (128, 128, 128), (1, 2, 3))
PNG_PREFIX = "data:image/png;base64,"
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass(frozen=True)
class DocEntity:
    color: RGB
    prompt: str
    visible: bool = True


@dataclass(frozen=True, eq=False)
class EditorDocument:
    width: int
    height: int
    caption: str
    entities: tuple[DocEntity, ...]
    labels: np.ndarray  # (H, W) int16: 0 = background, i + 1 = entities[i]
    seed: int | None = None


def hex_color(c: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*c)


def _entity_name(i: int, e: DocEntity | None = None, prompt: str = "") -> str:
    return entity_label(i, e.prompt if e is not None else prompt, e.color if e is not None else None)


# Worded here once: the editor node's errors and the editor's status line (conditioning/problems.py)
NO_VISIBLE = "the layout editor has no visible entity: add one (or show a hidden one) and paint it"


def empty_prompt_message(label: str) -> str:
    return f"{label}: the prompt is empty"


def unpainted_message(label: str) -> str:
    return f"{label} is not painted anywhere: paint it, hide it or delete it"


def _int_field(doc: dict, key: str) -> int:
    v = doc.get(key)
    if isinstance(v, bool) or not isinstance(v, int):
        raise LayoutError(f"layout editor document: '{key}' must be an integer, got {v!r}")
    if not MIN_SIDE <= v <= MAX_SIDE:
        raise LayoutError(f"layout editor document: {key} {v} is outside {MIN_SIDE}..{MAX_SIDE} pixels")
    return v


def _parse_entities(raw) -> tuple[DocEntity, ...]:
    if not isinstance(raw, list):
        raise LayoutError(f"layout editor document: 'entities' must be a list, got {type(raw).__name__}")
    if len(raw) > MAX_ENTITIES:
        raise LayoutError(f"layout editor document: {len(raw)} entities, at most {MAX_ENTITIES} are supported")
    out: list[DocEntity] = []
    seen: dict[RGB, int] = {}
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise LayoutError(f"layout editor document: entity {i + 1} must be an object with 'color' and 'prompt'")
        prompt = item.get("prompt", "")
        if not isinstance(prompt, str):
            raise LayoutError(f"entity {i + 1}: 'prompt' must be text, got {type(prompt).__name__}")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise LayoutError(
                f"{_entity_name(i, prompt=prompt)}: the prompt has {len(prompt)} characters (limit {MAX_PROMPT_CHARS})"
            )
        color = item.get("color")
        if not isinstance(color, str) or not _HEX.match(color):
            raise LayoutError(f"{_entity_name(i, prompt=prompt)}: colour must be '#rrggbb', got {color!r}")
        rgb = (int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16))
        visible = item.get("visible", True)
        if not isinstance(visible, bool):
            raise LayoutError(f"{_entity_name(i, prompt=prompt)}: 'visible' must be true or false, got {visible!r}")
        e = DocEntity(rgb, prompt.strip(), visible)
        if rgb in seen:
            raise LayoutError(
                f"{_entity_name(i, e)} has the same colour as entity {seen[rgb] + 1}: every entity needs its own colour"
            )
        seen[rgb] = i
        out.append(e)
    return tuple(out)


def _decode_map(data, width: int, height: int) -> np.ndarray:
    """(H, W, 4) uint8 RGBA pixels of the stored PNG, size checked before the pixels are decoded."""
    from PIL import Image

    if not isinstance(data, str) or not data.startswith(PNG_PREFIX):
        raise LayoutError("layout editor document: 'map' must be a PNG data URL ('data:image/png;base64,...')")
    try:
        raw = base64.b64decode(data[len(PNG_PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise LayoutError(f"layout editor document: 'map' is not valid base64 ({exc})") from exc
    try:
        img = Image.open(io.BytesIO(raw))
        if img.format != "PNG":
            raise LayoutError(f"layout editor document: 'map' holds a {img.format} image, expected PNG")
        if img.size != (width, height):
            raise LayoutError(
                f"layout editor document: the painted map is {img.size[0]}x{img.size[1]} but the layout is {width}x{height}"
            )
        img.load()
    except LayoutError:
        raise
    except Exception as exc:  # PIL raises many types for broken files
        raise LayoutError(f"layout editor document: 'map' is not a readable PNG ({exc})") from exc
    return np.asarray(img.convert("RGBA"))


def _keys(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]


def _labels(rgba: np.ndarray, entities: tuple[DocEntity, ...]) -> np.ndarray:
    """Entity number (1-based) per pixel; transparent (and unlisted opaque black) is background."""
    keys = _keys(rgba[..., :3])
    painted = rgba[..., 3] >= 128
    colours = np.array([(r << 16) | (g << 8) | b for r, g, b in (e.color for e in entities)] + [-1], np.int64)
    order = np.argsort(colours)
    pos = np.clip(np.searchsorted(colours[order], keys), 0, len(colours) - 1)
    idx = order[pos]
    hit = painted & (colours[idx] == keys)
    labels = np.where(hit, idx + 1, 0).astype(np.int16)
    stray = painted & ~hit & ~((keys == 0) & (0 not in colours))
    if stray.any():
        ks, ns = np.unique(keys[stray], return_counts=True)
        shown = ", ".join(
            f"{hex_color(((k >> 16) & 255, (k >> 8) & 255, k & 255))} ({n} pixels)"
            for k, n in sorted(zip(ks, ns), key=lambda t: -t[1])[:5]
        )
        raise LayoutError(f"the painted map holds {len(ks)} colour(s) that no entity lists: {shown}")
    return labels


def parse_document(text: str) -> EditorDocument:
    """The validated document; raises LayoutError naming the bad field, entity or colour."""
    if not isinstance(text, str) or not text.strip():
        raise LayoutError("the layout editor is empty: add an entity and paint it")
    if len(text) > MAX_DOCUMENT_CHARS:
        raise LayoutError(f"layout editor document is {len(text)} characters, over the {MAX_DOCUMENT_CHARS} limit")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LayoutError(f"layout editor document is not valid JSON: {exc.msg} at column {exc.colno}") from exc
    if not isinstance(doc, dict):
        raise LayoutError(f"layout editor document must be a JSON object, got {type(doc).__name__}")
    if doc.get("version") != VERSION:
        raise LayoutError(f"layout editor document version {doc.get('version')!r} is not supported (expected {VERSION})")
    width, height = _int_field(doc, "width"), _int_field(doc, "height")
    caption = doc.get("caption", "")
    if not isinstance(caption, str):
        raise LayoutError(f"layout editor document: 'caption' must be text, got {type(caption).__name__}")
    if len(caption) > MAX_CAPTION_CHARS:
        raise LayoutError(f"the caption has {len(caption)} characters (limit {MAX_CAPTION_CHARS})")
    entities = _parse_entities(doc.get("entities", []))
    seed = doc.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise LayoutError(f"layout editor document: 'seed' must be an integer, got {seed!r}")
    labels = _labels(_decode_map(doc.get("map"), width, height), entities)
    return EditorDocument(width, height, caption.strip(), entities, labels, seed)


def background_colour(entities) -> RGB:
    """A background colour no visible entity uses (black unless an entity is black)."""
    used = {e.color for e in entities}
    return next(c for c in BACKGROUND_CHOICES if c not in used)


def official_outputs(doc: EditorDocument) -> tuple[np.ndarray, str, str]:
    """(colour map (H, W, 3) uint8, official JSON text, caption) of the visible entities.

    This is exactly what 'Load Seg2Any Layout' reads from X.png + X.json (the background gets a
    colour no visible entity uses, and is not listed), so every node after the editor sees the same
    inputs as with the file-based layout.
    """
    visible = [(i, e) for i, e in enumerate(doc.entities) if e.visible]
    if not visible:
        raise LayoutError(NO_VISIBLE)
    counts = np.bincount(doc.labels.ravel(), minlength=len(doc.entities) + 1)
    for i, e in visible:
        if not e.prompt:
            raise LayoutError(empty_prompt_message(_entity_name(i, e)))
        if counts[i + 1] == 0:
            raise LayoutError(unpainted_message(_entity_name(i, e)))
    shown = [e for _, e in visible]
    palette = np.array(
        [background_colour(shown)] + [e.color if e.visible else background_colour(shown) for e in doc.entities], np.uint8
    )
    rgb = palette[doc.labels]
    spec: dict = {"caption": doc.caption}
    if doc.seed is not None:
        spec["seed"] = doc.seed
    spec["segments_info"] = [{"color": list(e.color), "text": e.prompt} for e in shown]
    return rgb, json.dumps(spec, ensure_ascii=False), doc.caption


def document_layout(doc: EditorDocument) -> Layout:
    """The visible entities as a Layout in the editor's row order, named by their row ("entity 3"
    is row 3, hidden rows counted), with nothing refused: what the status line checks."""
    ents = tuple(
        Entity(e.prompt, doc.labels == i + 1, e.color, _entity_name(i, e), order=i)
        for i, e in enumerate(doc.entities)
        if e.visible
    )
    return Layout(doc.caption, ents, doc.height, doc.width, doc.seed)


def encode_document(doc: EditorDocument) -> str:
    """The compact JSON string the editor widget stores (the inverse of ``parse_document``)."""
    from PIL import Image

    palette = np.array([(0, 0, 0, 0)] + [(*e.color, 255) for e in doc.entities], np.uint8)
    buf = io.BytesIO()
    Image.fromarray(palette[doc.labels], "RGBA").save(buf, format="PNG", optimize=True)
    body = {
        "version": VERSION,
        "width": doc.width,
        "height": doc.height,
        "caption": doc.caption,
        "entities": [{"color": hex_color(e.color), "prompt": e.prompt, "visible": e.visible} for e in doc.entities],
        **({"seed": doc.seed} if doc.seed is not None else {}),
        "map": PNG_PREFIX + base64.b64encode(buf.getvalue()).decode("ascii"),
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def document_from_official(image, spec) -> EditorDocument:
    """An editor document from the official pair (colour image + JSON): listed colours become
    entities in JSON order, unlisted colours background, as the official reader treats them."""
    rgb = as_rgb_uint8(image)
    parsed = parse_segment_spec(spec)
    h, w = rgb.shape[:2]
    if not (MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE):
        raise LayoutError(f"the layout is {w}x{h}; the editor takes {MIN_SIDE}..{MAX_SIDE} pixels a side")
    ents = tuple(DocEntity(c, t) for c, t in parsed.segments)
    if len(ents) > MAX_ENTITIES:
        raise LayoutError(f"{len(ents)} entities, the editor supports at most {MAX_ENTITIES}")
    keys = _keys(rgb)
    labels = np.zeros((h, w), np.int16)
    for i, e in enumerate(ents):
        labels[keys == ((e.color[0] << 16) | (e.color[1] << 8) | e.color[2])] = i + 1
    return EditorDocument(w, h, (parsed.caption or "").strip(), ents, labels, parsed.seed)


def document_from_files(png_path: str, json_path: str) -> str:
    """The encoded editor document of an official X.png + X.json pair (for example workflows)."""
    from PIL import Image

    with Image.open(png_path) as im:
        arr = np.asarray(im.convert("RGBA") if im.mode in ("RGBA", "LA", "P") else im.convert("RGB"))
    with open(json_path, encoding="utf-8") as f:
        spec = f.read()
    return encode_document(document_from_official(arr, spec))
