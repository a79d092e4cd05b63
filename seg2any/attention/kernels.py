"""Masked joint attention: one front (:class:`MaskedAttention`) over the exact backends.

All read the same compact rules (:mod:`seg2any.attention.rules`); none materialises a per-head
(B, H, L, L) tensor except ``dense``, the official baseline. What each backend is and supports is
one table, :data:`seg2any.attention.backends.REGISTRY`; this module picks a row and runs it.

``auto`` resolves per device: SDPA off CUDA; on CUDA, per kind of rule, the eligible backends
(:func:`auto_candidates`) are timed once and the winner remembered (:mod:`seg2any.attention.tuning`).
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field

import torch

from .backends import AUTO, BACKENDS, DEFAULT, REGISTRY, candidates, mask_kind
from .flex import FlexState, flex_available
from .rules import MaskRule, SequenceTags
from .tuning import BackendTuner, bucket_bounds, device_name, length_bucket, process_tuner

log = logging.getLogger("seg2any")

__all__ = ["BACKENDS", "MaskedAttention", "auto_candidates", "flex_available", "resolve_backend"]


def resolve_backend(preference: str, device: torch.device) -> str:
    """ "auto" -> the default (SDPA) where no backend is timed (off CUDA) and "auto" (measured per
    rule, :class:`MaskedAttention`) where some are; names are validated against the registry.

    ``SEG2ANY_ATTENTION`` (one of BACKENDS) overrides "auto" for debugging and benchmarks.
    """
    pref = (preference or AUTO).lower()
    if pref == AUTO:
        pref = os.environ.get("SEG2ANY_ATTENTION", AUTO).lower()
    if pref not in REGISTRY:
        raise ValueError(f"unknown attention backend {preference!r}; expected one of {BACKENDS}")
    if not REGISTRY[pref].available():
        raise RuntimeError(f"the {pref} attention backend is not available in this PyTorch build; use {DEFAULT}")
    kind = torch.device(device).type
    if pref == AUTO and kind not in REGISTRY[AUTO].devices:
        _log_once("auto-cpu", "Seg2Any attention: sdpa (additive mask, heads broadcast) on %s", kind)
        return DEFAULT
    return pref


def auto_candidates(
    rule: MaskRule, device: torch.device, dtype: torch.dtype, head_dim: int, contiguous: bool
) -> tuple[list[str], str]:
    """The exact backends "auto" may time for one rule (the first is the default), and why only
    one where that is so: the registry's tunable rows that support this kind of rule here."""
    device = torch.device(device)
    names, why = candidates(rule, device, dtype, head_dim, contiguous)
    if not names:  # no row is timed on this kind of device: the default runs everything
        return [DEFAULT], f"no backend is timed on {device.type}"
    return names, ("measured" if len(names) > 1 else why or "the only tunable backend")


_logged: set = set()


def _log_once(key, msg, *args):
    if key not in _logged:
        _logged.add(key)
        log.info(msg, *args)


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
        if self.backend == AUTO:
            training = torch.is_grad_enabled() and q.requires_grad
            key = (rule, q.dtype, q.shape, training)
            name = self._auto.get(key)
            if name is None:
                name = self._auto[key] = self._pick(rule, q, k, v, training)
            return name
        kind = mask_kind(rule)
        if kind not in REGISTRY[self.backend].mask_kinds:
            _log_once(
                (self.backend, kind),
                "Seg2Any attention: %s layers run on %s (%s cannot compute them)",
                kind,
                DEFAULT,
                self.backend,
            )
            return DEFAULT
        return self.backend

    def _pick(self, rule: MaskRule, q, k, v, training: bool) -> str:
        tuner = self.tuner if self.tuner is not None else (process_tuner() if q.device.type in REGISTRY[AUTO].devices else None)
        if tuner is None:
            return DEFAULT
        where = device_name(q.device)
        if training:  # timing is for inference (split is inference-only); the default has its backward
            _log_once(("auto-train", where), "Seg2Any attention on %s: sdpa (gradients needed: SDPA with the mask)", where)
            return DEFAULT
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
        """The per-rule state of ``backend`` (default: this kernel's), built by its registry row:
        additive mask, dense bias, list of per-sample flex block masks, or split plan."""
        backend = backend or self.backend
        key = (rule, dtype, backend)
        m = self._masks.get(key)
        if m is None:
            m = self._masks[key] = REGISTRY[backend].prepare(self, rule, dtype)
        return m

    def flex_state(self) -> FlexState:
        if self._flex is None:
            self._flex = FlexState(self.tags)
        return self._flex

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rule: MaskRule) -> torch.Tensor:
        """q, k, v: (B, H, L, D) with RoPE applied -> (B, H, L, D)."""
        return self._run(self.backend_for(rule, q, k, v), q, k, v, rule)

    def _run(self, backend: str, q, k, v, rule: MaskRule) -> torch.Tensor:
        row = REGISTRY[backend]
        try:
            out = row.run(self, q, k, v, rule)
        except (RuntimeError, ImportError, NotImplementedError, AssertionError) as exc:
            # a torch/triton build that cannot compile FlexAttention must not cost the user the
            # image: SDPA reads the same tags and gives the same result, only slower
            if not row.compiles or os.environ.get("SEG2ANY_STRICT_FLEX"):
                raise
            log.warning("Seg2Any: %s attention failed (%s: %s); using SDPA for this generation", backend, type(exc).__name__, exc)
            self.backend = DEFAULT
            self._masks.clear()
            return self._run(DEFAULT, q, k, v, rule)
        if out is None:  # this rule cannot run on ``backend`` (e.g. a split plan too large): the default
            why = self._masks.get((rule, q.dtype, backend))
            _log_once((backend, str(why)[:40]), "Seg2Any attention: %s not used (%s); sdpa instead", backend, why)
            return self._run(DEFAULT, q, k, v, rule)
        return out
