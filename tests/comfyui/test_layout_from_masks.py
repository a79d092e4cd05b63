"""'Layout from Masks (Seg2Any)' in a real ComfyUI server: a mask batch made by core nodes (two
halves) plus prompt lines becomes a colour map with one colour per half; a prompt count that does
not match the masks stops the run with a message naming both counts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.conftest import COMFYUI_PATH
from tests.support.server import ComfyServer, clean


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("comfy-masks"))
    s = ComfyServer(COMFYUI_PATH, base).start()
    yield s
    s.stop()
    clean(base)


def halves_prompt(prompts: str) -> dict:
    """Core nodes only: a 64 x 32 mask batch [left half, right half], then the pack's node, saved."""
    return {
        "1": {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": 64, "height": 32}},
        "2": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 32, "height": 32}},
        "3": {
            "class_type": "MaskComposite",
            "inputs": {"destination": ["1", 0], "source": ["2", 0], "x": 0, "y": 0, "operation": "add"},
        },
        "4": {"class_type": "InvertMask", "inputs": {"mask": ["3", 0]}},
        "5": {"class_type": "MaskToImage", "inputs": {"mask": ["3", 0]}},
        "6": {"class_type": "MaskToImage", "inputs": {"mask": ["4", 0]}},
        "7": {"class_type": "ImageBatch", "inputs": {"image1": ["5", 0], "image2": ["6", 0]}},
        "8": {"class_type": "ImageToMask", "inputs": {"image": ["7", 0], "channel": "red"}},
        "9": {
            "class_type": "Seg2AnyLayoutFromMasks",
            "inputs": {"masks": ["8", 0], "prompts": prompts, "caption": "two halves"},
        },
        "10": {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": "masks_layout"}},
    }


def test_node_is_listed_with_the_layout_outputs(server):
    info = server.object_info()["Seg2AnyLayoutFromMasks"]
    assert info["display_name"] == "Layout from Masks (Seg2Any)"
    assert info["output"] == ["IMAGE", "STRING", "STRING"]  # as 'Load Seg2Any Layout' and the editor


def test_two_core_masks_become_two_coloured_halves(server):
    r = server.run(halves_prompt("a red left half\n\na blue right half\n"))
    assert r["status"] == "success", r
    (img,) = r["outputs"]["10"]["images"]
    with Image.open(server.output_path(img)) as im:
        rgb = np.asarray(im.convert("RGB"))
    assert rgb.shape == (32, 64, 3)
    left, right = rgb[:, :32].reshape(-1, 3), rgb[:, 32:].reshape(-1, 3)
    assert (left == left[0]).all() and (right == right[0]).all()  # one colour per half
    assert tuple(left[0]) != tuple(right[0]) and left[0].any() and right[0].any()  # distinct, not background


def test_prompt_count_mismatch_names_both_counts(server):
    r = server.run(halves_prompt("only one prompt"))
    assert r["status"] == "error"
    text = str(r["errors"])
    assert "2 mask(s) but 1 prompt(s)" in text, text


# Core bounding boxes (ComfyUI 0.33+: the BOUNDING_BOX type and the Create Bounding Boxes node)


def needs_boxes(server):
    info = server.object_info()
    if "CreateBoundingBoxes" not in info:
        pytest.skip(
            "this ComfyUI has no BOUNDING_BOX type / CreateBoundingBoxes node (ComfyUI 0.33.0 has them, 0.8.0 and older do not)"
        )
    return info


def boxes_prompt(editor_state: list, box_prompts: str, width=64, height=32, with_masks=False) -> dict:
    """Create Bounding Boxes (its canvas state given as the frontend stores it) -> the pack's node ->
    SaveImage + PreviewAny of the segments JSON."""
    graph = {
        "b": {
            "class_type": "CreateBoundingBoxes",
            # its canvas is at least 64 px a side; the boxes are pixels of that grid, the layout is width x height;
            # a list widget value travels wrapped in {"__value__": ...}, as the frontend sends it
            "inputs": {"width": 64, "height": 64, "editor_state": {"__value__": editor_state}},
        },
        "9": {
            "class_type": "Seg2AnyLayoutFromMasks",
            "inputs": {
                "prompts": "",
                "caption": "boxes",
                "bboxes": ["b", 1],
                "box_prompts": box_prompts,
                "width": width,
                "height": height,
            },
        },
        "10": {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": "boxes_layout"}},
        "11": {"class_type": "PreviewAny", "inputs": {"source": ["9", 1]}},
    }
    if with_masks:
        halves = halves_prompt("")
        graph.update({k: v for k, v in halves.items() if k in "12345678"})
        graph["9"]["inputs"].update({"masks": ["8", 0], "prompts": "a left half\na right half"})
    return graph


def run_boxes(server, graph):
    r = server.run(graph)
    assert r["status"] == "success", (r["errors"], server.tail())
    (img,) = r["outputs"]["10"]["images"]
    with Image.open(server.output_path(img)) as im:
        rgb = np.asarray(im.convert("RGB"))
    spec = json.loads("".join(r["outputs"]["11"]["text"]))
    return rgb, spec


def test_node_offers_boxes_where_comfyui_has_them(server):
    info = server.object_info()
    opt = info["Seg2AnyLayoutFromMasks"]["input"].get("optional", {})
    if "CreateBoundingBoxes" in info:
        assert opt["bboxes"][0] == "BOUNDING_BOX" and "box_prompts" in opt
        assert info["CreateBoundingBoxes"]["output"][1] == "BOUNDING_BOX"  # the type the node accepts
    else:  # older ComfyUI: the pack loads, masks only
        assert "bboxes" not in opt and "masks" in opt


def test_created_boxes_become_entities_with_hand_computed_pixels(server):
    needs_boxes(server)
    # on a 64 x 32 canvas: a box at (4, 2) 16 x 8 and one at (40, 10) 20 x 20, in pixels
    state = [{"x": 4, "y": 2, "width": 16, "height": 8}, {"x": 40, "y": 10, "width": 20, "height": 20}]
    rgb, spec = run_boxes(server, boxes_prompt(state, "a red kite\na green door"))
    assert [s["text"] for s in spec["segments_info"]] == ["a red kite", "a green door"]
    colour = {s["text"]: tuple(s["color"]) for s in spec["segments_info"]}
    want = np.zeros((32, 64, 3), np.uint8)
    want[2:10, 4:20] = colour["a red kite"]
    want[10:30, 40:60] = colour["a green door"]
    assert np.array_equal(rgb, want)


def test_boxes_go_after_masks_and_the_smaller_wins(server):
    needs_boxes(server)
    rgb, spec = run_boxes(server, boxes_prompt([{"x": 28, "y": 8, "width": 8, "height": 8}], "a round window", with_masks=True))
    assert [s["text"] for s in spec["segments_info"]] == ["a left half", "a right half", "a round window"]
    colour = {s["text"]: tuple(s["color"]) for s in spec["segments_info"]}
    assert tuple(rgb[0, 0]) == colour["a left half"] and tuple(rgb[0, 63]) == colour["a right half"]
    assert (rgb[8:16, 28:36] == colour["a round window"]).all()
    assert tuple(rgb[7, 28]) == colour["a left half"] and tuple(rgb[16, 35]) == colour["a right half"]


@pytest.mark.parametrize(
    "state, prompts, message",
    [
        ([{"x": 0, "y": 0, "width": 8, "height": 8}] * 2, "just one", "2 box(es) but 1 box prompt(s)"),
        (
            [{"x": 60, "y": 0, "width": 8, "height": 8}],
            "a dog",
            "box 1 ('a dog') (x 60, y 0, width 8, height 8) reaches outside the 64x32 image",
        ),
        (
            [{"x": 0, "y": 0, "width": 8, "height": 8}, {"x": 10, "y": 10, "width": 0, "height": 8}],
            "ok\na line",
            "box 2 ('a line') (x 10, y 10, width 0, height 8) has zero area",
        ),
    ],
)
def test_bad_boxes_stop_the_run_naming_the_box(server, state, prompts, message):
    needs_boxes(server)
    r = server.run(boxes_prompt(state, prompts))
    assert r["status"] == "error"
    assert message in str(r["errors"]), r["errors"]
