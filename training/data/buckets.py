"""Length buckets so that every global step holds samples of similar condition and text length.

Seg2Any's sequence is text + condition tokens + image tokens, and the condition-token count varies
a lot between layouts (only tokens touching a contour are kept); padding a batch to its longest
member wastes most of the compute unless lengths in a step are alike. This follows the official
GroupSampler: a bucket per (cond_len // 50, txt_len // 50), topped up with duplicates so that a
global step (all ranks) never mixes buckets.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch


def bucket_flag(cond_len: int, txt_len: int) -> int:
    """The official flag; text lengths should already be clipped to the tokenizer maximum."""
    return int(cond_len) // 50 + (int(txt_len) // 50) * 1_000_000


class BucketBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of indices for one rank; all ranks see the same bucket at the same step.

    With ``drop_last`` a bucket's remainder is dropped instead of topped up with duplicates (a
    bucket smaller than one global step then contributes nothing that epoch).
    """

    def __init__(
        self,
        lengths: Sequence[tuple[int, int]],
        batch_size: int,
        num_replicas: int = 1,
        rank: int = 0,
        seed: int = 0,
        drop_last: bool = False,
    ):
        if batch_size < 1 or num_replicas < 1:
            raise ValueError(f"batch_size and num_replicas must be positive, got {batch_size}, {num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{num_replicas - 1}")
        arr = np.asarray(lengths, dtype=np.int64).reshape(-1, 2)
        if (arr < 0).any():
            raise ValueError("lengths must be non-negative")
        flags = arr[:, 0] // 50 + (arr[:, 1] // 50) * 1_000_000
        self.flags, inverse = np.unique(flags, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.cumsum(np.bincount(inverse, minlength=len(self.flags)))[:-1]
        self.buckets: list[np.ndarray] = np.split(order, bounds) if len(order) else []
        self.batch_size, self.num_replicas, self.rank = int(batch_size), int(num_replicas), int(rank)
        self.seed, self.drop_last, self.epoch = int(seed), bool(drop_last), 0

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        g = self.global_batch
        return sum(len(b) // g if self.drop_last else -(-len(b) // g) for b in self.buckets)

    def global_steps(self) -> list[np.ndarray]:
        """This epoch's steps, each ``global_batch`` indices from one bucket (identical on every rank)."""
        rng = np.random.default_rng(self.seed + self.epoch)
        g = self.global_batch
        steps = []
        for bucket in self.buckets:
            idx = rng.permutation(bucket)
            short = (-len(idx)) % g
            if self.drop_last:
                idx = idx[: len(idx) - len(idx) % g]
            elif short:
                extra = rng.choice(bucket, size=short, replace=short > len(bucket))
                idx = np.concatenate([idx, extra])
            steps.extend(idx.reshape(-1, g))
        return [steps[i] for i in rng.permutation(len(steps))]

    def __iter__(self) -> Iterator[list[int]]:
        lo = self.rank * self.batch_size
        for step in self.global_steps():
            yield [int(i) for i in step[lo : lo + self.batch_size]]
