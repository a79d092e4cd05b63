"""The attention backends as one table: what each one is, needs, supports, and how it runs.

Every place that has to know about backends reads :data:`REGISTRY` instead of naming them: the
kernel front (:class:`~seg2any.attention.kernels.MaskedAttention` builds per-rule state with
``prepare`` and runs ``run``), the choice of "auto" (the ``tunable`` backends, filtered by
``mask_kinds``, ``needs_contiguous`` and ``unusable``), the sequence planner (``reorders``,
``seq_multiple``), the node's options and tooltip (``summary``) and the benchmarks. A new backend
is one row here plus its kernel module.

All backends compute the same rules (:mod:`seg2any.attention.rules`) exactly; they differ in cost:

* ``sdpa``: one additive mask per sample (B, 1, L, L) in the query dtype (0, -inf, log alpha),
  heads broadcast, last dimension padded to a multiple of 8. On CUDA the call is pinned to cuDNN
  attention first (then memory-efficient, then math): SDPA's default choice for a masked call
  is the memory-efficient kernel, 2.5x slower than cuDNN with the same mask on an H100. The mask
  must be in q's dtype: cuDNN silently misreads an fp32 mask with bf16 q.
* ``split`` (:mod:`seg2any.attention.split`): dense pieces over entity-contiguous ranges merged by
  log-sum-exp, so masked pairs are never computed; "place" layers (per-pair bias) use ``sdpa``.
* ``flex`` (:mod:`seg2any.attention.flex`): compiled FlexAttention, one graph per kind of rule.
* ``dense``: the official float bias for every pair, expanded over heads; benchmarks only.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .flex import FLEX_BLOCK, flex_available
from .rules import MaskRule, SequencePlan, dense_mask, row_layout
from .split import SplitUnsupported, plan_split, run_split, varlen_usable

log = logging.getLogger("seg2any")

MASK_KINDS = ("base", "isolation", "place")  # the kinds of rule (MaskRule: plain, isolate, place)


def mask_kind(rule: MaskRule) -> str:
    return "place" if rule.place else ("isolation" if rule.isolate else "base")


@dataclass(frozen=True)
class Backend:
    """One row of the table. ``prepare(kernel, rule, dtype)`` builds the per-rule state a
    :class:`~seg2any.attention.kernels.MaskedAttention` caches; ``run(kernel, q, k, v, rule)``
    computes the attention (None: this rule cannot run here, the default backend takes it)."""

    name: str
    summary: str  # one line, shown in the node's tooltip
    available: Callable[[], bool]  # usable in this torch build at all
    mask_kinds: tuple[str, ...]  # kinds of rule it computes itself; others run on DEFAULT
    devices: tuple[str, ...]  # device types where "auto" may time it (empty: never a candidate)
    prepare: Callable | None = None
    run: Callable | None = None
    unusable: Callable | None = None  # (device, dtype, head_dim) -> why "auto" must not time it, or None
    needs_contiguous: bool = False  # only cheap when each entity's image tokens are contiguous
    reorders: bool = False  # the planner reorders image tokens entity-contiguously for it
    seq_multiple: int = 1  # the planner pads the sequence to a multiple of this
    backward: bool = True  # has a backward pass (training)
    compiles: bool = False  # needs torch.compile to be fast (minutes per graph on a CPU)

    @property
    def tunable(self) -> bool:
        return bool(self.devices)


# ----------------------------------------------------------------------------------------------
# sdpa and dense


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


def _sdpa_prepare(kernel, rule: MaskRule, dtype):
    return dense_mask(kernel.tags, rule, dtype=dtype, align=8)


def _sdpa_run(kernel, q, k, v, rule: MaskRule):
    return sdpa_masked(q, k, v, kernel.mask_for(rule, q.dtype, "sdpa"))


def _dense_prepare(kernel, rule: MaskRule, dtype):
    return dense_mask(kernel.tags, rule, dtype=dtype)


def _dense_run(kernel, q, k, v, rule: MaskRule):
    mask = kernel.mask_for(rule, q.dtype, "dense")
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask.expand(-1, q.shape[1], -1, -1))


# ----------------------------------------------------------------------------------------------
# split


def _split_prepare(kernel, rule: MaskRule, dtype):
    try:
        return plan_split(kernel.tags, rule)
    except SplitUnsupported as exc:  # remembered: the masked path for this rule
        return exc


def _split_run(kernel, q, k, v, rule: MaskRule):
    plan = kernel.mask_for(rule, q.dtype, "split")
    if isinstance(plan, SplitUnsupported):
        return None
    return run_split(plan, q, k, v, use_varlen=varlen_usable(q.device, q.dtype, q.shape[-1]))


@functools.cache
def split_selfcheck(device: torch.device, dtype: torch.dtype, head_dim: int) -> bool:
    """Once per process and device: split vs masked SDPA on a small overlapping layout."""
    import numpy as np

    try:
        masks = np.zeros((3, 64, 64), bool)
        masks[0, :40, :40] = True
        masks[1, 20:64, 24:64] = True
        masks[2, 48:, :20] = True
        rows = [
            row_layout((20, 6, 5, 7), masks, (16, 16), 150, "hard"),
            row_layout((9, 5, 5, 5), masks[[1, 0, 2]], (16, 16), 90, "hard"),
        ]
        tags = SequencePlan.build(rows, reorder=True).tags(device)
        g = torch.Generator(device=device).manual_seed(0)
        q, k, v = (torch.randn(2, 2, tags.length, head_dim, generator=g, device=device, dtype=dtype) for _ in range(3))
        use_varlen = varlen_usable(device, dtype, head_dim)
        for rule in (MaskRule(False), MaskRule(True, -0.7)):
            a = sdpa_masked(q, k, v, dense_mask(tags, rule, dtype=dtype, align=8)).float()
            b = run_split(plan_split(tags, rule), q, k, v, use_varlen=use_varlen).float()
            err = float((a - b).norm() / a.norm())
            if not err < 2e-2:
                log.warning("Seg2Any: split attention self-check off by %.3g on %s; using cuDNN SDPA", err, device)
                return False
    except Exception as exc:  # a kernel this torch/GPU lacks: stay on the masked path
        log.warning("Seg2Any: split attention unavailable on %s (%s: %s); using cuDNN SDPA", device, type(exc).__name__, exc)
        return False
    return True


def _split_unusable(device: torch.device, dtype: torch.dtype, head_dim: int) -> str | None:
    if device.type != "cuda":
        return None
    if not varlen_usable(device, dtype, head_dim):
        return f"no varlen flash kernel for {dtype} / head dim {head_dim} in this torch: cuDNN SDPA with the mask"
    if not split_selfcheck(torch.device(device), dtype, head_dim):
        return "the split kernel failed its one-time exactness check on this GPU: cuDNN SDPA with the mask"
    return None


# ----------------------------------------------------------------------------------------------
# flex


def _flex_prepare(kernel, rule: MaskRule, dtype):
    return kernel.flex_state().block_masks(rule)


def _flex_run(kernel, q, k, v, rule: MaskRule):
    return kernel.flex_state()(q, k, v, rule)


# ----------------------------------------------------------------------------------------------
# the table


def _always() -> bool:
    return True


AUTO = "auto"
DEFAULT = "sdpa"  # runs every rule on every device; what "auto" is off CUDA and every fallback
REGISTRY: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend(
            AUTO,
            "on CUDA the faster of split pieces (only visible pairs) and cuDNN SDPA, timed once per GPU, size and kind "
            "of layer and remembered; SDPA elsewhere",
            _always,
            MASK_KINDS,
            devices=("cuda",),  # where "auto" times its candidates with the process tuner
            reorders=True,
        ),
        Backend(
            "sdpa",
            "additive mask (cuDNN on CUDA)",
            _always,
            MASK_KINDS,
            devices=("cuda", "cpu"),
            prepare=_sdpa_prepare,
            run=_sdpa_run,
        ),
        Backend(
            "split",
            "exact log-sum-exp pieces",
            _always,
            ("base", "isolation"),
            devices=("cuda", "cpu"),
            prepare=_split_prepare,
            run=_split_run,
            unusable=_split_unusable,
            needs_contiguous=True,
            reorders=True,
            backward=False,  # the merge writes in place
        ),
        Backend(
            "flex",
            "compiled FlexAttention",
            flex_available,
            MASK_KINDS,
            devices=(),  # its compile time dwarfs any step it saves
            prepare=_flex_prepare,
            run=_flex_run,
            reorders=True,
            seq_multiple=FLEX_BLOCK,  # whole tiles
            compiles=True,
        ),
        Backend(
            "dense",
            "the official float-bias attention (slow, for comparison)",
            _always,
            MASK_KINDS,
            devices=(),
            prepare=_dense_prepare,
            run=_dense_run,
        ),
    )
}
BACKENDS = tuple(REGISTRY)  # ("auto", "sdpa", "split", "flex", "dense")


def tooltip() -> str:
    """The node's description of its attention options, one clause per backend."""
    rows = [f"{b.name}: {b.summary}" for b in REGISTRY.values()]
    return f"{rows[0]}. " + "; ".join(rows[1:])  # "auto" chooses among the others


PLACE_WHY = "place mode has a per-pair bias: SDPA with the additive mask"


def candidates(rule: MaskRule, device: torch.device, dtype: torch.dtype, head_dim: int, contiguous: bool):
    """(names, why): the tunable backends that may run ``rule`` here, DEFAULT first, and the reason
    the first one left out was left out (None when none was)."""
    names, why = [], None
    kind = mask_kind(rule)
    for b in REGISTRY.values():
        if b.name == AUTO or not b.tunable:
            continue
        if device.type not in b.devices:
            continue
        reason = None
        if kind not in b.mask_kinds:
            reason = PLACE_WHY if kind == "place" else f"{b.name} does not compute {kind} layers"
        elif b.needs_contiguous and not contiguous:
            reason = "image tokens not entity-contiguous (ControlNet keeps raster order): SDPA with the mask"
        elif b.unusable is not None:
            reason = b.unusable(device, dtype, head_dim)
        if reason is None:
            names.append(b.name)
        elif why is None:
            why = reason
    return names, why
