"""Masked attention as dense pieces merged by log-sum-exp: masked pairs are never computed.

Once image tokens are reordered so every membership set is contiguous
(:func:`seg2any.attention.rules.entity_order`), each query row sees a handful of contiguous key
ranges: the image/condition block, the global text, its entities' captions, in isolation layers
only the image ranges of the sets it shares an entity with. Rows with the same visible set form
a segment; (segment, key range) is a *piece* whose attention is plain, unmasked, dense attention.
A row's softmax over the union of its ranges is the log-sum-exp merge of its pieces:

    out = sum_p exp(lse_p - lse) out_p,   lse = log sum_p exp(lse_p)

A constant bias c on a piece (log alpha on image<->condition pairs) leaves the piece's softmax
unchanged and adds c to its lse, so shape strength is exact too. "place" mode has a different
bias for every pair and is not expressible this way; :class:`~seg2any.attention.kernels.MaskedAttention`
runs those layers with the additive-mask SDPA.

Pieces are derived from the rules themselves (row codes from the shared :func:`visible` /
image<->condition test, run-length encoded), not from a second statement of the rules, so this
path cannot disagree with the others. Pieces whose query ranges are disjoint share one call: on
CUDA a single ``varlen_attn`` (torch >= 2.10: FlashAttention / cuDNN varlen, returns the lse)
per call; elsewhere one dense call per piece (CPU flash kernel, which returns the lse, or plain
torch). Padding rows (which see only themselves) are copied from v. Inference only: the merge
writes in place, so "auto" uses SDPA whenever gradients are needed.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .rules import Kind, MaskRule, SequenceTags, visible

MAX_PIECES = 8192  # beyond this (e.g. no entity reordering) the plan costs more than it saves


class SplitUnsupported(ValueError):
    """This rule/layout cannot be split exactly or cheaply; use the masked path."""


@dataclass(eq=False)
class Call:
    """Pieces with disjoint query rows, computed together. Coordinates are flat (b * L + i)."""

    pieces: list  # (q0, q1, k0, k1, shift)
    _packed: dict = field(default_factory=dict)

    def packed(self, device):
        """(q index, k index, cu_q, cu_k, max_q, max_k, shift per packed q row) on ``device``."""
        hit = self._packed.get(str(device))
        if hit is None:
            qi = np.concatenate([np.arange(a, b) for a, b, _, _, _ in self.pieces])
            ki = np.concatenate([np.arange(c, d) for _, _, c, d, _ in self.pieces])
            ql = [b - a for a, b, _, _, _ in self.pieces]
            kl = [d - c for _, _, c, d, _ in self.pieces]
            sh = np.concatenate([np.full(b - a, s, dtype=np.float64) for a, b, _, _, s in self.pieces])
            cu_q = np.concatenate([[0], np.cumsum(ql)]).astype(np.int32)
            cu_k = np.concatenate([[0], np.cumsum(kl)]).astype(np.int32)

            def t(a, dtype):
                return torch.as_tensor(a, dtype=dtype).to(device)

            hit = (
                t(qi, torch.long),
                t(ki, torch.long),
                t(cu_q, torch.int32),
                t(cu_k, torch.int32),
                max(ql),
                max(kl),
                t(sh, torch.float64),
            )
            self._packed[str(device)] = hit
        return hit


@dataclass(eq=False)
class SplitPlan:
    calls: list[Call]
    self_rows: np.ndarray  # flat rows that see only themselves (padding)
    n_pairs: int  # visible pairs computed (for statistics)

    @property
    def n_pieces(self) -> int:
        return sum(len(c.pieces) for c in self.calls)


# ----------------------------------------------------------------------------------------------
# planning


def _codes(tags: SequenceTags, rule: MaskRule, b: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """0 = hidden, 1 = visible, 2 = visible with the log(alpha) bias (image<->condition)."""
    vis = visible(tags, b, q, k, rule.isolate)
    code = vis.to(torch.int8)
    if rule.log_alpha != 0.0:
        kq, kk = tags.kind[b, q], tags.kind[b, k]
        pair = ((kq == Kind.IMAGE) & (kk == Kind.COND)) | ((kq == Kind.COND) & (kk == Kind.IMAGE))
        code = code + (vis & pair).to(torch.int8)
    return code


def _segment_runs(tags: SequenceTags, rule: MaskRule, b: int, rows: int = 1024):
    """[(q0, q1, [(k0, k1, code), ...])] for the non-padding rows of sample ``b``."""
    L = tags.length
    dev = tags.kind.device
    bt = torch.tensor(b, device=dev)
    k = torch.arange(L, device=dev)[None, :]
    pad = (tags.kind[b] == Kind.PAD).cpu().numpy()
    starts, firsts, prev = [], [], None
    for s in range(0, L, rows):
        q = torch.arange(s, min(s + rows, L), device=dev)[:, None]
        code = _codes(tags, rule, bt, q, k)
        same = torch.zeros(code.shape[0], dtype=torch.bool, device=dev)
        same[1:] = (code[1:] == code[:-1]).all(dim=1)
        if prev is not None:
            same[0] = bool((code[0] == prev).all())
        prev = code[-1]
        new = (~same).cpu().numpy()
        idx = np.nonzero(new)[0]
        starts.extend((s + idx).tolist())
        if len(idx):
            firsts.append(code[torch.as_tensor(idx, device=dev)].cpu().numpy())
    code_rows = np.concatenate(firsts) if firsts else np.zeros((0, L), np.int8)
    bounds = starts + [L]
    out = []
    for j, q0 in enumerate(starts):
        # a segment may contain padding rows only if they equal their neighbour (they never do:
        # each sees only itself); cut at every padding row regardless
        q1 = bounds[j + 1]
        if pad[q0]:
            continue
        r = code_rows[j]
        edges = np.nonzero(np.diff(r, prepend=0, append=0))[0]
        runs = [(int(a), int(c), int(r[a])) for a, c in zip(edges[:-1], edges[1:]) if r[a] != 0]
        if not runs:
            raise SplitUnsupported(f"query row {q0} of sample {b} sees no key")
        out.append((q0, q1, runs))
    return out, np.nonzero(pad)[0]


def _coalesce(pieces: list) -> list:
    """Merge pieces with the same key range and bias whose query ranges touch."""
    pieces = sorted(pieces, key=lambda p: (p[2], p[3], p[4], p[0]))
    out = []
    for p in pieces:
        if out and out[-1][2:] == p[2:] and out[-1][1] == p[0]:
            out[-1] = (out[-1][0], p[1], *p[2:])
        else:
            out.append(p)
    return out


def _schedule(pieces: list) -> list[Call]:
    """First-fit by query start: as few calls as the most pieces any row has (interval colouring)."""
    calls: list[list] = []
    ends: list[int] = []
    for p in sorted(pieces, key=lambda p: (p[0], p[1])):
        for i, e in enumerate(ends):
            if e <= p[0]:
                calls[i].append(p)
                ends[i] = p[1]
                break
        else:
            calls.append([p])
            ends.append(p[1])
    # the biggest piece first in its call does not matter for exactness; keep calls ordered by work
    calls.sort(key=lambda c: -sum((p[1] - p[0]) * (p[3] - p[2]) for p in c))
    return [Call(c) for c in calls]


def plan_split(tags: SequenceTags, rule: MaskRule) -> SplitPlan:
    if rule.place:
        raise SplitUnsupported("place mode has a per-pair bias; it runs on the masked path")
    L = tags.length
    pieces, self_rows, pairs = [], [], 0
    shift = {1: 0.0, 2: float(rule.log_alpha)}
    for b in range(tags.kind.shape[0]):
        segs, pads = _segment_runs(tags, rule, b)
        self_rows.append(pads + b * L)
        for q0, q1, runs in segs:
            for k0, k1, c in runs:
                pieces.append((b * L + q0, b * L + q1, b * L + k0, b * L + k1, shift[c]))
                pairs += (q1 - q0) * (k1 - k0)
    pieces = _coalesce(pieces)
    if len(pieces) > MAX_PIECES:
        raise SplitUnsupported(f"{len(pieces)} pieces (entity tokens not contiguous?)")
    return SplitPlan(_schedule(pieces), np.concatenate(self_rows), pairs)


# ----------------------------------------------------------------------------------------------
# kernels returning the log-sum-exp


@functools.cache
def varlen_fn():
    """torch.nn.attention.varlen.varlen_attn (torch >= 2.10) or None."""
    try:
        from torch.nn.attention.varlen import AuxRequest, varlen_attn
    except Exception:
        return None

    def run(q, k, v, cu_q, cu_k, max_q, max_k, scale):
        # the default scale is ours (1/sqrt(D)); torch 2.10's signature has no ``scale`` argument
        assert abs(scale * math.sqrt(q.shape[-1]) - 1) < 1e-6
        o, lse = varlen_attn(q, k, v, cu_q, cu_k, max_q, max_k, return_aux=AuxRequest(lse=True))
        return o, _rows_by_heads(lse, q.shape[0], q.shape[1])

    return run


def _rows_by_heads(lse: torch.Tensor, n: int, h: int) -> torch.Tensor:
    """The varlen lse as (rows, heads) float32, whichever layout the backend returned."""
    if lse.dim() == 3 and lse.shape[-1] == 1:
        lse = lse[..., 0]
    if lse.shape == (h, n):
        lse = lse.transpose(0, 1)
    if lse.shape != (n, h):
        raise RuntimeError(f"unexpected log-sum-exp shape {tuple(lse.shape)} for {n} rows x {h} heads")
    return lse if lse.dtype == torch.float64 else lse.float()


def varlen_usable(device: torch.device, dtype: torch.dtype, head_dim: int) -> bool:
    return device.type == "cuda" and dtype in (torch.float16, torch.bfloat16) and head_dim <= 256 and varlen_fn() is not None


def dense_lse(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float):
    """(H, n, D) pieces -> out (n, H, D), lse (n, H) float32/64; the portable primitive."""
    if q.device.type == "cpu":
        o, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q[None], k[None], v[None], scale=scale)
        return o[0].transpose(0, 1), lse[0].transpose(0, 1)
    work = torch.float64 if q.dtype == torch.float64 else torch.float32
    s = (q.to(work) @ k.to(work).transpose(-1, -2)) * scale
    lse = torch.logsumexp(s, dim=-1)
    o = torch.softmax(s, dim=-1) @ v.to(work)
    return o.to(q.dtype).transpose(0, 1), lse.transpose(0, 1)


def _merge(acc_o, acc_l, rows, o, lse):
    """Fold one call's (o, lse) for ``rows`` into the running (acc_o, acc_l), exactly."""
    old_l = acc_l[rows]
    new_l = torch.logaddexp(old_l, lse)
    w_old = torch.exp(old_l - new_l)[..., None]
    w_new = torch.exp(lse - new_l)[..., None]
    acc_o[rows] = acc_o[rows] * w_old + o.to(acc_o.dtype) * w_new
    acc_l[rows] = new_l


def run_split(plan: SplitPlan, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, use_varlen: bool) -> torch.Tensor:
    """q, k, v (B, H, L, D) -> (B, H, L, D)."""
    B, H, L, D = q.shape
    scale = 1.0 / math.sqrt(D)
    qf, kf, vf = (t.transpose(1, 2).reshape(B * L, H, D) for t in (q, k, v))
    work = torch.float64 if q.dtype == torch.float64 else torch.float32
    acc_o = torch.zeros((B * L, H, D), dtype=work, device=q.device)
    acc_l = torch.full((B * L, H), -math.inf, dtype=work, device=q.device)
    for i, call in enumerate(plan.calls):
        if use_varlen:
            qi, ki, cu_q, cu_k, mq, mk, shift = call.packed(q.device)
            o, lse = varlen_fn()(qf[qi], kf[ki], vf[ki], cu_q, cu_k, mq, mk, scale)
            lse = lse.to(work) + shift.to(work)[:, None]
            if i == 0:  # nothing to merge with yet: write (saves two passes over the output)
                acc_o.index_copy_(0, qi, o.to(work))
                acc_l.index_copy_(0, qi, lse)
            else:
                _merge(acc_o, acc_l, qi, o, lse)
            continue
        for q0, q1, k0, k1, sh in call.pieces:
            o, lse = dense_lse(qf[q0:q1].transpose(0, 1), kf[k0:k1].transpose(0, 1), vf[k0:k1].transpose(0, 1), scale)
            _merge(acc_o, acc_l, slice(q0, q1), o, lse.to(work) + sh)
    if len(plan.self_rows):
        rows = torch.as_tensor(plan.self_rows, device=q.device)
        acc_o[rows] = vf[rows].to(work)
    return acc_o.to(q.dtype).view(B, L, H, D).transpose(1, 2)
