"""SACap-1M reader: captions from the parquet, masks from the SA-1B per-image JSON (COCO RLE).

The RLE decoder is our own numpy implementation so that training needs no pycocotools build.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow.parquet as pq
import torch
from PIL import Image

from seg2any.errors import LayoutError
from seg2any.layout.layout import Entity, Layout, entity_label

from .sample import Sample, nearest_exact_index, resize_image

REQUIRED_COLUMNS = ("imagename", "caption", "segments_info")


def rle_counts(counts: str | bytes) -> np.ndarray:
    """Run lengths from a COCO compressed RLE string.

    Each value is a little-endian sequence of 6-bit groups (char - 48): 5 payload bits, bit 0x20
    = "more groups follow", bit 0x10 of the last group = sign. From the 4th value on, values are
    deltas against the value two places back (runs of the same pixel value).
    """
    raw = np.frombuffer(counts.encode("ascii") if isinstance(counts, str) else bytes(counts), dtype=np.uint8)
    if raw.size == 0:
        return np.zeros(0, dtype=np.int64)
    c = raw.astype(np.int64) - 48
    if c.min() < 0 or c.max() > 63:
        raise LayoutError("RLE counts hold characters outside the COCO alphabet ('0'..'o')")
    last = (c & 0x20) == 0
    if not last[-1]:
        raise LayoutError("RLE counts end in the middle of a value")
    ends = np.flatnonzero(last)
    starts = np.concatenate([[0], ends[:-1] + 1])
    group = np.repeat(np.arange(len(ends)), ends - starts + 1)
    pos = np.arange(c.size) - starts[group]
    if pos.max() > 11:
        raise LayoutError("RLE count too large (more than 12 groups)")
    x = np.add.reduceat((c & 0x1F) << (5 * pos), starts)
    neg = (c[ends] & 0x10) != 0
    x[neg] -= np.int64(1) << (5 * (ends[neg] - starts[neg] + 1))
    out = x.copy()
    out[1::2] = np.cumsum(x[1::2])  # index 3, 5, ... add the value two back; 1 is raw
    out[2::2] = np.cumsum(x[2::2])  # index 4, 6, ... likewise; 0 and 2 are raw
    return out


def rle_decode(rle: dict) -> np.ndarray:
    """COCO RLE (compressed string or plain list of counts) -> bool (h, w); runs are column-major."""
    try:
        h, w = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError) as exc:
        raise LayoutError(f"malformed RLE (needs 'size': [h, w] and 'counts'): {exc}") from exc
    cnts = rle_counts(counts) if isinstance(counts, (str, bytes)) else np.asarray(counts, dtype=np.int64)
    if (cnts < 0).any():
        raise LayoutError("RLE has a negative run length")
    if int(cnts.sum()) != h * w:
        raise LayoutError(f"RLE runs cover {int(cnts.sum())} pixels but the mask is {w}x{h} = {h * w}")
    values = (np.arange(cnts.size) % 2).astype(bool)
    return np.repeat(values, cnts).reshape(w, h).T


class SACapDataset(torch.utils.data.Dataset):
    """One sample per parquet row; rows stay in Arrow memory (shared by forked workers)."""

    def __init__(self, parquet_path: str, image_root: str, resolution: int = 1024):
        self.table = pq.read_table(parquet_path)
        lacking = [c for c in REQUIRED_COLUMNS if c not in self.table.column_names]
        if lacking:
            raise LayoutError(f"{parquet_path}: missing column(s) {', '.join(lacking)}")
        self.image_root, self.resolution = image_root, int(resolution)

    def __len__(self) -> int:
        return self.table.num_rows

    def _row(self, index: int) -> dict:
        return self.table.slice(index, 1).to_pylist()[0]

    def key(self, index: int) -> str:
        return str(self.table.column("imagename")[index].as_py())

    def paths(self, row: dict) -> tuple[str, str]:
        folder = os.path.join(self.image_root, row.get("image_group") or "")
        name = row["imagename"]
        return os.path.join(folder, name), os.path.join(folder, os.path.splitext(name)[0] + ".json")

    def __getitem__(self, index: int) -> Sample:
        row = self._row(index)
        name = row["imagename"]
        image_path, json_path = self.paths(row)
        wanted: dict[int, str] = {}
        for seg in row["segments_info"] or []:
            aid = int(seg["anno_id"])
            if aid in wanted:
                raise LayoutError(f"{name}: annotation {aid} is listed twice in segments_info")
            if not (seg.get("caption") or "").strip():
                raise LayoutError(f"{name}: annotation {aid} has an empty caption")
            wanted[aid] = seg["caption"].strip()
        if not os.path.isfile(image_path):
            raise LayoutError(f"{name}: image not found at {image_path}")
        if not os.path.isfile(json_path):
            raise LayoutError(f"{name}: SA-1B annotation JSON not found at {json_path}")
        with open(json_path, encoding="utf-8") as f:
            try:
                annotations = json.load(f).get("annotations", [])
            except (json.JSONDecodeError, AttributeError) as exc:
                raise LayoutError(f"{name}: unreadable annotation JSON {json_path} ({exc})") from exc
        chosen = [a for a in annotations if a.get("id") in wanted]
        absent = sorted(set(wanted) - {a["id"] for a in chosen})
        if absent:
            raise LayoutError(f"{name}: annotation id(s) {absent[:5]} not found in {os.path.basename(json_path)}")
        with Image.open(image_path) as im:
            image = np.asarray(im.convert("RGB"))
        h, w = image.shape[:2]
        r = self.resolution
        rows, cols = nearest_exact_index(h, r), nearest_exact_index(w, r)
        ents = []
        for i, ann in enumerate(chosen):
            aid = ann["id"]
            try:
                full = rle_decode(ann["segmentation"])
            except (LayoutError, KeyError) as exc:
                raise LayoutError(f"{name}: annotation {aid}: {exc}") from exc
            if full.shape != (h, w):
                raise LayoutError(f"{name}: annotation {aid} is {full.shape[1]}x{full.shape[0]} but the image is {w}x{h}")
            # Resized one at a time: SA-1B masks at full size (~3.4 MP each) would not fit stacked.
            prompt = wanted[aid]
            ents.append(
                Entity(prompt=prompt, mask=full[rows[:, None], cols[None, :]], label=entity_label(i, prompt) + f" [anno {aid}]")
            )
        return Sample(name, resize_image(image, r), Layout((row.get("caption") or "").strip(), tuple(ents), r, r))
