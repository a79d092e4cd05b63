"""The backend table: each row's declared support is what its kernel does, and the planner, the
choice of "auto" and the node read the table (float64 reference: tests.support.attention_cases)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seg2any.attention.backends import AUTO, BACKENDS, DEFAULT, MASK_KINDS, PLACE_WHY, REGISTRY, candidates, tooltip
from seg2any.attention.kernels import MaskedAttention
from seg2any.attention.rules import MaskRule
from seg2any.conditioning.batching import plan_rows
from seg2any.conditioning.settings import Seg2AnyConditioning
from seg2any.layout.layout import layout_from_masks
from tests.support.attention_cases import plan_of, qkv, reference

RULE_OF_KIND = {"base": MaskRule(False, math.log(0.6)), "isolation": MaskRule(True), "place": MaskRule(True, 0.0, place=True)}


@pytest.mark.parametrize("name", [n for n in BACKENDS if n != AUTO])
def test_every_backend_is_exact_for_every_kind_of_rule(name):
    """A declared kind runs on the backend itself; an undeclared one falls back to the default
    (still exact). Flex runs eager here (float32), the others in float64."""
    row = REGISTRY[name]
    if not row.available():
        pytest.skip(f"{name} is not available in this torch")
    dtype = torch.float32 if row.compiles else torch.float64
    plan = plan_of(3, [(4, (10, 12), 18)], reorder=True, bucket=row.seq_multiple, mode="place")  # with area fractions
    tags = plan.tags()
    q, k, v = qkv(plan.batch, 2, plan.length, 16, seed=3, dtype=dtype)
    att = MaskedAttention(tags, name, contiguous=True)
    for kind in MASK_KINDS:
        rule = RULE_OF_KIND[kind]
        got = att(q, k, v, rule).double()
        want = reference(q, k, v, tags, rule)
        assert (got - want).abs().max() < (2e-5 if dtype == torch.float32 else 1e-10), (name, kind)
        assert att.backend_for(rule, q, k, v) == (name if kind in row.mask_kinds else DEFAULT)


@pytest.mark.parametrize("name", BACKENDS)
def test_planner_reads_the_row(name):
    masks = np.zeros((2, 96, 80), bool)
    masks[0, :50, :40] = True
    masks[1, 30:, 30:] = True
    info = Seg2AnyConditioning(layout_from_masks("a scene", masks, ["left", "right"]), (7, 3, 4))
    plan, trivial = plan_rows([info], (6, 5), name, reorder_ok=True)
    row = REGISTRY[name]
    assert not trivial and plan.length % row.seq_multiple == 0 and plan.reordered == row.reorders
    assert plan_rows([info], (6, 5), name, reorder_ok=False)[0].reordered is False  # ControlNet keeps raster order


def test_auto_candidates_follow_the_declarations():
    cpu = torch.device("cpu")
    tunable = [n for n, b in REGISTRY.items() if n != AUTO and "cpu" in b.devices]
    assert candidates(MaskRule(True), cpu, torch.float32, 16, True) == (tunable, None)
    assert tunable[0] == DEFAULT and "split" in tunable and "flex" not in tunable and "dense" not in tunable
    assert candidates(MaskRule(True, 0.0, place=True), cpu, torch.float32, 16, True) == ([DEFAULT], PLACE_WHY)
    names, why = candidates(MaskRule(False), cpu, torch.float32, 16, False)
    assert names == [DEFAULT] and "not entity-contiguous" in why


def test_node_tooltip_names_every_backend():
    tip = tooltip()
    assert [n for n in BACKENDS if f"{n}: " in tip] == list(BACKENDS)
