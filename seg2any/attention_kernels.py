"""Masked joint attention: one front (:class:`MaskedAttention`) over four exact backends.

All read the same compact rules (:mod:`seg2any.attention_rules`); none materialises a per-head
(B, H, L, L) tensor except ``dense``, the official baseline.

* ``sdpa``: one additive mask per sample (B, 1, L, L) in the query dtype (0, -inf, log alpha),
  heads broadcast, last dimension padded to a multiple of 8. On CUDA the call is pinned to cuDNN
  attention first (then memory-efficient, then math): SDPA's default choice for a masked call
  is the memory-efficient kernel, 2.5x slower than cuDNN with the same mask on an H100. The mask
  must be in q's dtype: cuDNN silently misreads an fp32 mask with bf16 q.
* ``split`` (:mod:`seg2any.attention_split`): dense pieces over entity-contiguous ranges merged by
  log-sum-exp, so masked pairs are never computed; "place" layers (per-pair bias) use ``sdpa``.
* ``flex`` (:mod:`seg2any.attention_flex`): compiled FlexAttention, one graph per kind of rule.
* ``dense``: the official float bias for every pair, expanded over heads; benchmarks only.

``auto`` resolves per device: SDPA off CUDA; on CUDA a per-rule table (:func:`auto_choice`).
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .attention_flex import FLEX_BLOCK, FlexState, flex_available
from .attention_rules import MaskRule, SequenceTags, dense_mask
from .attention_split import SplitUnsupported, plan_split, run_split, varlen_usable

log = logging.getLogger("seg2any")

BACKENDS = ("auto", "sdpa", "split", "flex", "dense")
__all__ = ["BACKENDS", "FLEX_BLOCK", "MaskedAttention", "auto_choice", "flex_available", "resolve_backend"]

# The CUDA rule table of "auto" (H100 figures in BENCHMARKS.md / the issue): one attention call at
# L ~ 5100, 24 heads x 128, bf16: cuDNN unmasked 0.50-0.55 ms, cuDNN + our additive mask 1.0-1.06,
# memory-efficient + mask 2.5-2.6, compiled flex 1.9-2.1; at L ~ 18000: 6-7 / 13.3-14.6 / 30 / 11.
# A mask costs cuDNN 2x because it streams L x L values per head; split computes only visible
# pairs (density 0.51-0.53 in isolation layers, 0.87-0.97 in base layers) with unmasked kernels,
# plus a few extra calls and gathers that only pay off once L is large.
SPLIT_MIN_TOKENS = 2048


def resolve_backend(preference: str, device: torch.device) -> str:
    """ "auto" -> "sdpa" off CUDA and "auto" (the per-rule table) on CUDA; names are validated.

    ``SEG2ANY_ATTENTION`` (one of BACKENDS) overrides "auto" for debugging and benchmarks.
    """
    pref = (preference or "auto").lower()
    if pref == "auto":
        pref = os.environ.get("SEG2ANY_ATTENTION", "auto").lower()
    if pref not in BACKENDS:
        raise ValueError(f"unknown attention backend {preference!r}; expected one of {BACKENDS}")
    if pref == "flex" and not flex_available():
        raise RuntimeError("FlexAttention is not available in this PyTorch build; use the sdpa backend")
    if pref == "auto" and torch.device(device).type != "cuda":
        _log_once("auto-cpu", "Seg2Any attention: sdpa (additive mask, heads broadcast) on %s", torch.device(device).type)
        return "sdpa"
    return pref


def auto_choice(
    rule: MaskRule, L: int, device: torch.device, dtype: torch.dtype, head_dim: int, contiguous: bool
) -> tuple[str, str]:
    """(backend, reason) for one rule on CUDA."""
    if rule.place:
        return "sdpa", "place mode has a per-pair bias: cuDNN SDPA with the additive mask (2x faster than flex)"
    if not contiguous:
        return "sdpa", "image tokens not entity-contiguous (ControlNet keeps raster order): cuDNN SDPA with the mask"
    if not varlen_usable(device, dtype, head_dim):
        return "sdpa", f"no varlen flash kernel for {dtype} / head dim {head_dim} in this torch: cuDNN SDPA with the mask"
    if L < SPLIT_MIN_TOKENS:
        return "sdpa", f"L = {L} < {SPLIT_MIN_TOKENS}: per-call overhead dominates, cuDNN SDPA with the mask"
    if not split_selfcheck(torch.device(device), dtype, head_dim):
        return "sdpa", "the split kernel failed its one-time exactness check on this GPU: cuDNN SDPA with the mask"
    kind = "isolation" if rule.isolate else "base"
    return (
        "split",
        f"{kind} rule, L >= {SPLIT_MIN_TOKENS}: unmasked varlen pieces over visible pairs only (masked cuDNN costs 2x unmasked)",
    )


_logged: set = set()


def _log_once(key, msg, *args):
    if key not in _logged:
        _logged.add(key)
        log.info(msg, *args)


@functools.cache
def _sdpa_priority_supported() -> bool:
    from torch.nn.attention import sdpa_kernel

    return "set_priority" in inspect.signature(sdpa_kernel).parameters


def sdpa_masked(q, k, v, mask):
    """SDPA with an additive mask; on CUDA cuDNN first, then memory-efficient, then math."""
    if q.device.type != "cuda":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    from torch.nn.attention import SDPBackend, sdpa_kernel

    order = [SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    kw = {"set_priority": True} if _sdpa_priority_supported() else {}
    with sdpa_kernel(order, **kw):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask.to(q.dtype))


@functools.cache
def split_selfcheck(device: torch.device, dtype: torch.dtype, head_dim: int) -> bool:
    """Once per process and device: split vs masked SDPA on a small overlapping layout."""
    import numpy as np

    from .attention_rules import SequencePlan, row_layout

    try:
        masks = np.zeros((3, 64, 64), bool)
        masks[0, :40, :40] = True
        masks[1, 20:64, 24:64] = True
        masks[2, 48:, :20] = True
        rows = [
            row_layout((20, 6, 5, 7), masks, (16, 16), 150, "hard"),
            row_layout((9, 5, 5, 5), masks[[1, 0, 2]], (16, 16), 90, "hard"),
        ]
        plan = SequencePlan.build(rows, reorder=True)
        tags = plan.tags(device)
        g = torch.Generator(device=device).manual_seed(0)
        q, k, v = (torch.randn(2, 2, plan.length, head_dim, generator=g, device=device, dtype=dtype) for _ in range(3))
        ref = MaskedAttention(tags, "sdpa")
        split = MaskedAttention(tags, "split", contiguous=True)
        for rule in (MaskRule(False), MaskRule(True, -0.7)):
            a, b = ref(q, k, v, rule).float(), split(q, k, v, rule).float()
            err = float((a - b).norm() / a.norm())
            if not err < 2e-2:
                log.warning("Seg2Any: split attention self-check off by %.3g on %s; using cuDNN SDPA", err, device)
                return False
    except Exception as exc:  # a kernel this torch/GPU lacks: stay on the masked path
        log.warning("Seg2Any: split attention unavailable on %s (%s: %s); using cuDNN SDPA", device, type(exc).__name__, exc)
        return False
    return True


@dataclass(eq=False)
class MaskedAttention:
    """Per-generation attention state: tags on the device and, per rule, a mask or a plan, built lazily.

    ``contiguous`` says the image tokens were reordered so each membership set is contiguous
    (what makes ``split`` cheap). ``backend`` may be "auto" (resolved per rule on CUDA).
    """

    tags: SequenceTags
    backend: str
    contiguous: bool = False
    _masks: dict = field(default_factory=dict)
    _flex: FlexState | None = None

    def backend_for(self, rule: MaskRule, q: torch.Tensor) -> str:
        if self.backend == "auto":
            if q.device.type != "cuda":
                return "sdpa"
            training = torch.is_grad_enabled() and q.requires_grad
            key = ("auto", rule, q.dtype, q.shape[-1], training)
            name = self._masks.get(key)
            if name is None:
                if training:  # split merges in place and is inference-only; SDPA has its backward
                    name, why = "sdpa", "gradients needed (training): cuDNN SDPA with the mask"
                else:
                    name, why = auto_choice(rule, self.tags.length, q.device, q.dtype, q.shape[-1], self.contiguous)
                gpu = torch.cuda.get_device_name(q.device)
                _log_once(("auto", name, why.split(":")[0]), "Seg2Any attention on %s: %s (%s)", gpu, name, why)
                self._masks[key] = name
            return name
        if self.backend == "split" and rule.place:
            _log_once("split-place", "Seg2Any attention: place-mode layers run on sdpa (per-pair bias cannot be split)")
            return "sdpa"
        return self.backend

    def mask_for(self, rule: MaskRule, dtype: torch.dtype, backend: str | None = None):
        """The per-rule state of ``backend`` (default: this kernel's): additive mask, dense bias,
        list of per-sample flex block masks, or split plan."""
        backend = backend or self.backend
        key = (rule, dtype, backend)
        m = self._masks.get(key)
        if m is None:
            if backend == "flex":
                m = self._flex_state().block_masks(rule)
            elif backend == "split":
                try:
                    m = plan_split(self.tags, rule)
                except SplitUnsupported as exc:  # remembered: the masked path for this rule
                    m = exc
            elif backend == "dense":
                m = dense_mask(self.tags, rule, dtype=dtype)
            else:
                m = dense_mask(self.tags, rule, dtype=dtype, align=8)
            self._masks[key] = m
        return m

    def _flex_state(self) -> FlexState:
        if self._flex is None:
            self._flex = FlexState(self.tags)
        return self._flex

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rule: MaskRule) -> torch.Tensor:
        """q, k, v: (B, H, L, D) with RoPE applied -> (B, H, L, D)."""
        backend = self.backend_for(rule, q)
        if backend == "flex":
            try:
                return self._flex_state()(q, k, v, rule)
            except (RuntimeError, ImportError, NotImplementedError, AssertionError) as exc:
                # a torch/triton build that cannot compile FlexAttention must not cost the user the
                # image: SDPA reads the same tags and gives the same result, only slower
                if os.environ.get("SEG2ANY_STRICT_FLEX"):
                    raise
                log.warning("Seg2Any: FlexAttention failed (%s: %s); using SDPA for this generation", type(exc).__name__, exc)
                self.backend = backend = "sdpa"
                self._masks.clear()
        if backend == "split":
            plan = self.mask_for(rule, q.dtype, "split")
            if not isinstance(plan, SplitUnsupported):
                return run_split(plan, q, k, v, use_varlen=varlen_usable(q.device, q.dtype, q.shape[-1]))
            _log_once(("split-unsupported", str(plan)[:40]), "Seg2Any attention: split not used (%s); sdpa instead", plan)
            backend = "sdpa"
        mask = self.mask_for(rule, q.dtype, backend)
        if backend == "dense":
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask.expand(-1, q.shape[1], -1, -1))
        return sdpa_masked(q, k, v, mask)
