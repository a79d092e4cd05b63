"""Masks + prompt lines -> colour map + official JSON (the 'Layout from Masks' node's core), checked
against hand-drawn masks and by reading the result back with the official colour reader."""

from __future__ import annotations

import json

import numpy as np
import pytest

from seg2any.errors import LayoutError
from seg2any.layout.layout import layout_from_segmentation
from seg2any.layout.masks_to_layout import RESERVED, box_list, colour_map_from_masks, entity_colours, prompt_lines


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


# ComfyUI BOUNDING_BOX values (pixel {x, y, width, height}) as entities, after the masks


def test_boxes_alone_give_exactly_their_pixels():
    # hand-computed: a 4x3 box at (2, 1) and a 1x1 box at (9, 7) on a 10x8 image
    rgb, spec = colour_map_from_masks(
        None,
        [],
        "boxes",
        boxes=[{"x": 2, "y": 1, "width": 4, "height": 3}, {"x": 9, "y": 7, "width": 1, "height": 1}],
        box_prompts=["a wide box", "one pixel"],
        size=(8, 10),
    )
    want_a = np.zeros((8, 10), bool)
    want_a[1:4, 2:6] = True
    want_b = np.zeros((8, 10), bool)
    want_b[7, 9] = True
    lay = layout_from_segmentation(rgb, spec)
    got = {e.prompt: e.mask for e in lay.entities}
    assert np.array_equal(got["a wide box"], want_a) and np.array_equal(got["one pixel"], want_b)
    assert [s["text"] for s in spec["segments_info"]] == ["a wide box", "one pixel"]


def test_float_boxes_take_the_pixels_whose_centres_they_hold():
    # x 1.4 .. 3.6 holds the centres 1.5, 2.5, 3.5 -> columns 1..3; y 0 .. 0.6 holds 0.5 -> row 0
    rgb, spec = colour_map_from_masks(
        None, [], boxes=[{"x": 1.4, "y": 0.0, "width": 2.2, "height": 0.6}], box_prompts=["a"], size=(4, 6)
    )
    want = np.zeros((4, 6), bool)
    want[0, 1:4] = True
    assert np.array_equal((rgb != 0).any(-1), want)


def test_masks_then_boxes_in_one_list_the_smaller_in_front():
    m = boxes(10, 10, [(0, 10, 0, 10)])  # the whole picture
    rgb, spec = colour_map_from_masks(m, ["a field"], boxes=[{"x": 3, "y": 3, "width": 2, "height": 5}], box_prompts=["a post"])
    assert [s["text"] for s in spec["segments_info"]] == ["a field", "a post"]
    area = {e.prompt: e.area for e in layout_from_segmentation(rgb, spec).entities}
    assert area == {"a post": 10, "a field": 90}


@pytest.mark.parametrize(
    "value",
    [
        {"x": 1, "y": 1, "width": 2, "height": 2},  # PrimitiveBoundingBox: one dict
        [{"x": 1, "y": 1, "width": 2, "height": 2}],  # a flat list
        [[{"x": 1, "y": 1, "width": 2, "height": 2}]],  # CreateBoundingBoxes / RT-DETR: one list per image
        [[], [{"x": 1, "y": 1, "width": 2, "height": 2}]],  # a batch where only one image has boxes
    ],
)
def test_every_shape_of_comfyui_bounding_boxes_is_read(value):
    assert box_list(value) == [{"x": 1, "y": 1, "width": 2, "height": 2}]


BAD_BOXES = {
    "count": ([{"x": 0, "y": 0, "width": 2, "height": 2}] * 2, ["only one"], "2 box(es) but 1 box prompt(s)"),
    "outside-right": (
        [{"x": 8, "y": 0, "width": 3, "height": 2}],
        ["a dog"],
        "box 1 ('a dog') (x 8, y 0, width 3, height 2) reaches outside the 10x8 image",
    ),
    "outside-top": ([{"x": 0, "y": -1, "width": 3, "height": 2}], ["a"], "reaches outside the 10x8 image"),
    "zero-area": (
        [{"x": 0, "y": 0, "width": 2, "height": 2}, {"x": 4, "y": 4, "width": 0, "height": 3}],
        ["ok", "a line"],
        "box 2 ('a line') (x 4, y 4, width 0, height 3) has zero area",
    ),
    "no-centre": (
        [{"x": 1.6, "y": 1, "width": 0.3, "height": 2}],
        ["a sliver"],
        "box 1 ('a sliver') (x 1.6, y 1, width 0.3, height 2) covers no pixel centre",
    ),
    "not-a-number": ([{"x": "1", "y": 0, "width": 2, "height": 2}], ["a"], "box 1 ('a'): 'x' must be a number"),
    "empty-prompt": ([{"x": 0, "y": 0, "width": 2, "height": 2}], [" "], "box 1 (''): the prompt is empty"),
}


@pytest.mark.parametrize("name", list(BAD_BOXES))
def test_bad_boxes_are_errors_naming_the_box(name):
    bxs, prompts, message = BAD_BOXES[name]
    with pytest.raises(LayoutError) as err:
        colour_map_from_masks(None, [], boxes=bxs, box_prompts=prompts, size=(8, 10))
    assert message in str(err.value)


def test_boxes_of_several_images_are_refused():
    with pytest.raises(LayoutError, match="boxes for 2 images"):
        box_list([[{"x": 0, "y": 0, "width": 1, "height": 1}], [{"x": 0, "y": 0, "width": 1, "height": 1}]])
