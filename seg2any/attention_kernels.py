"""Masked joint attention: an SDPA path for any device and a FlexAttention path for CUDA.

Both read the same compact rules (:mod:`seg2any.attention_rules`). Neither ever materialises a
per-head (B, H, L, L) tensor:

* ``sdpa``: one additive mask per sample (B, 1, L, L) in the query dtype (0, -inf, log alpha),
  heads broadcast, stored with its last dimension padded to a multiple of 8 so the
  memory-efficient kernel takes it without copying. Built once per rule and reused by every
  layer and step of a generation. (An additive mask runs about twice as fast as a boolean one
  in PyTorch's CPU SDPA, which converts booleans on every call.)
* ``dense``: what the official code does (a float bias for every pair, expanded over heads);
  kept only as the baseline the benchmarks compare against.
* ``flex``: ``mask_mod`` over per-token tags, ``score_mod`` adds log(alpha) / log(fraction),
  the BlockMask is built once per rule and reused; whole 128x128 tiles that no pair may see are
  skipped, which is why the runtime can reorder image tokens so each entity is contiguous.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .attention_rules import MaskRule, SequenceTags, dense_mask, score_bias, visible

log = logging.getLogger(__name__)

BACKENDS = ("auto", "sdpa", "flex", "dense")
FLEX_BLOCK = 128


def flex_available() -> bool:
    try:
        from torch.nn.attention import flex_attention  # noqa: F401
    except Exception:
        return False
    return True


def resolve_backend(preference: str, device: torch.device) -> str:
    """ "auto" picks FlexAttention on CUDA when available, SDPA elsewhere.

    ``SEG2ANY_ATTENTION`` (sdpa|flex) overrides "auto" for debugging and benchmarks.
    """
    pref = (preference or "auto").lower()
    if pref == "auto":
        pref = os.environ.get("SEG2ANY_ATTENTION", "auto").lower()
    if pref not in BACKENDS:
        raise ValueError(f"unknown attention backend {preference!r}; expected one of {BACKENDS}")
    if pref == "auto":
        return "flex" if device.type == "cuda" and flex_available() else "sdpa"
    if pref == "flex" and not flex_available():
        raise RuntimeError("FlexAttention is not available in this PyTorch build; use the sdpa backend")
    return pref


@functools.cache
def _compiled_flex():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


@dataclass(eq=False)
class MaskedAttention:
    """Per-generation attention state: tags on the device and one mask per rule, built lazily."""

    tags: SequenceTags
    backend: str
    _masks: dict = field(default_factory=dict)

    def mask_for(self, rule: MaskRule, dtype: torch.dtype):
        key = (rule, dtype, self.backend)
        m = self._masks.get(key)
        if m is None:
            if self.backend == "flex":
                m = self._block_mask(rule)
            elif self.backend == "dense":
                m = dense_mask(self.tags, rule, dtype=dtype)
            else:
                m = dense_mask(self.tags, rule, dtype=dtype, align=8)
            self._masks[key] = m
        return m

    def _block_mask(self, rule: MaskRule):
        from torch.nn.attention.flex_attention import create_block_mask

        tags, isolate = self.tags, rule.isolate

        def mask_mod(b, h, q, k):
            return visible(tags, b, q, k, isolate)

        B, L = tags.kind.shape
        return create_block_mask(mask_mod, B, None, L, L, device=tags.kind.device, BLOCK_SIZE=FLEX_BLOCK)

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rule: MaskRule) -> torch.Tensor:
        """q, k, v: (B, H, L, D) with RoPE applied -> (B, H, L, D)."""
        if self.backend == "flex":
            try:
                return self._flex(q, k, v, rule)
            except (RuntimeError, ImportError, NotImplementedError, AssertionError) as exc:
                # a torch/triton build that cannot compile FlexAttention must not cost the user the
                # image: SDPA reads the same tags and gives the same result, only slower
                if os.environ.get("SEG2ANY_STRICT_FLEX"):
                    raise
                log.warning("Seg2Any: FlexAttention failed (%s: %s); using SDPA for this generation", type(exc).__name__, exc)
                self.backend = "sdpa"
                self._masks.clear()
        mask = self.mask_for(rule, q.dtype)
        if self.backend == "dense":
            mask = mask.expand(-1, q.shape[1], -1, -1)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    def _flex(self, q, k, v, rule: MaskRule):
        block_mask = self.mask_for(rule, q.dtype)
        score_mod = None
        if rule.needs_bias:
            tags, place = self.tags, rule.place
            log_alpha = torch.tensor(rule.log_alpha, dtype=torch.float32, device=q.device)

            def score_mod(score, b, h, qi, ki):
                return score + score_bias(tags, b, qi, ki, log_alpha, place).to(score.dtype)

        fn = _compiled_flex() if q.device.type == "cuda" else _eager_flex()
        return fn(q, k, v, score_mod=score_mod, block_mask=block_mask)


@functools.cache
def _eager_flex():
    from torch.nn.attention.flex_attention import flex_attention

    return flex_attention
