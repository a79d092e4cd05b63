"""GPU tier: a long-running process rendering many layouts. Compiled flex stays within its graph
bound (both kinds of rule: standard and place) and never runs unfused; "auto" compiles nothing; peak memory of a layout does not grow
after other layouts ran (24 heads x 128, bf16, sizes 512-1536, 1-40 entities, CFG batches)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from seg2any.attention.flex import MAX_GRAPHS, flex_available
from seg2any.attention.kernels import MaskedAttention
from seg2any.attention.rules import MaskRule
from tests.support.attention_cases import plan_of, qkv

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

# (seed, mode, [(entities, (gh, gw), condition tokens) per row]); 512 px = 32 x 32 tokens, 1536 = 96 x 96
LAYOUTS = [
    (0, "hard", [(4, (64, 64), 600)]),
    (1, "hard", [(20, (64, 64), 900), (20, (64, 64), 700)]),
    (2, "place", [(1, (32, 32), 150)]),
    (3, "hard", [(40, (96, 96), 1800)]),
    (4, "place", [(9, (48, 80), 500), (9, (48, 80), 300)]),
    (5, "hard", [(13, (80, 48), 400)]),
    (6, "place", [(30, (64, 64), 1000)]),
    (7, "hard", [(2, (32, 32), 100)]),
    (0, "hard", [(4, (64, 64), 600)]),  # the first layout again: its peak memory must not have grown
]
RULES = {
    "hard": [MaskRule(False), MaskRule(True), MaskRule(True, math.log(0.6))],
    "place": [MaskRule(False, 0.0, place=True), MaskRule(True, math.log(0.6), place=True)],
}


def _graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"].get("unique_graphs", 0))


def _run(backend: str):
    """(graphs compiled, unfused warnings, peak MiB per layout)."""
    start, peaks = _graphs(), []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for seed, mode, specs in LAYOUTS:
            plan = plan_of(seed, specs, bucket=128 if backend == "flex" else 1, mode=mode)
            att = MaskedAttention(plan.tags("cuda"), backend, contiguous=True)
            q, k, v = qkv(plan.batch, 24, plan.length, 128, seed=seed, dtype=torch.bfloat16, device="cuda")
            for rule in RULES[mode]:  # masks / plans / compilation
                att(q, k, v, rule)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            for rule in RULES[mode]:
                att(q, k, v, rule)
            torch.cuda.synchronize()
            peaks.append(torch.cuda.max_memory_allocated() / 2**20)
            del att, q, k, v
    unfused = [str(w.message) for w in caught if "without torch.compile" in str(w.message)]
    return _graphs() - start, unfused, peaks


@pytest.mark.skipif(not flex_available(), reason="no FlexAttention in this torch")
def test_flex_over_many_layouts(monkeypatch):
    monkeypatch.setenv("SEG2ANY_STRICT_FLEX", "1")
    graphs, unfused, peaks = _run("flex")
    assert graphs <= MAX_GRAPHS, graphs
    assert not unfused, unfused[:1]
    assert peaks[-1] <= peaks[0] * 1.05 + 64, peaks


@pytest.mark.parametrize("backend", ["auto", "split", "sdpa"])
def test_uncompiled_backends_over_many_layouts(backend):
    graphs, unfused, peaks = _run(backend)
    assert graphs == 0 and not unfused
    assert peaks[-1] <= peaks[0] * 1.05 + 64, peaks
