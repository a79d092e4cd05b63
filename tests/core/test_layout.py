import json
import os

import numpy as np
import pytest
from PIL import Image

from seg2any.errors import LayoutError
from seg2any.layout.layout import (
    as_rgb_uint8,
    layout_from_masks,
    layout_from_segmentation,
    parse_segment_spec,
)


def _example(shared_dir, stem):
    d = os.path.join(shared_dir, "data", "seg2any-examples")
    img = np.array(Image.open(os.path.join(d, stem + ".png")))
    with open(os.path.join(d, stem + ".json")) as f:
        spec = json.load(f)
    return img, spec


# ----------------------------------------------------------------------------------------------
# the official example files


def test_animals_example_parses_into_three_entities(shared_dir):
    img, spec = _example(shared_dir, "animals")
    assert img.shape[2] == 4  # shipped as (opaque) RGBA, like upstream reads it
    lay = layout_from_segmentation(img, spec)
    assert len(lay.entities) == 3
    assert lay.global_prompt == spec["caption"]
    assert lay.seed == spec["seed"]
    # entity order is the sorted RGB order of the colours, not the JSON order
    assert [e.color for e in lay.entities] == [(0, 128, 0), (128, 0, 0), (128, 128, 0)]
    text = {tuple(s["color"]): s["text"] for s in spec["segments_info"]}
    for e in lay.entities:
        assert e.prompt == text[e.color]
        expected = np.all(img[..., :3] == np.array(e.color, dtype=np.uint8), axis=-1)
        assert np.array_equal(e.mask, expected)
    # black background is not listed: reported, not silently dropped
    assert any("[0, 0, 0]" in n for n in lay.notes)


def test_badges_example_has_twenty_distinct_entities(shared_dir):
    img, spec = _example(shared_dir, "20_circular_badges")
    lay = layout_from_segmentation(img, spec)
    assert len(lay.entities) == 20
    colors = [e.color for e in lay.entities]
    assert len(set(colors)) == 20
    assert colors == sorted(colors)
    # the two close blues stay separate entities with disjoint masks
    a = next(e for e in lay.entities if e.color == (140, 155, 240))
    b = next(e for e in lay.entities if e.color == (140, 161, 240))
    assert a.area > 0 and b.area > 0 and not np.any(a.mask & b.mask)
    # black is a listed entity here, white is the unlisted background
    assert (0, 0, 0) in colors
    masks = lay.masks
    assert masks.sum(axis=0).max() == 1  # one colour per pixel: no overlaps
    white = np.all(img == 255, axis=-1)
    assert np.array_equal(~masks.any(axis=0), white)


# ----------------------------------------------------------------------------------------------
# colour path: formats and errors


def _seg():
    img = np.zeros((8, 8, 3), dtype=np.uint8)
    img[:4, :4] = (255, 0, 0)
    img[4:, 4:] = (0, 0, 255)
    img[4:, :4] = (0, 0, 254)  # one step from blue
    return img


def test_exact_colour_matching_and_line_format():
    lay = layout_from_segmentation(
        _seg(), "#0000ff: blue thing\n0,0,254: almost blue\n[255, 0, 0]: red thing", global_prompt="scene"
    )
    assert lay.global_prompt == "scene"
    assert [e.color for e in lay.entities] == [(0, 0, 254), (0, 0, 255), (255, 0, 0)]
    assert [e.area for e in lay.entities] == [16, 16, 16]
    assert lay.notes == ("1 colour not in the table counts as background: [0, 0, 0] 25.0% of the pixels (16 pixels)",)


def test_float_image_from_comfyui_round_trips_exactly():
    img = _seg()
    f = img.astype(np.float32) / 255.0
    assert np.array_equal(as_rgb_uint8(f[None]), img)


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ('{"segments_info": [{"color": [255,0,0], "text": "a"}', "malformed"),
        ('{"caption": "x"}', "segments_info"),
        ('{"segments_info": [{"color": [300,0,0], "text": "a"}]}', "segments_info[0]"),
        ('{"segments_info": [{"color": [255,0,0], "text": "  "}]}', "[255, 0, 0]"),
        ('{"segments_info": [{"color": [255,0,0], "text": "a"}, {"color": "#ff0000", "text": "b"}]}', "listed twice"),
        ("#ff0000 a red car", "line 1"),
    ],
)
def test_bad_tables_name_the_culprit(spec, fragment):
    with pytest.raises(LayoutError, match=None) as exc:
        layout_from_segmentation(_seg(), spec)
    assert fragment in str(exc.value)


def test_listed_colour_absent_from_image_names_the_nearest_listed_entity_not_the_background():
    # [0, 0, 3] is nearest to the unlisted black background (distance 3) and to the unlisted
    # [0, 0, 254]; the hint must name the nearest entity the table lists: blue, with its prompt
    table = "#0000ff: blue thing\n[255, 0, 0]: red thing\n[0, 0, 3]: ghost"
    with pytest.raises(LayoutError) as exc:
        layout_from_segmentation(_seg(), table)
    msg = str(exc.value)
    assert "[0, 0, 3] ('ghost') does not occur" in msg
    assert "nearest listed entity colour in the image is [0, 0, 255] ('blue thing', 16 pixels)" in msg
    assert "[0, 0, 0]" not in msg and "[0, 0, 254]" not in msg


def test_no_listed_colour_present_says_so_and_shows_the_main_colours():
    with pytest.raises(LayoutError) as exc:
        layout_from_segmentation(
            _seg(), '{"segments_info": [{"color": [0,0,253], "text": "ghost"}, {"color": [9,9,9], "text": "x"}]}'
        )
    msg = str(exc.value)
    assert "[0, 0, 253] ('ghost') does not occur" in msg and "neither do 1 other listed colour(s): [9, 9, 9]" in msg
    assert "none of the listed colours occurs" in msg and "[0, 0, 0] 25.0%" in msg


def test_anti_aliased_map_gets_one_short_summary_of_its_unlisted_colours():
    # two flat entities on black, with a one-pixel blended seam of 60 distinct colours
    img = np.zeros((100, 100, 3), np.uint8)
    img[:, :50] = (200, 0, 0)
    img[:, 51:] = (0, 0, 200)
    img[:60, 50] = np.stack([np.arange(60) + 100, np.zeros(60), 200 - np.arange(60)], 1).astype(np.uint8)
    img[60:, 50] = 0  # black: the background, the largest unlisted colour
    img[90:, 90:] = 0
    lay = layout_from_segmentation(img, "#c80000: red\n#0000c8: blue")
    (note,) = lay.notes
    n_black = int(np.all(img == 0, axis=-1).sum())
    assert note.startswith(
        f"61 colours not in the table count as background, {100 * (n_black + 60) / 1e4:.1f}% of the pixels ({n_black + 60} pixels); "
    )
    assert f"largest [0, 0, 0] {100 * n_black / 1e4:.1f}%, " in note
    assert "the other 58 cover 0.6%" in note
    assert "0.0%" not in note and note.count("[") == 3  # three colours shown, not 61


def test_non_rgb_images_are_refused():
    with pytest.raises(LayoutError, match="single-channel"):
        layout_from_segmentation(np.zeros((8, 8), np.uint8), "#000000: x")
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 3] = 128
    with pytest.raises(LayoutError, match="transparent"):
        layout_from_segmentation(rgba, "#000000: x")
    with pytest.raises(LayoutError, match="2 channels"):
        layout_from_segmentation(np.zeros((8, 8, 2), np.uint8), "#000000: x")


def test_parse_official_json_fields():
    spec = parse_segment_spec({"caption": "c", "seed": 7, "segments_info": [{"color": [1, 2, 3], "text": "t"}]})
    assert spec.caption == "c" and spec.seed == 7 and spec.segments == (((1, 2, 3), "t"),)
    with pytest.raises(LayoutError, match="seed"):
        parse_segment_spec({"seed": "x", "segments_info": []})


# ----------------------------------------------------------------------------------------------
# mask path


def test_layout_from_masks_binarises_and_keeps_order():
    a = np.zeros((4, 6), np.float32)
    a[:2] = 0.9
    b = np.zeros((4, 6), np.uint8)
    b[2:, 3:] = 255
    lay = layout_from_masks("g", [a, b], ["first", "second"])
    assert (lay.height, lay.width) == (4, 6)
    assert lay.prompts == ["first", "second"]
    assert lay.entities[0].area == 12 and lay.entities[1].area == 6


@pytest.mark.parametrize(
    "masks, prompts, size, fragment",
    [
        ([np.ones((4, 4)), np.ones((4, 5))], ["a", "b"], None, "entity 2 'b': mask is 5x4 but entity 1 'a' is 4x4"),
        ([np.ones((4, 4))], ["a"], (8, 8), "mask is 4x4 but the image is 8x8"),
        ([np.zeros((4, 4))], ["a"], None, "entity 1 'a': the mask is empty"),
        ([np.ones((4, 4))], [" "], None, "entity 1: the prompt is empty"),
        ([np.ones((4, 4))], ["a", "b"], None, "1 masks but 2 prompts"),
        ([np.ones((2, 4, 4))], ["a"], None, "must be 2-D"),
    ],
)
def test_bad_masks_name_the_culprit(masks, prompts, size, fragment):
    with pytest.raises(LayoutError) as exc:
        layout_from_masks("g", masks, prompts, image_size=size)
    assert fragment in str(exc.value)


def test_with_prompts_keeps_masks():
    lay = layout_from_masks("g", [np.ones((2, 2)), np.eye(2)], ["a", "b"])
    neg = lay.with_prompts("bad", ["bad", "bad"])
    assert neg.global_prompt == "bad" and neg.prompts == ["bad", "bad"]
    assert all(np.array_equal(x.mask, y.mask) for x, y in zip(lay.entities, neg.entities))
