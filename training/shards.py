"""Precomputed training features on disk: safetensors shards of VAE latents, T5/CLIP features,
condition tokens, layouts and bucket lengths, read back as samples.

Encoding on the fly keeps the frozen VAE and T5 busy every step and caches features in RAM; an
LRU bounds that memory but re-encodes whatever falls out. Shards bound it by the file system
instead: every rank reads the samples of its batches (memory-mapped), nothing accumulates, and
the features are bit-for-bit those the encoder computes (float32, the trainer's own code path).

A shard holds ``shard_size`` consecutive dataset indices. It is written to a temporary name and
renamed when complete, so a shard file that exists is finished and a crash leaves at most a
temporary file to redo. ``manifest.json`` (written last, by the main process) records the
signature of the data and encoders the shards were made from; training refuses shards of another.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from seg2any.conditioning.condition_tokens import ConditionTokens
from seg2any.conditioning.t5_tokens import ENTITY_MAX_TOKENS, GLOBAL_MAX_TOKENS
from seg2any.errors import LayoutError
from seg2any.layout.layout import Entity, Layout

from .data.sample import Sample

MANIFEST = "manifest.json"


def shard_path(root: str, index: int) -> str:
    return os.path.join(root, f"shard-{index:05d}.safetensors")


def shard_count(n: int, shard_size: int) -> int:
    return -(-n // shard_size)


@dataclass
class Features:
    """One sample's frozen-encoder outputs, looked up the way :class:`training.encoder.Encoder` computes them."""

    latent: torch.Tensor  # (C, h, w), model space
    cond: ConditionTokens | None
    t5: dict = field(default_factory=dict)  # (text, max_len) -> (n, D)
    pooled: dict = field(default_factory=dict)  # text -> (1, D) or None

    def t5_of(self, text: str, max_len: int) -> torch.Tensor:
        return self.t5[(text, max_len)]

    def pooled_of(self, text: str):
        return self.pooled.get(text)


def texts_needed(layout: Layout) -> tuple[list[tuple[str, int]], list[str]]:
    """The (text, max tokens) T5 inputs and pooled-vector texts a sample asks for in either stage
    (seg2any: global + entities; t2i: the global caption alone), as EncodedText.assemble asks."""
    t5 = [(layout.global_prompt, GLOBAL_MAX_TOKENS)] if layout.global_prompt.strip() else []
    t5 += [(p, ENTITY_MAX_TOKENS) for p in layout.prompts]
    pooled = [layout.global_prompt] if layout.global_prompt.strip() else [".".join(layout.prompts), ""]
    return list(dict.fromkeys(t5)), list(dict.fromkeys(pooled))


def encode_sample(enc, sample: Sample, lengths: tuple[int, int], j: int) -> tuple[dict, dict]:
    """(tensors, record) of sample ``j`` of a shard, from the trainer's own :class:`Encoder`."""
    lay = sample.layout
    tensors = {f"{j}.latent": enc.images([sample])[0].clone()}
    cond = enc.condition(sample)
    if cond is not None:
        tensors[f"{j}.cond_latent"] = cond.latent.clone()
        tensors[f"{j}.cond_keep"] = torch.from_numpy(np.asarray(cond.keep, dtype=np.uint8).copy())
    if lay.entities:
        tensors[f"{j}.masks"] = torch.from_numpy(np.packbits(np.stack([e.mask for e in lay.entities]).astype(bool)))
    t5_texts, pooled_texts = texts_needed(lay)
    for k, (text, max_len) in enumerate(t5_texts):
        tensors[f"{j}.t5.{k}"] = enc._t5(text, max_len).clone()  # the encoder's cache shares repeated texts
    has_pooled = []
    for k, text in enumerate(pooled_texts):
        vec = enc._pooled(text)
        if vec is not None:
            tensors[f"{j}.pooled.{k}"] = vec.float().cpu().clone()
            has_pooled.append(k)
    record = {
        "key": sample.key,
        "global": lay.global_prompt,
        "entities": [[e.prompt, list(e.color) if e.color else None, e.label] for e in lay.entities],
        "size": [lay.height, lay.width],
        "seed": lay.seed,
        "notes": list(lay.notes),
        "t5": [list(t) for t in t5_texts],
        "pooled": [[pooled_texts[k], k] for k in has_pooled],
        "cond": None if cond is None else {"scale": cond.scale, "size": list(cond.image_size), "keep": list(cond.keep.shape)},
        "lengths": list(lengths),
    }
    return tensors, record


def write_shard(path: str, tensors: dict, records: list[dict]) -> None:
    """Written under a temporary name and renamed: an existing shard file is always complete."""
    from safetensors.torch import save_file

    tmp = path + ".tmp"
    save_file(tensors, tmp, metadata={"samples": json.dumps(records)})
    os.replace(tmp, path)


def read_manifest(root: str) -> dict:
    path = os.path.join(root, MANIFEST)
    if not os.path.isfile(path):
        raise SystemExit(f"{root} has no {MANIFEST}: the precompute pass has not finished (run it again to complete it)")
    with open(path) as f:
        return json.load(f)


class ShardDataset(torch.utils.data.Dataset):
    """Samples (layout + :class:`Features`, no image) from finished shards, in dataset order.

    A sample that failed to load when the shards were made raises its original error again, so
    :class:`training.data.Robust` counts it as on-the-fly training would.
    """

    def __init__(self, root: str):
        self.root = root
        self.manifest = read_manifest(root)
        self.n, self.shard_size = int(self.manifest["n"]), int(self.manifest["shard_size"])
        self._open: tuple[int, object, list] | None = None

    def __len__(self) -> int:
        return self.n

    def lengths(self) -> np.ndarray:
        """(N, 2) bucket lengths (condition tokens, text tokens), as training.lengths counts them."""
        return np.asarray(self.manifest["lengths"], dtype=np.int64).reshape(-1, 2)

    def key(self, index: int) -> str:
        return self._records(index // self.shard_size)[1][index % self.shard_size]["key"]

    def _records(self, shard: int):
        if self._open is None or self._open[0] != shard:
            from safetensors import safe_open

            f = safe_open(shard_path(self.root, shard), framework="pt")
            self._open = (shard, f, json.loads(f.metadata()["samples"]))
        return self._open[1], self._open[2]

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < self.n:
            raise IndexError(index)
        f, records = self._records(index // self.shard_size)
        j = index % self.shard_size
        r = records[j]
        if r.get("error"):
            raise LayoutError(r["error"])
        h, w = r["size"]
        ents = []
        if r["entities"]:
            bits = np.unpackbits(f.get_tensor(f"{j}.masks").numpy(), count=len(r["entities"]) * h * w)
            masks = bits.reshape(len(r["entities"]), h, w).astype(bool)
            for (prompt, color, label), m in zip(r["entities"], masks):
                ents.append(Entity(prompt=prompt, mask=m, color=tuple(color) if color else None, label=label))
        layout = Layout(r["global"], tuple(ents), h, w, r["seed"], tuple(r["notes"]))
        cond = None
        if r["cond"] is not None:
            keep = f.get_tensor(f"{j}.cond_keep").numpy().astype(bool)
            cond = ConditionTokens(f.get_tensor(f"{j}.cond_latent"), keep, r["cond"]["scale"], tuple(r["cond"]["size"]))
        feats = Features(
            f.get_tensor(f"{j}.latent"),
            cond,
            {(t, m): f.get_tensor(f"{j}.t5.{k}") for k, (t, m) in enumerate(r["t5"])},
            {t: f.get_tensor(f"{j}.pooled.{k}") for t, k in r["pooled"]},
        )
        return Sample(r["key"], None, layout, feats)
