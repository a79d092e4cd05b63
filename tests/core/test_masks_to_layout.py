"""Masks + prompt lines -> colour map + official JSON (the 'Layout from Masks' node's core), checked
against hand-drawn masks and by reading the result back with the official colour reader."""

from __future__ import annotations

import json

import numpy as np
import pytest

from seg2any.errors import LayoutError
from seg2any.layout.layout import layout_from_segmentation
from seg2any.layout.masks_to_layout import RESERVED, colour_map_from_masks, entity_colours, prompt_lines


def boxes(h, w, rects):
    out = np.zeros((len(rects), h, w), np.float32)
    for i, (y0, y1, x0, x1) in enumerate(rects):
        out[i, y0:y1, x0:x1] = 1.0
    return out


def test_prompt_lines_one_per_non_empty_line():
    assert prompt_lines("a cat\n\n  a dog  \r\na tree\n") == ["a cat", "a dog", "a tree"]


def test_disjoint_masks_round_trip_through_the_official_reader():
    m = boxes(32, 48, [(0, 10, 0, 10), (20, 32, 30, 48), (0, 5, 40, 48)])
    rgb, spec = colour_map_from_masks(m, ["a red box", "a big green box", "a thin strip"], " two boxes ")
    assert rgb.shape == (32, 48, 3) and rgb.dtype == np.uint8
    assert spec["caption"] == "two boxes"
    assert [s["text"] for s in spec["segments_info"]] == ["a red box", "a big green box", "a thin strip"]
    lay = layout_from_segmentation(rgb, json.dumps(spec))
    by_prompt = {e.prompt: e.mask for e in lay.entities}
    for i, p in enumerate(["a red box", "a big green box", "a thin strip"]):
        assert np.array_equal(by_prompt[p], m[i] > 0.5), p
    assert (rgb[m.sum(0) == 0] == 0).all()  # background black


def test_overlap_the_smaller_mask_wins():
    # a car box 0..20 x 0..30 and a person 5..15 x 10..14 in front of it (inside the car's box)
    m = boxes(20, 30, [(0, 20, 0, 30), (5, 15, 10, 14)])
    rgb, spec = colour_map_from_masks(m, ["a car", "a person"])
    lay = layout_from_segmentation(rgb, spec)
    area = {e.prompt: e.area for e in lay.entities}
    assert area == {"a person": 10 * 4, "a car": 20 * 30 - 10 * 4}


def test_soft_masks_threshold_at_one_half():
    m = np.zeros((1, 16, 16), np.float32)
    m[0, :, :8] = 0.51
    m[0, :, 8:] = 0.5
    rgb, spec = colour_map_from_masks(m, ["left half"])
    assert (rgb[:, :8] != 0).any(axis=-1).all() and (rgb[:, 8:] == 0).all()


@pytest.mark.parametrize("n_prompts, message", [(1, "2 mask(s) but 1 prompt(s)"), (3, "2 mask(s) but 3 prompt(s)")])
def test_count_mismatch_is_named(n_prompts, message):
    m = boxes(8, 8, [(0, 4, 0, 4), (4, 8, 4, 8)])
    with pytest.raises(LayoutError, match=message.replace("(", r"\(").replace(")", r"\)")):
        colour_map_from_masks(m, ["p"] * n_prompts)


def test_empty_and_hidden_masks_are_errors_naming_them():
    m = boxes(8, 8, [(0, 8, 0, 8), (0, 0, 0, 0)])
    with pytest.raises(LayoutError, match=r"mask 2 \('nothing'\) is empty"):
        colour_map_from_masks(m, ["all", "nothing"])
    same = boxes(8, 8, [(0, 4, 0, 4), (0, 4, 0, 4)])  # equal areas: the earlier mask wins, the later has nothing
    with pytest.raises(LayoutError, match=r"mask 2 \('twin'\) is completely covered"):
        colour_map_from_masks(same, ["first", "twin"])


def test_colours_distinct_and_never_a_background_choice():
    cs = entity_colours(255)
    assert len(set(cs)) == 255 and not set(cs) & RESERVED
