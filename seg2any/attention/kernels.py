"""Masked joint attention: one front (:class:`MaskedAttention`) over four exact backends.

All read the same compact rules (:mod:`seg2any.attention.rules`); none materialises a per-head
(B, H, L, L) tensor except ``dense``, the official baseline.

* ``sdpa``: one additive mask per sample (B, 1, L, L) in the query dtype (0, -inf, log alpha),
  heads broadcast, last dimension padded to a multiple of 8. On CUDA the call is pinned to cuDNN
  attention first (then memory-efficient, then math): SDPA's default choice for a masked call
  is the memory-efficient kernel, 2.5x slower than cuDNN with the same mask on an H100. The mask
  must be in q's dtype: cuDNN silently misreads an fp32 mask with bf16 q.
* ``split`` (:mod:`seg2any.attention.split`): dense pieces over entity-contiguous ranges merged by
  log-sum-exp, so masked pairs are never computed; "place" layers (per-pair bias) use ``sdpa``.
* ``flex`` (:mod:`seg2any.attention.flex`): compiled FlexAttention, one graph per kind of rule.
* ``dense``: the official float bias for every pair, expanded over heads; benchmarks only.

``auto`` resolves per device: SDPA off CUDA; on CUDA, per kind of rule, the eligible backends
(:func:`auto_candidates`) are timed once and the winner remembered (:mod:`seg2any.attention.tuning`).
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .flex import FLEX_BLOCK, FlexState, flex_available
from .rules import MaskRule, SequenceTags, dense_mask
from .split import SplitUnsupported, plan_split, run_split, varlen_usable
from .tuning import BackendTuner, bucket_bounds, device_name, length_bucket, process_tuner

log = logging.getLogger("seg2any")

BACKENDS = ("auto", "sdpa", "split", "flex", "dense")
__all__ = ["BACKENDS", "FLEX_BLOCK", "MaskedAttention", "auto_candidates", "flex_available", "resolve_backend"]


def resolve_backend(preference: str, device: torch.device) -> str:
    """ "auto" -> "sdpa" off CUDA and "auto" (measured per rule, :class:`MaskedAttention`) on CUDA;
    names are validated.

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


def auto_candidates(
    rule: MaskRule, device: torch.device, dtype: torch.dtype, head_dim: int, contiguous: bool
) -> tuple[list[str], str]:
    """The exact backends "auto" may time for one rule (the first is the default), and why only
    one where that is so. ``flex`` is never a candidate: its compile time dwarfs any step it saves."""
    if rule.place:
        return ["sdpa"], "place mode has a per-pair bias: SDPA with the additive mask"
    if not contiguous:
        return ["sdpa"], "image tokens not entity-contiguous (ControlNet keeps raster order): SDPA with the mask"
    if device.type == "cuda":
        if not varlen_usable(device, dtype, head_dim):
            return ["sdpa"], f"no varlen flash kernel for {dtype} / head dim {head_dim} in this torch: cuDNN SDPA with the mask"
        if not split_selfcheck(torch.device(device), dtype, head_dim):
            return ["sdpa"], "the split kernel failed its one-time exactness check on this GPU: cuDNN SDPA with the mask"
    return ["sdpa", "split"], "measured"


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

    from .rules import SequencePlan, row_layout

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
    (what makes ``split`` cheap). ``backend`` may be "auto": per rule, the backend measured fastest
    by ``tuner`` (default: the process-wide one on CUDA; SDPA elsewhere).
    """

    tags: SequenceTags
    backend: str
    contiguous: bool = False
    tuner: BackendTuner | None = None
    _masks: dict = field(default_factory=dict)
    _auto: dict = field(default_factory=dict)
    _flex: FlexState | None = None

    def backend_for(self, rule: MaskRule, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> str:
        if self.backend == "auto":
            training = torch.is_grad_enabled() and q.requires_grad
            key = (rule, q.dtype, q.shape, training)
            name = self._auto.get(key)
            if name is None:
                name = self._auto[key] = self._pick(rule, q, k, v, training)
            return name
        if self.backend == "split" and rule.place:
            _log_once("split-place", "Seg2Any attention: place-mode layers run on sdpa (per-pair bias cannot be split)")
            return "sdpa"
        return self.backend

    def _pick(self, rule: MaskRule, q, k, v, training: bool) -> str:
        tuner = self.tuner if self.tuner is not None else (process_tuner() if q.device.type == "cuda" else None)
        if tuner is None:
            return "sdpa"
        where = device_name(q.device)
        if training:  # split merges in place and is inference-only; SDPA has its backward
            _log_once(("auto-train", where), "Seg2Any attention on %s: sdpa (gradients needed: SDPA with the mask)", where)
            return "sdpa"
        names, why = auto_candidates(rule, q.device, q.dtype, q.shape[-1], self.contiguous)
        if len(names) == 1:
            _log_once(("auto", where, why), "Seg2Any attention on %s: %s (%s)", where, names[0], why)
            return names[0]
        key = tuner.key(q.device, q, rule.isolate)
        entry = tuner.lookup(key)
        if entry is None or entry["choice"] not in names:
            if torch.compiler.is_compiling():  # no timing inside a traced graph: the default
                return names[0]
            entry = tuner.choose(key, {n: functools.partial(self._run, n, q, k, v, rule) for n in names}, q.device)
            for loser in names:  # only the winner's masks/plans stay on the device
                if loser != entry["choice"]:
                    self._masks.pop((rule, q.dtype, loser), None)
            source = f"measured now, kept in {tuner.path or 'memory'}"
        else:
            source = f"measured earlier, from {tuner.path or 'memory'}"
        lo, hi = bucket_bounds(length_bucket(q.shape[2]))
        kind = "isolation" if rule.isolate else "base"
        times = ", ".join(f"{n} {t:.3g} ms" for n, t in entry["ms"].items())
        _log_once(
            ("auto", key),
            "Seg2Any attention on %s: %s for %s layers at %d-%d tokens, batch %d (%s; %s)",
            where, entry["choice"], kind, lo, hi, q.shape[0], times, source,
        )  # fmt: skip
        return entry["choice"]

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
        return self._run(self.backend_for(rule, q, k, v), q, k, v, rule)

    def _run(self, backend: str, q, k, v, rule: MaskRule) -> torch.Tensor:
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
