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

from seg2any.attention.flex import flex_available
from seg2any.attention.kernels import MaskedAttention
from seg2any.attention.rules import MaskRule
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


def _graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"].get("unique_graphs", 0))


def _render(cases):
    """Run each case through compiled flex; return (graphs compiled, unfused warnings, worst error)."""
    import torch._dynamo

    torch._dynamo.reset()
    start = _graphs()
    worst = 0.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for seed, specs, rule in cases:
            plan = plan_of(seed, specs, bucket=128)
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
    print(f"6 layouts: {graphs} graphs compiled, worst relative error {worst:.2e}")
    assert graphs <= 2, graphs
    assert graphs >= 1  # the compiled path really ran
    assert not unfused, unfused
    assert worst < 1e-5, worst


@pytest.mark.slow
def test_twelve_layouts_then_a_second_pass_compile_nothing_new(compiled_flex_on_cpu):
    """Twelve layouts stay within the bound; six more, all new sizes, compile nothing.

    (The "place" kind of rule is guarded on the GPU only: Inductor's CPU flex template cannot
    build a symbolic-length kernel whose score_mod does arithmetic on the key index.)"""
    more = [(s + 10, [(n + 1, (g[0] + 2, g[1]), c + 3) for n, g, c in sp], r) for s, sp, r in FAST]
    graphs, unfused, worst = _render(FAST + more)
    print(f"12 layouts: {graphs} graphs compiled, worst relative error {worst:.2e}")
    assert graphs <= 2 and not unfused and worst < 1e-5, (graphs, unfused, worst)
    before = _graphs()
    for seed, specs, rule in [(s + 20, [(n + 2, (g[0] + 3, g[1] + 1), c + 7) for n, g, c in sp], r) for s, sp, r in FAST]:
        plan = plan_of(seed, specs, bucket=128)
        q, k, v = qkv(len(specs), 2, plan.length, 16, seed=seed, dtype=torch.float32)
        MaskedAttention(plan.tags(), "flex", contiguous=True)(q, k, v, rule)
    assert _graphs() == before
