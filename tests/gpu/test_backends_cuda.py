"""GPU tier: every attention backend on CUDA against the float64 reference at 1024 px with FLUX
head size (bf16, 4 heads x 128), and the backend "auto" picks on this GPU."""

from __future__ import annotations

import json
import math

import pytest
import torch

from seg2any.attention.kernels import MaskedAttention, auto_candidates, flex_available
from seg2any.attention.rules import MaskRule, SequencePlan, row_layout
from seg2any.attention.split import varlen_usable
from seg2any.attention.tuning import process_tuner
from tests.support.attention_cases import pixel_masks, qkv, reference, rel_err

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
RULES = [MaskRule(False), MaskRule(True), MaskRule(True, math.log(0.5)), MaskRule(False, math.log(0.3))]


def _plan(backend: str, batch: int = 1) -> SequencePlan:
    """1024 px: 64 x 64 image tokens, 512 + 50 per entity text tokens, ~600 condition tokens."""
    rows = []
    for b in range(batch):
        n = (10, 4)[b % 2]
        rows.append(row_layout((512 - 100 * b,) + (50,) * n, pixel_masks(n, seed=b), (64, 64), 600 - 150 * b, "hard"))
    return SequencePlan.build(rows, bucket=128 if backend == "flex" else 1, reorder=True)


@pytest.mark.parametrize("backend", ["sdpa", "split", "flex", "dense"])
def test_backend_matches_float64_reference_at_1024px(backend, monkeypatch):
    if backend == "flex" and not flex_available():
        pytest.skip("no FlexAttention in this torch")
    monkeypatch.setenv("SEG2ANY_STRICT_FLEX", "1")  # no silent SDPA fallback here
    plan = _plan(backend)
    tags = plan.tags("cuda")
    q, k, v = qkv(1, 4, plan.length, 128, seed=0, dtype=torch.bfloat16, device="cuda")
    att = MaskedAttention(tags, backend, contiguous=True)
    for rule in RULES:
        err = rel_err(att(q, k, v, rule), reference(q, k, v, tags, rule))
        assert err < 1e-2, (backend, rule, err)  # bf16 inputs and accumulation


@pytest.mark.parametrize("backend", ["split", "sdpa"])
def test_batch_of_two_layouts_on_cuda(backend):
    """Different layouts and lengths in one call (padding rows, pieces packed across samples)."""
    plan = _plan(backend, batch=2)
    tags = plan.tags("cuda")
    q, k, v = qkv(2, 4, plan.length, 128, seed=1, dtype=torch.bfloat16, device="cuda")
    att = MaskedAttention(tags, backend, contiguous=True)
    for rule in RULES[:2]:
        assert rel_err(att(q, k, v, rule), reference(q, k, v, tags, rule)) < 1e-2


def test_auto_times_both_backends_on_this_gpu_and_stays_exact(tmp_path, monkeypatch):
    """On this GPU split must run on the varlen flash kernel and pass its self-check, so "auto"
    times it against cuDNN SDPA for base and isolation layers; place mode is not timed."""
    dev = torch.device("cuda")
    assert varlen_usable(dev, torch.bfloat16, 128), "torch.nn.attention.varlen missing: split falls back to per-piece calls"
    for rule in (MaskRule(False), MaskRule(True)):
        names, why = auto_candidates(rule, dev, torch.bfloat16, 128, True)
        assert names == ["sdpa", "split"], why
    assert auto_candidates(MaskRule(True, 0.0, place=True), dev, torch.bfloat16, 128, True)[0] == ["sdpa"]

    path = tmp_path / "choices.json"
    monkeypatch.setenv("SEG2ANY_TUNING_FILE", str(path))
    plan = _plan("auto")
    tags = plan.tags("cuda")
    q, k, v = qkv(1, 4, plan.length, 128, seed=2, dtype=torch.bfloat16, device="cuda")
    att = MaskedAttention(tags, "auto", contiguous=True)
    for rule in RULES:
        assert rel_err(att(q, k, v, rule), reference(q, k, v, tags, rule)) < 1e-2
    assert process_tuner().measurements == 2
    for key, entry in json.loads(path.read_text())["choices"].items():
        print(key, entry)  # the measured figures, for the session log
        assert set(entry["ms"]) == {"sdpa", "split"}
