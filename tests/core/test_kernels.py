import math

import numpy as np
import pytest
import torch

from seg2any.attention_kernels import MaskedAttention, flex_available, resolve_backend
from seg2any.attention_rules import MaskRule, SequencePlan, row_layout
from seg2any.reference_mask import official_bias


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


def test_backend_choice():
    assert resolve_backend("auto", torch.device("cpu")) == "sdpa"
    assert resolve_backend("sdpa", torch.device("cuda")) == "sdpa"
    with pytest.raises(ValueError):
        resolve_backend("xformers", torch.device("cpu"))


@pytest.mark.skipif(not flex_available(), reason="no FlexAttention in this torch")
def test_flex_failure_falls_back_to_sdpa(monkeypatch):
    """A torch/triton build that cannot run FlexAttention (simulated: the kernel raises) still
    gives the right result through SDPA; with SEG2ANY_STRICT_FLEX the error surfaces instead."""
    import seg2any.attention_kernels as ak

    def broken():
        def fn(*a, **k):
            raise RuntimeError("triton: no kernel for this GPU")

        return fn

    monkeypatch.setattr(ak, "_eager_flex", broken)
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
