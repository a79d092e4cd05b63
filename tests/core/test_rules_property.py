"""Property tests: random layouts (overlaps, vanishing entities, padding, every mode) agree with
the official dense algorithm, and every structural promise of the compact form holds."""

import math

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seg2any.attention.rules import Kind, MaskRule, SequencePlan, dense_mask, row_layout
from tests.support.reference_mask import official_bias


@st.composite
def layouts(draw):
    gh, gw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    f = draw(st.integers(1, 4))
    n = draw(st.integers(0, 5))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    dens = draw(st.floats(0.0, 0.9))
    masks = rng.random((n, gh * f, gw * f)) < dens
    lens = [draw(st.integers(0, 4))] + [draw(st.integers(1, 4)) for _ in range(n)]
    n_cond = draw(st.integers(0, 6))
    mode = draw(st.sampled_from(["base", "hard", "place"]))
    alpha = draw(st.sampled_from([1.0, 0.5, 0.1]))
    return masks, (gh, gw), tuple(lens), n_cond, mode, alpha


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layouts())
def test_compact_rules_equal_official_dense(case):
    masks, grid, lens, n_cond, mode, alpha = case
    rl = row_layout(lens, masks, grid, n_cond, mode)
    tags = SequencePlan.build([rl]).tags()
    base, hard = official_bias(list(lens), masks, grid, n_cond, alpha=alpha, mode=mode)
    la = math.log(alpha)
    got = dense_mask(tags, MaskRule(False, la, mode == "place"), dtype=torch.float64)[0, 0]
    assert torch.equal(got, base)
    if hard is not None:
        got = dense_mask(tags, MaskRule(True, la), dtype=torch.float64)[0, 0]
        assert torch.equal(got, hard)


@settings(max_examples=80, deadline=None)
@given(st.lists(layouts(), min_size=2, max_size=3))
def test_batches_pad_per_row_without_leaks(cases):
    grid = cases[0][1]
    rows, singles = [], []
    for masks, g, lens, n_cond, _, _ in cases:
        f = masks.shape[1] // g[0] if masks.shape[0] else 1
        m = masks if g == grid else np.zeros((masks.shape[0], grid[0] * f, grid[1] * f), bool)
        if m.shape[0]:
            m[:, 0, 0] = True
        rows.append(row_layout(lens, m, grid, n_cond, "hard"))
        singles.append(SequencePlan.build([rows[-1]]))
    plan = SequencePlan.build(rows)
    tags = plan.tags()
    for rule in (MaskRule(False), MaskRule(True)):
        m = dense_mask(tags, rule)[:, 0]
        for b, single in enumerate(singles):
            kind = tags.kind[b]
            real = (kind != Kind.PAD).nonzero().flatten()
            pad = (kind == Kind.PAD).nonzero().flatten()
            # exact per-sample counts: the real tokens are exactly the sample's own
            assert real.numel() == single.length
            ref = dense_mask(single.tags(), rule)[0, 0]
            assert torch.equal(m[b][real][:, real], ref)
            if pad.numel():
                assert not m[b][real][:, pad].any()
                assert torch.equal(m[b][pad][:, pad], torch.eye(pad.numel(), dtype=torch.bool))
