"""A plain folder of ``NAME.jpg|png`` + ``NAME.seg.png`` + ``NAME.json``: the official inference format, for training.

Incomplete items are listed when the folder is read rather than skipped in silence, so a user
who forgot to copy half the JSON files finds out before the run, not from a small epoch.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import torch
from PIL import Image

from seg2any.errors import LayoutError
from seg2any.layout.layout import layout_from_segmentation

from .sample import Sample, make_sample

log = logging.getLogger(__name__)

IMAGE_EXTS = (".jpg", ".jpeg", ".png")
SEG_SUFFIX = ".seg.png"


def _scan(root: str) -> dict[str, dict[str, list[str]]]:
    items: dict[str, dict[str, list[str]]] = {}
    for fn in sorted(os.listdir(root)):
        low = fn.lower()
        if low.endswith(SEG_SUFFIX):
            name, kind = fn[: -len(SEG_SUFFIX)], "seg"
        elif low.endswith(".json"):
            name, kind = fn[:-5], "json"
        elif low.endswith(IMAGE_EXTS):
            name, kind = os.path.splitext(fn)[0], "image"
        else:
            continue
        items.setdefault(name, {"image": [], "seg": [], "json": []})[kind].append(fn)
    return items


class FolderDataset(torch.utils.data.Dataset):
    """Complete items in name order; ``missing`` holds (name, what is wrong) for the others."""

    def __init__(self, root: str, resolution: int):
        if not os.path.isdir(root):
            raise FileNotFoundError(f"dataset folder not found: {root}")
        self.root, self.resolution = root, int(resolution)
        self.items: list[tuple[str, str, str, str]] = []  # name, image, seg, json file names
        self.missing: list[tuple[str, str]] = []
        for name, files in sorted(_scan(root).items()):
            problems = []
            if not files["image"]:
                problems.append(f"no image ({name}.jpg or {name}.png)")
            elif len(files["image"]) > 1:
                problems.append(f"several images ({', '.join(files['image'])})")
            if not files["seg"]:
                problems.append(f"no segmentation ({name}{SEG_SUFFIX})")
            if not files["json"]:
                problems.append(f"no {name}.json")
            if problems:
                self.missing.append((name, "; ".join(problems)))
            else:
                self.items.append((name, files["image"][0], files["seg"][0], files["json"][0]))
        if self.missing:
            shown = "; ".join(f"{n}: {why}" for n, why in self.missing[:5])
            log.warning("%s: %d incomplete item(s) left out: %s", root, len(self.missing), shown)

    def __len__(self) -> int:
        return len(self.items)

    def key(self, index: int) -> str:
        return self.items[index][0]

    def __getitem__(self, index: int) -> Sample:
        name, image_fn, seg_fn, json_fn = self.items[index]
        try:
            with Image.open(os.path.join(self.root, image_fn)) as im:
                image = np.asarray(im.convert("RGB"))
            with Image.open(os.path.join(self.root, seg_fn)) as im:
                # RGBA goes through as is so that transparency is reported, not flattened away.
                seg = np.asarray(im if im.mode in ("RGB", "RGBA") else im.convert("RGB"))
            with open(os.path.join(self.root, json_fn), encoding="utf-8") as f:
                spec = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise LayoutError(f"{name}: cannot read the files ({exc})") from exc
        if seg.shape[:2] != image.shape[:2]:
            raise LayoutError(
                f"{name}: the segmentation {seg_fn} is {seg.shape[1]}x{seg.shape[0]} "
                f"but the image {image_fn} is {image.shape[1]}x{image.shape[0]}"
            )
        try:
            layout = layout_from_segmentation(seg, spec)
        except LayoutError as exc:
            raise LayoutError(f"{name}: {exc}") from exc
        return make_sample(name, image, layout, self.resolution)
