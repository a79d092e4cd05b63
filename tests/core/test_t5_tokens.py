import os

import pytest

from seg2any.conditioning.t5_tokens import EOS_ID, T5Tokenizer, budget_report, enforce_budget, fit_to_length
from seg2any.errors import TokenBudgetError


@pytest.fixture(scope="module")
def tok(shared_dir):
    return T5Tokenizer(os.path.join(shared_dir, "data", "t5-v1_1-xxl-tokenizer"))


def test_ids_end_with_eos_and_count_words(tok):
    ids = tok.ids("a red striped triangle")
    assert ids[-1] == EOS_ID and EOS_ID not in ids[:-1]
    assert 5 <= len(ids) <= 8
    assert tok.ids("") == [EOS_ID]


def test_fit_to_length_truncates_keeping_eos_and_pads_with_zero():
    assert fit_to_length([5, 6, 7, 1], 6) == ([5, 6, 7, 1, 0, 0], 4)
    assert fit_to_length([5, 6, 7, 8, 9, 1], 4) == ([5, 6, 7, 1], 4)
    assert fit_to_length([1], 3) == ([1, 0, 0], 1)


def test_budget_refuses_long_entities_by_name(tok):
    long = " ".join(["ornate"] * 60)
    lines = budget_report(lambda s: len(tok.ids(s)), "scene", ["a cat", long], ["entity 1 'a cat'", "entity 2 'ornate...'"])
    assert [ln.index for ln in lines] == [-1, 0, 1]
    assert not lines[1].over and lines[2].over
    assert "over the limit" in str(lines[2])
    with pytest.raises(TokenBudgetError, match="entity 2 'ornate...' has"):
        enforce_budget(lines)
    enforce_budget(lines[:2])  # a short layout passes
