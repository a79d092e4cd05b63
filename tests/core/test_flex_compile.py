"""Compiled FlexAttention on the CPU: many layouts, a bounded number of graphs, never unfused.

A long-running ComfyUI server renders layout after layout; if each new layout compiled new
graphs, dynamo's recompile limit would soon make flex run unfused (5x slower, +7 GB at 2048 px on
an H100). Inductor compiles flex_attention on the CPU too, so the graph count is guarded here.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from seg2any.attention_flex import MAX_GRAPHS, flex_available
from seg2any.attention_kernels import MaskedAttention
from seg2any.attention_rules import MaskRule
from tests.support.attention_cases import plan_of, qkv, reference, rel_err

pytestmark = pytest.mark.skipif(not flex_available(), reason="no FlexAttention in this torch")

# (seed, [(entities, grid, condition tokens) per row], rule); every L differs, tables differ in size
FAST = [
    (0, [(3, (12, 12), 40)], MaskRule(False)),
    (1, [(7, (16, 14), 90)], MaskRule(True)),
    (2, [(1, (10, 18), 0)], MaskRule(True, math.log(0.5))),
    (3, [(12, (18, 18), 150), (5, (18, 18), 60)], MaskRule(False, math.log(1.7))),
    (4, [(2, (14, 10), 25), (9, (14, 10), 70)], MaskRule(True)),
    (5, [(20, (20, 22), 200)], MaskRule(True, math.log(0.8))),
]
PLACE = [
    (6, [(4, (12, 16), 30)], MaskRule(True, 0.0, place=True)),
    (7, [(6, (16, 16), 50), (3, (16, 16), 10)], MaskRule(False, math.log(0.6), place=True)),
]


def _graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"].get("unique_graphs", 0))


def _render(cases, mode="hard"):
    """Run each case through compiled flex; return (graphs compiled, unfused warnings, worst error)."""
    import torch._dynamo

    torch._dynamo.reset()
    start = _graphs()
    worst = 0.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for seed, specs, rule in cases:
            plan = plan_of(seed, specs, bucket=128, mode="place" if rule.place else mode)
            tags = plan.tags()
            q, k, v = qkv(len(specs), 2, plan.length, 16, seed=seed, dtype=torch.float32)
            out = MaskedAttention(tags, "flex", contiguous=True)(q, k, v, rule)
            worst = max(worst, rel_err(out, reference(q, k, v, tags, rule)))
    unfused = [str(w.message) for w in caught if "without torch.compile" in str(w.message)]
    return _graphs() - start, unfused, worst


@pytest.fixture
def compiled_flex_on_cpu(monkeypatch):
    monkeypatch.setenv("SEG2ANY_FLEX_COMPILE", "1")
    monkeypatch.setenv("SEG2ANY_STRICT_FLEX", "1")  # a compile failure must fail the test, not fall back


def test_six_layouts_compile_at_most_two_graphs(compiled_flex_on_cpu):
    """Six layouts (sizes, entity counts, batch 1 and 2, both rules, with and without bias): the
    standard kind of rule compiles at most 2 graphs, results match float64."""
    graphs, unfused, worst = _render(FAST)
    assert graphs <= 2, graphs
    assert graphs >= 1  # the compiled path really ran
    assert not unfused, unfused
    assert worst < 1e-5, worst


@pytest.mark.slow
def test_many_layouts_with_place_mode_stay_within_bound(compiled_flex_on_cpu):
    """Both kinds of rule, twice over: never more than MAX_GRAPHS, and a second pass compiles nothing."""
    graphs, unfused, worst = _render(FAST + PLACE)
    assert graphs <= MAX_GRAPHS, graphs
    assert not unfused and worst < 1e-5, (unfused, worst)
    from torch._dynamo.utils import counters

    before = _graphs()
    shifted = [(s + 10, [(n + 1, (g[0] + 2, g[1]), c + 3) for n, g, c in sp], r) for s, sp, r in FAST + PLACE]
    for seed, specs, rule in shifted:
        plan = plan_of(seed, specs, bucket=128, mode="place" if rule.place else "hard")
        q, k, v = qkv(len(specs), 2, plan.length, 16, seed=seed, dtype=torch.float32)
        MaskedAttention(plan.tags(), "flex", contiguous=True)(q, k, v, rule)
    assert _graphs() == before, dict(counters["stats"])
