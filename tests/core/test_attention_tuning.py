"""Attention backend "auto": measured once per kind of rule and size, remembered in memory and in
a file, exact whichever backend wins. Runs the real kernels and real timings on the CPU (on CUDA the
process-wide tuner does the same; tests/gpu checks it there)."""

from __future__ import annotations

import json
import logging
import math

import pytest

import seg2any.attention.kernels as ak
from seg2any.attention.kernels import MaskedAttention
from seg2any.attention.rules import MaskRule
from seg2any.attention.tuning import BackendTuner, bucket_bounds, default_path, length_bucket, pick_fastest
from tests.support.attention_cases import plan_of, qkv, reference

RULES = [MaskRule(False), MaskRule(True), MaskRule(True, math.log(0.3)), MaskRule(False, math.log(2.5))]


def _problem(grid=(12, 12), seed=0, reorder=True):
    plan = plan_of(seed, [(5, grid, 20)], reorder=reorder)
    tags = plan.tags()
    return tags, qkv(1, 2, plan.length, 16, seed=seed)


def test_pick_fastest_keeps_the_default_unless_clearly_beaten():
    assert pick_fastest({"sdpa": 1.00, "split": 0.97}) == "sdpa"  # 3% faster: within the margin
    assert pick_fastest({"sdpa": 1.00, "split": 0.90}) == "split"
    assert pick_fastest({"sdpa": 0.80, "split": 1.20}) == "sdpa"
    assert pick_fastest({"sdpa": 2.0, "split": 1.5, "x": 1.0}) == "x"


def test_length_buckets_are_a_quarter_octave():
    for L in (200, 1336, 5080, 5100, 18000):
        lo, hi = bucket_bounds(length_bucket(L))
        assert lo <= L <= hi
    assert length_bucket(5080) == length_bucket(5100)
    assert length_bucket(8192) - length_bucket(4096) == 4
    lo, hi = bucket_bounds(length_bucket(4096))
    assert bucket_bounds(length_bucket(4096) + 1)[0] == hi + 1  # buckets tile the line


def test_default_path(monkeypatch, tmp_path):
    monkeypatch.delenv("SEG2ANY_TUNING_FILE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_path() == tmp_path / "seg2any" / "attention-choices.json"
    monkeypatch.setenv("SEG2ANY_TUNING_FILE", "off")
    assert default_path() is None
    monkeypatch.setenv("SEG2ANY_TUNING_FILE", str(tmp_path / "x.json"))
    assert default_path() == tmp_path / "x.json"


def test_auto_measures_once_per_kind_and_size_and_is_exact(tmp_path):
    path = tmp_path / "choices.json"
    tuner = BackendTuner(path)
    tags, (q, k, v) = _problem()
    att = MaskedAttention(tags, "auto", contiguous=True, tuner=tuner)
    for rule in RULES:
        assert (att(q, k, v, rule) - reference(q, k, v, tags, rule)).abs().max() < 1e-12
    assert tuner.measurements == 2  # base and isolation; the biased rules reuse their kind's choice
    saved = json.loads(path.read_text())["choices"]
    assert len(saved) == 2
    for key, entry in saved.items():
        assert set(entry["ms"]) == {"sdpa", "split"} and entry["choice"] in entry["ms"]
        assert all(t > 0 for t in entry["ms"].values())
        rule = MaskRule("isolation" in key)
        loser = ({"sdpa", "split"} - {entry["choice"]}).pop()
        assert (rule, q.dtype, entry["choice"]) in att._masks and (rule, q.dtype, loser) not in att._masks

    # the next generation of the same size, and the next process (a new tuner on the same file)
    for again in (tuner, BackendTuner(path)):
        att2 = MaskedAttention(tags, "auto", contiguous=True, tuner=again)
        for rule in RULES[:2]:
            att2(q, k, v, rule)
        assert again.measurements == (2 if again is tuner else 0)

    # another length bucket is measured anew
    tags3, (q3, k3, v3) = _problem(grid=(24, 24), seed=1)
    assert length_bucket(tags3.length) != length_bucket(tags.length)
    MaskedAttention(tags3, "auto", contiguous=True, tuner=tuner)(q3, k3, v3, MaskRule(True))
    assert tuner.measurements == 3 and len(json.loads(path.read_text())["choices"]) == 3


@pytest.mark.parametrize("choice", ["sdpa", "split"])
def test_a_saved_choice_is_what_runs(tmp_path, choice):
    """The file decides (this is what keeps pixels identical from one process to the next)."""
    tags, (q, k, v) = _problem()
    path = tmp_path / "choices.json"
    key = BackendTuner.key(q.device, q, True)
    path.write_text(json.dumps({"version": 1, "choices": {key: {"choice": choice, "ms": {"sdpa": 1.0, "split": 2.0}}}}))
    tuner = BackendTuner(path)
    att = MaskedAttention(tags, "auto", contiguous=True, tuner=tuner)
    out = att(q, k, v, MaskRule(True))
    assert tuner.measurements == 0
    assert {key[2] for key in att._masks} == {choice}
    assert (out - reference(q, k, v, tags, MaskRule(True))).abs().max() < 1e-12


def test_one_candidate_is_not_timed(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(ak, "_logged", set())
    tuner = BackendTuner(tmp_path / "c.json")
    tags, (q, k, v) = _problem(reorder=False)
    with caplog.at_level("INFO", logger="seg2any"):
        raster = MaskedAttention(tags, "auto", contiguous=False, tuner=tuner)
        for _ in range(2):
            raster(q, k, v, MaskRule(True))
        tags_c, (qc, kc, vc) = _problem()
        MaskedAttention(tags_c, "auto", contiguous=True, tuner=tuner)(qc, kc, vc, MaskRule(True, 0.0, place=True))
    assert tuner.measurements == 0 and not (tmp_path / "c.json").exists()
    msgs = [r.getMessage() for r in caplog.records if r.name == "seg2any"]
    assert len(msgs) == 2
    assert "sdpa (image tokens not entity-contiguous" in msgs[0] and "sdpa (place mode" in msgs[1]


def test_training_uses_sdpa_without_timing(tmp_path):
    tuner = BackendTuner(tmp_path / "c.json")
    tags, (q, k, v) = _problem()
    q = q.clone().requires_grad_(True)
    att = MaskedAttention(tags, "auto", contiguous=True, tuner=tuner)
    att(q, k, v, MaskRule(True)).sum().backward()
    assert tuner.measurements == 0 and q.grad is not None and {key[2] for key in att._masks} == {"sdpa"}


def test_choice_logged_once_per_key(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(ak, "_logged", set())
    tuner = BackendTuner(tmp_path / "c.json")
    tags, (q, k, v) = _problem()
    with caplog.at_level("INFO", logger="seg2any"):
        for _ in range(3):
            att = MaskedAttention(tags, "auto", contiguous=True, tuner=tuner)
            for rule in RULES:
                att(q, k, v, rule)
    msgs = [r.getMessage() for r in caplog.records if r.name == "seg2any"]
    assert len(msgs) == 2, msgs
    lo, hi = bucket_bounds(length_bucket(tags.length))
    for kind, m in zip(("base", "isolation"), msgs):
        assert f"layers at {lo}-{hi} tokens, batch 1" in m and f"for {kind} layers" in m
        assert "sdpa " in m and "split " in m and " ms" in m and str(tmp_path / "c.json") in m


def test_unreadable_or_unwritable_file_costs_a_warning_not_the_image(tmp_path, caplog):
    tags, (q, k, v) = _problem()
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    with caplog.at_level("WARNING", logger="seg2any"):
        tuner = BackendTuner(bad)
        MaskedAttention(tags, "auto", contiguous=True, tuner=tuner)(q, k, v, MaskRule(True))
    assert tuner.measurements == 1 and "ignoring the attention choices file" in caplog.text
    assert len(json.loads(bad.read_text())["choices"]) == 1  # rewritten whole

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="seg2any"):
        tuner = BackendTuner(blocker / "choices.json")  # its folder is a file: cannot be written
        att = MaskedAttention(tags, "auto", contiguous=True, tuner=tuner)
        for rule in RULES[:2]:
            assert (att(q, k, v, rule) - reference(q, k, v, tags, rule)).abs().max() < 1e-12
    warnings = [r for r in caplog.records if "cannot write" in r.getMessage()]
    assert len(warnings) == 1 and "SEG2ANY_TUNING_FILE" in warnings[0].getMessage()
    assert tuner.measurements == 2
