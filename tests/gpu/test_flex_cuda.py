"""GPU tier: the compiled block-sparse FlexAttention path on CUDA against the float64 official
dense bias, at a realistic sequence length (1024x1024 image, 512+10x50 text, ~600 condition tokens)."""

from __future__ import annotations

import math

import pytest
import torch

from seg2any.attention.kernels import MaskedAttention, flex_available
from seg2any.attention.rules import MaskRule, SequencePlan, row_layout
from tests.support.attention_cases import pixel_masks
from tests.support.reference_mask import official_bias

pytestmark = pytest.mark.skipif(not flex_available(), reason="no FlexAttention in this torch")


@pytest.mark.parametrize("rule", [MaskRule(False), MaskRule(True), MaskRule(True, math.log(0.5))])
def test_compiled_flex_matches_float64_reference(rule, monkeypatch):
    monkeypatch.setenv("SEG2ANY_STRICT_FLEX", "1")  # no silent SDPA fallback here
    masks = pixel_masks()
    text = (512,) + (50,) * len(masks)
    grid = (64, 64)
    n_cond = 600
    plan = SequencePlan.build([row_layout(text, masks, grid, n_cond, "hard")])
    tags = plan.tags("cuda")
    L = plan.length
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(1, 4, L, 128, generator=g, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    out = MaskedAttention(tags, "flex")(q, k, v, rule).double()

    base, hard = official_bias(list(text), masks, grid, n_cond, alpha=math.exp(rule.log_alpha), mode="hard")
    bias = torch.as_tensor(hard if rule.isolate else base, device="cuda")
    assert bias.shape == (L, L)
    s = (q.double() @ k.double().transpose(-1, -2)) / math.sqrt(128) + bias
    want = torch.softmax(s, -1) @ v.double()
    rel = (out - want).norm() / want.norm()
    assert rel < 1e-2, float(rel)  # bf16 inputs and accumulation
