"""'Layout from Masks (Seg2Any)' in a real ComfyUI server: a mask batch made by core nodes (two
halves) plus prompt lines becomes a colour map with one colour per half; a prompt count that does
not match the masks stops the run with a message naming both counts."""

from __future__ import annotations

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
