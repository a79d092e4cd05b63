"""Turning per-sample Seg2Any settings into one model call's inputs (shared by both adapters).

Each row keeps exactly its own text, image and condition tokens; shorter rows get invisible
padding (the official batch padding), so a row computes the same result alone or in a batch.
"""

from __future__ import annotations

import torch

from ..attention.backends import REGISTRY
from ..attention.kernels import MaskedAttention
from ..attention.rules import MaskRule, SequencePlan
from ..errors import ModelMismatchError
from .settings import Seg2AnyConditioning


def plan_rows(
    infos: list[Seg2AnyConditioning], grid: tuple[int, int], backend: str, reorder_ok: bool
) -> tuple[SequencePlan, bool]:
    """(plan, trivial): trivial means no entity, no condition token and no padding, i.e. plain FLUX.

    ``backend`` is resolved (:func:`~seg2any.attention.kernels.resolve_backend`); its registry row says
    whether L is rounded up (flex: whole tiles) and whether image tokens are reordered entity-contiguously.
    """
    rows = [info.row(grid) for info in infos]
    row = REGISTRY[backend]
    plan = SequencePlan.build(rows, bucket=row.seq_multiple, reorder=row.reorders and reorder_ok)
    n_img = grid[0] * grid[1]
    trivial = all(info.trivial() and info.n_text == plan.text_len for info in infos) and plan.length == plan.text_len + n_img
    return plan, trivial


def layer_rules(infos: list[Seg2AnyConditioning], n_double: int, n_single: int) -> list[MaskRule]:
    """The rule of every joint block; rows batched together must agree on it."""
    rules = [infos[0].rule(i, n_double, n_single) for i in range(n_double + n_single)]
    seen = {id(infos[0])}
    for info in infos[1:]:
        if id(info) in seen:
            continue
        seen.add(id(info))
        for i in range(n_double + n_single):
            if info.rule(i, n_double, n_single) != rules[i]:
                raise ModelMismatchError(
                    "conditionings batched together use different Seg2Any attention settings (mode, isolation "
                    "blocks or shape strength); give positive and negative the same settings"
                )
    return rules


def pad_text(rows: list[torch.Tensor], length: int) -> torch.Tensor:
    """(T_r, D) per row -> (B, length, D), zero padded at the end of each row."""
    out = rows[0].new_zeros((len(rows), length, rows[0].shape[-1]))
    for r, t in enumerate(rows):
        out[r, : t.shape[0]] = t
    return out


def condition_inputs(infos, plan: SequencePlan, in_channels: int, device, dtype, process_in):
    """(B, C, in_channels) model-space condition tokens and (B, C, 3) float32 RoPE ids, zero padded."""
    if not plan.cond_len:
        return None, None
    tokens = torch.zeros((len(infos), plan.cond_len, in_channels), device=device, dtype=dtype)
    ids = torch.zeros((len(infos), plan.cond_len, 3), device=device, dtype=torch.float32)
    for r, info in enumerate(infos):
        c = info.condition
        if c is None or c.count == 0:
            continue
        tokens[r, : c.count] = c.tokens(process_in).to(device, dtype)
        ids[r, : c.count] = torch.from_numpy(c.positions()).to(device, torch.float32)
    return tokens, ids


def kernel_for(plan: SequencePlan, trivial: bool, backend: str, device) -> MaskedAttention | None:
    return None if trivial else MaskedAttention(plan.tags(device), backend, contiguous=plan.reordered)
