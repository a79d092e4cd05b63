"""Frozen VAE / T5 / CLIP features for training, with a memory bound and the official caption truncation.

The official trainer re-encodes every sample every step. Caching saves that time on small datasets
that repeat, but a per-sample dict grows with the dataset (1M SACap samples at 1024 px would be about
a terabyte), so the cache here is an LRU bounded in bytes: features that fall out are encoded again,
with the same values.

Captions are cut the way the official code cuts them (``regional_max_sequence_length`` 50 T5 tokens
per entity, 512 for the global caption) and counted, never refused: SACap has long captions, and a
refusal inside the training loop would end the run. Inference keeps refusing long entity captions
(``seg2any.t5_tokens.enforce_budget``) because there the user can shorten them.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import torch

from seg2any.conditioning.condition_tokens import ConditionTokens, keep_mask_from_contour
from seg2any.conditioning.contour import entity_contour_map
from seg2any.conditioning.settings import EncodedText, Seg2AnyConditioning
from seg2any.conditioning.t5_tokens import ENTITY_MAX_TOKENS, GLOBAL_MAX_TOKENS, fit_to_length
from seg2any.layout.layout import Layout

log = logging.getLogger("seg2any.train")


def nbytes(value) -> int:
    """Bytes held by a cached value (tensors, arrays, and containers or dataclasses of them)."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, (tuple, list)):
        return sum(nbytes(v) for v in value)
    if hasattr(value, "__dict__"):
        return sum(nbytes(v) for v in vars(value).values())
    return 0


class ByteLRU:
    """Least-recently-used mapping whose values together hold at most ``max_bytes``."""

    def __init__(self, max_bytes: int):
        if max_bytes < 0:
            raise ValueError(f"the cache size must be non-negative, got {max_bytes} bytes")
        self.max_bytes = int(max_bytes)
        self.bytes = 0
        self._d: OrderedDict = OrderedDict()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._d)

    def get(self, key):
        hit = self._d.get(key)
        if hit is None:
            self.misses += 1
            return None
        self.hits += 1
        self._d.move_to_end(key)
        return hit[0]

    def put(self, key, value) -> None:
        size = nbytes(value)
        if key in self._d:
            self.bytes -= self._d.pop(key)[1]
        if size > self.max_bytes:
            return
        self._d[key] = (value, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, (_, old) = self._d.popitem(last=False)
            self.bytes -= old


@dataclass
class Truncations:
    """Captions longer than the lengths the adapters are trained with, counted as batches use them."""

    entity: int = 0
    global_: int = 0
    examples: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"entity_captions": self.entity, "global_captions": self.global_, "examples": self.examples}


class Encoder:
    """Frozen VAE + T5 (+ CLIP) features per sample, bounded by ``cache_bytes`` (0: no cache)."""

    def __init__(self, models, scale: int, resolution: int, use_condition: bool, cache_bytes: int = 2 << 30):
        self.m = models
        self.scale = scale
        self.res = resolution
        self.use_condition = use_condition
        self.cache = ByteLRU(cache_bytes)
        self.truncated = Truncations()

    def _vae_mean(self, x: torch.Tensor) -> torch.Tensor:
        p = next(self.m.vae.parameters())
        return self.m.vae.encode(x.to(p.device, p.dtype)).latent_dist.mean.float().cpu()

    @torch.no_grad()
    def images(self, samples) -> torch.Tensor:
        got = {s.key: s.features.latent if s.features is not None else self.cache.get(("latent", s.key)) for s in samples}
        todo = [s for s in samples if got[s.key] is None]
        if todo:
            x = torch.stack([torch.from_numpy(s.image.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1) for s in todo])
            for s, zi in zip(todo, self.m.process_in(self._vae_mean(x))):
                got[s.key] = zi.clone()
                self.cache.put(("latent", s.key), got[s.key])
        return torch.stack([got[s.key] for s in samples])

    @torch.no_grad()
    def condition(self, sample) -> ConditionTokens | None:
        if not self.use_condition or not sample.layout.entities:
            return None
        if sample.features is not None:
            return sample.features.cond
        c = self.cache.get(("cond", sample.key))
        if c is None:
            contour = entity_contour_map(sample.layout.masks, self.res, self.res, self.scale)
            x = torch.from_numpy(contour.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]
            c = ConditionTokens(self._vae_mean(x), keep_mask_from_contour(contour), self.scale, (self.res, self.res))
            self.cache.put(("cond", sample.key), c)
        return c

    @torch.no_grad()
    def _t5(self, text: str, max_len: int) -> torch.Tensor:
        """(n_real, D): padded to ``max_len`` (cut to it when longer), encoded without a mask, pads stripped."""
        hit = self.cache.get(("t5", text, max_len))
        if hit is None:
            ids, n = fit_to_length(self.m.t5_ids(text), max_len)
            dev = next(self.m.t5.parameters()).device
            hit = self.m.t5(input_ids=torch.tensor([ids], device=dev)).last_hidden_state[0, :n].float().cpu()
            self.cache.put(("t5", text, max_len), hit)
        return hit

    @torch.no_grad()
    def _pooled(self, text: str) -> torch.Tensor | None:
        if self.m.clip is None:
            return None
        hit = self.cache.get(("clip", text))
        if hit is None:
            hit = self.m.pooled(text)
            self.cache.put(("clip", text), hit)
        return hit

    def _count(self, text: str, limit: int, what: str) -> None:
        n = len(self.m.t5_ids(text))
        if n <= limit:
            return
        if what == "entity":
            self.truncated.entity += 1
        else:
            self.truncated.global_ += 1
        if len(self.truncated.examples) < 5:
            self.truncated.examples.append(f"{what} caption of {n} T5 tokens cut to {limit}: {text[:60]!r}")
            log.warning("%s caption of %d T5 tokens cut to %d (as the official trainer does): %.60r", what, n, limit, text)

    def text(self, global_prompt: str, entity_prompts, features=None) -> EncodedText:
        """T5 features [global | entity 1 | ... ] with the official lengths, cut where longer
        (read from ``features`` when the sample was precomputed)."""
        if global_prompt.strip():
            self._count(global_prompt, GLOBAL_MAX_TOKENS, "global")
        for p in entity_prompts:
            self._count(p, ENTITY_MAX_TOKENS, "entity")
        if features is not None:
            return EncodedText.assemble(global_prompt, entity_prompts, features.t5_of, features.pooled_of)
        return EncodedText.assemble(global_prompt, entity_prompts, self._t5, self._pooled)

    def info(self, sample, stage: str, mode: str):
        lay = sample.layout
        if stage == "t2i":
            lay = Layout(lay.global_prompt, (), lay.height, lay.width)
        enc = self.text(lay.global_prompt, lay.prompts, sample.features)
        cond = self.condition(sample) if stage == "seg2any" else None
        return Seg2AnyConditioning(lay, enc.text_lens, cond, mode), enc
