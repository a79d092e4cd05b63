"""Hand-computed tiny layouts for every attention rule, and agreement with the official dense
algorithm (float64, :mod:`tests.support.reference_mask`)."""

import math

import numpy as np
import pytest
import torch

from seg2any.attention.rules import MaskRule, SequencePlan, dense_mask, isolation_layers, row_layout
from seg2any.errors import ModelMismatchError
from tests.support.reference_mask import official_bias

# Tokens: 0-1 global text, 2 entity A text, 3 entity B text, 4-7 image (2x2 grid), 8-9 condition.
# A covers image tokens 0,1 (row 0); B covers 1,3 (column 1); image token 2 is background.
A = np.array([[1, 1], [0, 0]], bool)
B = np.array([[0, 1], [0, 1]], bool)
MASKS = np.stack([A, B])

BASE = [
    "1100111100",
    "1100111100",
    "0010110000",
    "0001010100",
    "1110111111",
    "1111111111",
    "1100111111",
    "1101111111",
    "0000111111",
    "0000111111",
]
HARD = [
    "1100111100",
    "1100111100",
    "0010110000",
    "0001010100",
    "0010110011",  # fg (A): no global text, only A's image tokens (incl. the A+B overlap)
    "0011110111",  # overlap token: A's and B's captions and image tokens, not background
    "1100111111",  # background sees every image token and the global text
    "0001010111",
    "0000111111",
    "0000111111",
]


def _bits(rows):
    return torch.tensor([[c == "1" for c in r] for r in rows])


def _tags(mode="hard", masks=MASKS, lens=(2, 1, 1), n_cond=2):
    rl = row_layout(lens, masks, (2, 2), n_cond, mode)
    return SequencePlan.build([rl]).tags()


def test_base_rules_by_hand():
    m = dense_mask(_tags(), MaskRule(isolate=False))[0, 0]
    assert torch.equal(m, _bits(BASE))


def test_hard_rules_by_hand():
    m = dense_mask(_tags(), MaskRule(isolate=True))[0, 0]
    assert torch.equal(m, _bits(HARD))


def test_alpha_bias_only_on_image_condition_pairs():
    la = math.log(0.25)
    m = dense_mask(_tags(), MaskRule(isolate=False, log_alpha=la), dtype=torch.float64)[0, 0]
    allowed = _bits(BASE)
    assert torch.equal(torch.isfinite(m), allowed)
    img, cond = slice(4, 8), slice(8, 10)
    assert torch.all(m[img, cond] == la) and torch.all(m[cond, img] == la)
    assert torch.all(m[cond, cond] == 0) and torch.all(m[img, img] == 0)
    assert torch.all(m[0:2, img] == 0)


def test_place_mode_bias_is_log_area_fraction():
    masks = np.zeros((1, 4, 4), bool)
    masks[0, :2, :1] = True  # half of token 0
    masks[0, 2:, 2:] = True  # all of token 3
    t = _tags("place", masks, (1, 1), 0)
    m = dense_mask(t, MaskRule(isolate=False, place=True), dtype=torch.float64)[0, 0]
    ent, img = 1, slice(2, 6)
    assert m[ent, img].tolist() == [math.log(0.5), -math.inf, -math.inf, 0.0]
    assert m[img, ent].tolist() == [math.log(0.5), -math.inf, -math.inf, 0.0]


def test_padding_is_isolated_in_a_batch():
    r0 = row_layout((2, 1, 1), MASKS, (2, 2), 2, "hard")
    r1 = row_layout((1, 1, 1), MASKS, (2, 2), 1, "hard")
    plan = SequencePlan.build([r0, r1])
    assert (plan.text_len, plan.cond_len, plan.length) == (4, 2, 10)
    tags = plan.tags()
    for rule in (MaskRule(False), MaskRule(True)):
        m = dense_mask(tags, rule)[1, 0]
        pads = [3, 9]  # text pad after row 1's 3 text tokens, condition pad at the end
        for p in pads:
            assert m[p].nonzero().flatten().tolist() == [p]  # a pad sees only itself
            others = [i for i in range(10) if i != p]
            assert not m[others, p].any()  # nobody sees a pad
        # the row itself is unchanged apart from the inserted pads
        keep = [0, 1, 2, 4, 5, 6, 7, 8]
        ref = dense_mask(SequencePlan.build([r1]).tags(), rule)[0, 0]
        assert torch.equal(m[keep][:, keep], ref)


def test_no_row_is_fully_masked():
    m = dense_mask(_tags(), MaskRule(isolate=True))[0, 0]
    assert m.any(dim=1).all()


@pytest.mark.parametrize("mode", ["base", "hard", "place"])
def test_matches_official_dense_algorithm(mode):
    rng = np.random.default_rng(3)
    h, w = 6, 5
    masks = rng.random((4, 48, 40)) < 0.3
    masks[1, 10:30, 5:25] = True
    lens = (7, 3, 5, 2, 4)
    rl = row_layout(lens, masks, (h, w), 9, mode)
    tags = SequencePlan.build([rl]).tags()
    la = math.log(0.6)
    base, hard = official_bias(list(lens), masks, (h, w), 9, alpha=0.6, mode=mode)
    got = dense_mask(tags, MaskRule(False, la, mode == "place"), dtype=torch.float64)[0, 0]
    assert torch.equal(got, base)
    if mode == "hard":
        got = dense_mask(tags, MaskRule(True, la), dtype=torch.float64)[0, 0]
        assert torch.equal(got, hard)


def test_entity_reordering_permutes_exactly():
    rng = np.random.default_rng(0)
    masks = rng.random((3, 8, 8)) < 0.4
    rl = row_layout((3, 2, 2, 2), masks, (4, 4), 5, "hard")
    plain = SequencePlan.build([rl])
    perm = SequencePlan.build([rl], reorder=True)
    p = perm.perm[0]
    T = plain.text_len
    order = np.concatenate([np.arange(T), T + p, np.arange(T + 16, plain.length)])
    for rule in (MaskRule(False), MaskRule(True)):
        a = dense_mask(plain.tags(), rule)[0, 0]
        b = dense_mask(perm.tags(), rule)[0, 0]
        assert torch.equal(b, a[order][:, order])
    groups = rl.token_group[p]
    assert np.all(np.diff(groups) >= 0)  # each membership set is contiguous


def test_bucketed_plan_pads_with_invisible_tokens():
    rl = row_layout((3, 2), MASKS[:1], (2, 2), 3, "base")
    plan = SequencePlan.build([rl], bucket=16)
    assert plan.length == 16 and plan.cond_len == 16 - 5 - 4
    m = dense_mask(plan.tags(), MaskRule(False))[0, 0]
    assert not m[:12, 12:].any()


def test_isolation_layer_ranges():
    assert isolation_layers("auto", 19, 38) == (19, 37)  # the official default
    assert isolation_layers("auto", 2, 4) == (2, 3)
    assert isolation_layers("auto", 1, 1) == (1, 1)
    assert isolation_layers("none", 19, 38) is None
    assert isolation_layers("5-9", 19, 38) == (5, 9)
    with pytest.raises(ModelMismatchError, match="outside"):
        isolation_layers("19-60", 19, 38)
    with pytest.raises(ModelMismatchError, match="e.g."):
        isolation_layers("middle", 19, 38)
