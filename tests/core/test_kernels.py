import math

import numpy as np
import pytest
import torch

from seg2any.attention.kernels import BACKENDS, MaskedAttention, flex_available, resolve_backend
from seg2any.attention.rules import MaskRule, SequencePlan, dense_mask, row_layout
from seg2any.attention.split import plan_split
from tests.support.attention_cases import plan_of, qkv, reference
from tests.support.reference_mask import official_bias


def _case():
    masks = np.zeros((3, 64, 64), bool)
    masks[0, :32, :40] = True
    masks[1, 20:60, 20:60] = True
    masks[2, 40:, :16] = True
    rows = [row_layout((4, 3, 2, 2), masks, (4, 4), 7, "hard"), row_layout((6, 2, 2, 3), masks[[2, 0, 1]], (4, 4), 3, "hard")]
    return rows, masks


def naive(q, k, v, bias):
    s = (q.double() @ k.double().transpose(-1, -2)) / math.sqrt(q.shape[-1]) + bias
    return torch.softmax(s, -1) @ v.double()


@pytest.mark.parametrize("isolate", [False, True])
def test_sdpa_path_equals_float64_softmax_with_official_bias(isolate):
    rows, masks = _case()
    plan = SequencePlan.build(rows[:1])
    att = MaskedAttention(plan.tags(), "sdpa")
    L = plan.length
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 3, L, 16, generator=g, dtype=torch.float64) for _ in range(3))
    la = math.log(0.4)
    out = att(q, k, v, MaskRule(isolate, la))
    base, hard = official_bias([4, 3, 2, 2], masks, (4, 4), 7, alpha=0.4, mode="hard")
    want = naive(q, k, v, hard if isolate else base)
    assert torch.allclose(out, want, atol=1e-12)
    m = att.mask_for(MaskRule(isolate, la), torch.float64)
    assert m.shape == (1, 1, L, L)  # heads broadcast, never (B, H, L, L)


@pytest.mark.skipif(not flex_available(), reason="no FlexAttention in this torch")
def test_flex_path_equals_sdpa_on_cpu():
    rows, _ = _case()
    plan = SequencePlan.build(rows, reorder=True)
    tags = plan.tags()
    L = plan.length
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 2, L, 16, generator=g) for _ in range(3))
    for rule in (MaskRule(False), MaskRule(True), MaskRule(True, math.log(0.3))):
        a = MaskedAttention(tags, "sdpa")(q, k, v, rule)
        b = MaskedAttention(tags, "flex")(q, k, v, rule)
        assert torch.allclose(a, b, atol=2e-6)


def test_backend_choice(monkeypatch):
    monkeypatch.delenv("SEG2ANY_ATTENTION", raising=False)
    assert resolve_backend("auto", torch.device("cpu")) == "sdpa"
    assert resolve_backend("auto", torch.device("cuda")) == "auto"  # measured per rule, on the GPU
    for name in BACKENDS[1:]:
        assert resolve_backend(name, torch.device("cuda")) == name
        monkeypatch.setenv("SEG2ANY_ATTENTION", name)
        assert resolve_backend("auto", torch.device("cpu")) == name
    monkeypatch.setenv("SEG2ANY_ATTENTION", "sdpa")
    assert resolve_backend("split", torch.device("cpu")) == "split"  # an explicit choice wins over the variable
    with pytest.raises(ValueError, match="xformers"):
        resolve_backend("xformers", torch.device("cpu"))


def test_auto_on_cpu_logs_its_choice_once(caplog, monkeypatch):
    import seg2any.attention.kernels as ak

    monkeypatch.delenv("SEG2ANY_ATTENTION", raising=False)
    monkeypatch.setattr(ak, "_logged", set())
    with caplog.at_level("INFO", logger="seg2any"):
        for _ in range(3):
            resolve_backend("auto", torch.device("cpu"))
    assert [r.getMessage() for r in caplog.records if "attention" in r.getMessage()] == [
        "Seg2Any attention: sdpa (additive mask, heads broadcast) on cpu"
    ]


# ----------------------------------------------------------------------------------------------
# every backend against the float64 reference on random layouts

CASES = {
    # overlapping entities, background, condition tokens; one row
    "single": (0, [(4, (8, 8), 12)]),
    # batch of 3 different layouts: unequal text and condition lengths -> padding rows in both
    "batch": (1, [(6, (8, 10), 20), (1, (8, 10), 0), (3, (8, 10), 33)]),
    # many small entities, no condition tokens
    "many": (2, [(15, (10, 10), 0), (9, (10, 10), 5)]),
}
RULES = [MaskRule(False), MaskRule(True), MaskRule(True, math.log(0.3)), MaskRule(False, math.log(2.5))]


@pytest.mark.parametrize("backend", ["sdpa", "split", "dense", "flex"])
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("reorder", [False, True])
def test_backend_equals_float64_reference(backend, case, reorder):
    if backend == "flex" and not flex_available():
        pytest.skip("no FlexAttention in this torch")
    seed, specs = CASES[case]
    plan = plan_of(seed, specs, reorder=reorder, bucket=128 if backend == "flex" else 1)
    tags = plan.tags()
    dtype = torch.float32 if backend == "flex" else torch.float64  # eager flex computes in float32
    q, k, v = qkv(plan.batch, 2, plan.length, 16, seed=seed, dtype=dtype)
    att = MaskedAttention(tags, backend, contiguous=reorder)
    for rule in RULES:
        got = att(q, k, v, rule)
        want = reference(q, k, v, tags, rule)
        tol = 2e-6 if dtype == torch.float32 else 1e-12
        assert (got.double() - want).abs().max().item() < tol, (rule, (got.double() - want).abs().max().item())


def test_split_computes_exactly_the_visible_pairs():
    """No masked pair is computed and none is computed twice: the pieces' areas add up to the
    number of visible non-padding pairs, and padding rows are copied, not attended."""
    plan = plan_of(3, [(8, (12, 12), 30), (2, (12, 12), 9)])
    tags = plan.tags()
    pad = (tags.kind == 4).reshape(-1)
    for rule in RULES:
        sp = plan_split(tags, rule)
        vis = dense_mask(tags, rule)[:, 0].reshape(-1, plan.length)
        assert sp.n_pairs == int(vis[~pad].sum())
        area = sum((p[1] - p[0]) * (p[3] - p[2]) for c in sp.calls for p in c.pieces)
        assert area == sp.n_pairs
        assert sorted(sp.self_rows.tolist()) == torch.nonzero(pad).flatten().tolist()
        for c in sp.calls:  # a call's query ranges never overlap
            spans = sorted((p[0], p[1]) for p in c.pieces)
            assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
        # as few calls as the most pieces any one row needs (the scheduling is an interval colouring)
        cover = np.zeros(pad.numel(), int)
        for c in sp.calls:
            for p in c.pieces:
                cover[p[0] : p[1]] += 1
        assert len(sp.calls) == cover.max()


def test_split_in_place_mode_uses_the_masked_path():
    """Place mode's per-pair bias cannot be split: those layers run on SDPA, still exact."""
    rng = np.random.default_rng(4)
    from tests.support.attention_cases import random_row

    plan = SequencePlan.build([random_row(rng, 5, (8, 8), 10, "place")], reorder=True)
    tags = plan.tags()
    q, k, v = qkv(1, 2, plan.length, 16, seed=4)
    rule = MaskRule(True, math.log(0.5), place=True)
    got = MaskedAttention(tags, "split", contiguous=True)(q, k, v, rule)
    assert torch.allclose(got, reference(q, k, v, tags, rule), atol=1e-12)


@pytest.mark.skipif(not flex_available(), reason="no FlexAttention in this torch")
def test_flex_failure_falls_back_to_sdpa(monkeypatch):
    """A torch/triton build that cannot run FlexAttention (simulated: the kernel raises) still
    gives the right result through SDPA; with SEG2ANY_STRICT_FLEX the error surfaces instead."""
    import seg2any.attention.flex as af

    def broken():
        def fn(*a, **k):
            raise RuntimeError("triton: no kernel for this GPU")

        return fn

    monkeypatch.setattr(af, "eager_flex", broken)
    rows, _ = _case()
    plan = SequencePlan.build(rows, reorder=True)
    tags = plan.tags()
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(2, 2, plan.length, 16, generator=g) for _ in range(3))
    want = MaskedAttention(tags, "sdpa")(q, k, v, MaskRule(True, math.log(0.5)))
    att = MaskedAttention(tags, "flex")
    got = att(q, k, v, MaskRule(True, math.log(0.5)))
    assert att.backend == "sdpa"
    assert torch.allclose(got, want, atol=1e-6)
    monkeypatch.setenv("SEG2ANY_STRICT_FLEX", "1")
    with pytest.raises(RuntimeError, match="triton"):
        MaskedAttention(tags, "flex")(q, k, v, MaskRule(True))


@pytest.mark.parametrize("lse_layout", ["heads-rows", "rows-heads-1"])
def test_split_packed_varlen_calls_equal_reference(monkeypatch, lse_layout):
    """The CUDA path packs each call's pieces into one varlen kernel call (gathered q/k/v rows,
    cumulative lengths, a per-row lse shift for log alpha). Here the varlen kernel is replaced by
    a plain-torch one with the same contract (FlashAttention's (heads, rows) lse, or cuDNN-style
    (rows, heads, 1)), so the packing, bias shifts and merging are checked on the CPU."""
    import seg2any.attention.split as asplit

    def varlen_emulated(q, k, v, cu_q, cu_k, max_q, max_k, scale):
        o, lse = torch.empty_like(q), torch.empty(q.shape[0], q.shape[1], dtype=torch.float64)
        for i in range(len(cu_q) - 1):
            a, b, c, d = int(cu_q[i]), int(cu_q[i + 1]), int(cu_k[i]), int(cu_k[i + 1])
            assert b - a <= max_q and d - c <= max_k
            o[a:b], lse[a:b] = asplit.dense_lse(q[a:b].transpose(0, 1), k[c:d].transpose(0, 1), v[c:d].transpose(0, 1), scale)
        raw = lse.T.contiguous() if lse_layout == "heads-rows" else lse[..., None]
        return o, asplit._rows_by_heads(raw, q.shape[0], q.shape[1]).double()

    monkeypatch.setattr(asplit, "varlen_fn", lambda: varlen_emulated)
    seed, specs = CASES["batch"]
    plan = plan_of(seed, specs)
    tags = plan.tags()
    q, k, v = qkv(plan.batch, 3, plan.length, 16, seed=9)
    for rule in RULES:
        sp = plan_split(tags, rule)
        got = asplit.run_split(sp, q, k, v, use_varlen=True)
        assert (got - reference(q, k, v, tags, rule)).abs().max().item() < 1e-12, rule
