"""One training example and the pieces every reader shares: square resizing and crash-proof loading.

The official trainer squares every image (aspect not preserved) and resizes label masks with
``F.interpolate(mode="nearest-exact")``; the readers here do the same so a model trained on them sees
what the released checkpoints saw.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from seg2any.errors import LayoutError
from seg2any.layout.layout import Entity, Layout
from seg2any.layout.token_grid import nearest_exact_index

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Sample:
    """An image and its layout on the same R x R pixel grid."""

    key: str
    image: np.ndarray | None  # uint8 (R, R, 3); None when ``features`` holds its latent
    layout: Layout  # masks at (R, R)
    features: Any = None  # precomputed frozen-encoder outputs (training.shards.Features), read instead of encoding


def resize_masks(masks: np.ndarray, resolution: int) -> np.ndarray:
    """(N, H, W) bool -> (N, R, R) bool with nearest-exact sampling (works on one (H, W) mask too)."""
    masks = np.asarray(masks)
    h, w = masks.shape[-2:]
    rows = nearest_exact_index(h, resolution)
    cols = nearest_exact_index(w, resolution)
    return masks[..., rows[:, None], cols[None, :]].astype(bool, copy=False)


def resize_sample(image: np.ndarray, masks: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Square the image (PIL bilinear, as torchvision's Resize on a PIL image) and the masks (nearest-exact)."""
    image = np.asarray(image)
    masks = np.asarray(masks)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise LayoutError(f"the image must be uint8 (H, W, 3), got {image.dtype} {tuple(image.shape)}")
    if masks.ndim != 3 or masks.shape[1:] != image.shape[:2]:
        raise LayoutError(f"masks {tuple(masks.shape)} do not match the image {image.shape[1]}x{image.shape[0]}")
    return resize_image(image, resolution), resize_masks(masks.astype(bool, copy=False), resolution)


def resize_image(image: np.ndarray, resolution: int) -> np.ndarray:
    """PIL bilinear (antialiased when shrinking), which is what torchvision's Resize does to a PIL image."""
    if image.shape[:2] == (resolution, resolution):
        return image.copy()
    return np.asarray(Image.fromarray(image).resize((resolution, resolution), Image.BILINEAR))


def make_sample(key: str, image: np.ndarray, layout: Layout, resolution: int) -> Sample:
    """Resize an image and its layout together; entities that vanish at R stay (empty), with a note.

    Keeping them matches the official loader, and the note makes the loss of small entities visible.
    """
    img, masks = resize_sample(image, layout.masks, resolution)
    ents = tuple(Entity(prompt=e.prompt, mask=m, color=e.color, label=e.label) for e, m in zip(layout.entities, masks))
    notes = list(layout.notes)
    gone = [e.label or f"entity {i + 1}" for i, e in enumerate(ents) if e.mask.size and not e.mask.any()]
    if gone:
        notes.append(f"{len(gone)} entit{'y' if len(gone) == 1 else 'ies'} vanished at {resolution}px: {', '.join(gone[:4])}")
    return Sample(key, img, Layout(layout.global_prompt, ents, resolution, resolution, layout.seed, tuple(notes)))


class Robust(torch.utils.data.Dataset):
    """Turns a failing ``__getitem__`` into ``None`` plus a record, so one bad file cannot end a long run.

    Counters live in the process that loaded the item: with DataLoader workers they stay in the
    workers, so the main process should count drops through ``collate_samples`` and read reasons
    from the log (the first ``log_first`` failures of each worker are logged as warnings).
    """

    def __init__(self, dataset: Any, *, keep_last: int = 100, log_first: int = 20, max_reasons: int = 1000):
        self.dataset = dataset
        self.reasons: Counter[str] = Counter()
        self.failures: deque[tuple[str, str]] = deque(maxlen=keep_last)
        self._log_first, self._max_reasons = log_first, max_reasons

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def skipped(self) -> int:
        return sum(self.reasons.values())

    def _key(self, index: int) -> str:
        key_fn = getattr(self.dataset, "key", None)
        if callable(key_fn):
            try:
                return str(key_fn(index))
            except Exception:  # naming must not fail where loading already did
                pass
        return f"#{index}"

    def __getitem__(self, index: int):
        if not -len(self) <= index < len(self):
            raise IndexError(index)  # not swallowed: plain iteration relies on it to stop
        try:
            return self.dataset[index]
        except Exception as exc:  # the whole point is to survive anything
            reason = f"{type(exc).__name__}: {str(exc)[:80]}"
            key = self._key(index)
            if reason not in self.reasons and len(self.reasons) >= self._max_reasons:
                reason = f"{type(exc).__name__}: (other messages)"  # messages name items; keep the counter bounded
            self.reasons[reason] += 1
            self.failures.append((key, reason))
            if self.skipped <= self._log_first:
                log.warning("skipping %s: %s", key, reason)
            return None


def collate_samples(batch: list[Sample | None]) -> tuple[list[Sample], int]:
    """Keep the samples, count the drops: ragged layouts cannot be stacked, so a batch stays a list."""
    kept = [s for s in batch if s is not None]
    return kept, len(batch) - len(kept)
