"""Resuming mid-epoch without repeating batches: skip the batches an interrupted run already used.

Skipping happens on the batch indices (cheap), not by loading and discarding samples.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


class SkipBatches(torch.utils.data.Sampler[list[int]]):
    """Wraps a batch sampler; the next epoch's iteration starts after ``skip`` batches, later ones in full."""

    def __init__(self, batches, skip: int = 0):
        if skip < 0:
            raise ValueError(f"cannot skip a negative number of batches ({skip})")
        self.batches = batches
        self.skip = int(skip)

    def set_epoch(self, epoch: int) -> None:
        for target in (self.batches, getattr(self.batches, "sampler", None)):  # a BatchSampler's sampler shuffles
            if hasattr(target, "set_epoch"):
                target.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        skip, self.skip = self.skip, 0
        for i, batch in enumerate(self.batches):
            if i >= skip:
                yield batch
