"""What the run would refuse or change, worded once (seg2any/conditioning/problems.py) for the
builder's report and the editor's status line: entities numbered in the user's list order (not the
sorted-colour order the model reads), vanished entities checked at the size the run renders, empty
and unpainted entities, over-long captions, colours that became background. Layouts are built by
hand and the expected token hits are worked out by hand in the comments."""

from __future__ import annotations

import base64
import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from seg2any.conditioning.problems import MAX_BODY_BYTES, answer_request, layout_problems
from seg2any.conditioning.t5_tokens import budget_report, enforce_budget
from seg2any.conditioning.token_request import TokenRequestError
from seg2any.errors import TokenBudgetError
from seg2any.layout.editor_document import PNG_PREFIX
from seg2any.layout.layout import Entity, Layout, entity_label, layout_from_segmentation

LONG = "an extremely ornate and intricately detailed carved wooden chest " * 6  # far over 50 tokens


def words(text: str) -> int:
    """A stand-in token count (words + </s>): the problems take counts, not a tokenizer."""
    return len(text.split()) + 1 if text.strip() else 0


def official_pair():
    """Row 1 (the JSON's first segment) has the larger colour, so sorted order puts it second."""
    m = np.zeros((64, 64, 3), np.uint8)
    m[:, :32] = (200, 0, 0)
    m[:, 32:] = (0, 0, 255)
    spec = {"caption": "", "segments_info": [{"color": [200, 0, 0], "text": LONG.strip()}, {"color": [0, 0, 255], "text": "sky"}]}
    return m, spec


def test_entities_are_numbered_in_the_json_order_not_the_sorted_colour_order():
    m, spec = official_pair()
    lay = layout_from_segmentation(m, spec)
    assert [e.prompt for e in lay.entities] == ["sky", LONG.strip()]  # the model reads sorted colours
    assert [e.label for e in lay.entities] == ["entity 2 (#0000ff) 'sky'", f"entity 1 (#c80000) '{LONG.strip()[:37]}...'"]
    counts = [0] + [words(p) for p in lay.prompts]
    (p,) = layout_problems(lay, counts=counts)
    assert p.kind == "over-long" and p.entity == 0 and p.refused
    assert p.message.startswith("entity 1 (#c80000) 'an extremely") and f"has {words(LONG)} T5 tokens, over 50" in p.message


def test_the_builders_refusal_names_row_1_too():
    m, spec = official_pair()
    lay = layout_from_segmentation(m, spec)
    lines = budget_report(words, "", lay.prompts, [e.label for e in lay.entities])
    with pytest.raises(TokenBudgetError) as err:
        enforce_budget(lines)
    assert "entity 1 (#c80000)" in str(err.value) and "entity 2" not in str(err.value)


def strip_layout(h, w, cols):
    """Entity 1: a vertical strip of columns ``cols``; entity 2: the rest."""
    a = np.zeros((h, w), bool)
    a[:, cols] = True
    ents = (
        Entity("a thin pole", a, (255, 0, 0), entity_label(0, "a thin pole", (255, 0, 0)), 0),
        Entity("a wall", ~a, (0, 255, 0), entity_label(1, "a wall", (0, 255, 0)), 1),
    )
    return Layout("", ents, h, w)


def test_a_17x33_layout_the_demo_renders_at_96x176_raises_no_false_alarm():
    # 17 wide, 33 high: the demo renders it at 96x176 (about 128^2 px, sides multiples of 16), a 6 x 11
    # token grid. Token column centres at 96 px: 8, 24, ...; back in the 17-px layout column
    # floor((8.5) * 17 / 96) = 1, so columns 0..2 hold the first token column's centre: kept.
    lay = strip_layout(33, 17, slice(0, 3))
    assert layout_problems(lay, trained_resolution=128) == []
    # FLUX renders the layout's whole tokens, 16x32: a 2 x 1 grid whose one column centre is the
    # layout's column floor(0.5 * 17 / 1) = 8: the strip at columns 0..2 covers no token centre.
    (p,) = layout_problems(lay)
    assert p.kind == "vanished" and p.entity == 0
    assert p.message == (
        "entity 1 (#ff0000) 'a thin pole' covers no 16x16 token centre at 16x32 (the size the run renders the 17x33 "
        "layout at): its caption will see no image token"
    )


def test_vanished_at_the_demo_size_names_that_size():
    # 256x256 rendered at 128x128, an 8x8 grid: token centres at 128-px rows/columns 16k + 8, which are
    # the layout's 2 (16k + 8) + 1 = 32k + 17. A strip at column 16 misses them, one at 17 does not.
    gone = strip_layout(256, 256, slice(16, 17))
    (p,) = layout_problems(gone, trained_resolution=128)
    assert "covers no 16x16 token centre at 128x128 (the size the run renders the 256x256 layout at)" in p.message
    assert layout_problems(strip_layout(256, 256, slice(17, 18)), trained_resolution=128) == []
    # at its own size (FLUX) the token column centres are 16k + 8 = 8, 24, ...: column 16 misses them
    assert [q.kind for q in layout_problems(gone)] == ["vanished"]
    assert layout_problems(strip_layout(256, 256, slice(24, 25))) == []  # column 24 = 16 * 1 + 8


def test_problems_come_in_row_order_with_empty_and_unpainted_entities():
    h, w = 32, 32
    full = np.ones((h, w), bool)
    ents = (  # stored in another order than the rows, as the sorted-colour reader stores them
        Entity("", full, (0, 0, 9), entity_label(2, "", (0, 0, 9)), 2),
        Entity("a ghost", np.zeros((h, w), bool), (0, 0, 5), entity_label(1, "a ghost", (0, 0, 5)), 1),
        Entity(LONG, full, (0, 0, 7), entity_label(0, LONG, (0, 0, 7)), 0),
    )
    lay = Layout("a scene " * 300, ents, h, w)
    counts = [words(lay.global_prompt)] + [words(p) for p in lay.prompts]
    got = layout_problems(lay, counts=counts)
    assert [(p.kind, p.entity) for p in got] == [
        ("over-long", 0),
        ("unpainted", 1),
        ("empty-prompt", 2),
        ("long-caption", None),
    ]
    assert got[1].message == "entity 2 (#000005) 'a ghost' is not painted anywhere: paint it, hide it or delete it"
    assert got[2].message == "entity 3 (#000009): the prompt is empty"
    assert got[3].message == "the global caption has 601 T5 tokens: the run keeps the first 512"


def test_colours_that_snap_to_background_are_counted_in_pixels():
    lay = strip_layout(32, 32, slice(0, 16))
    (p,) = layout_problems(lay, unlisted=[((1, 1, 1), 600), ((2, 2, 2), 24)])
    assert p.kind == "snapped" and not p.refused
    assert p.message.startswith("2 colours not in the table count as background, 60.9% of the pixels (624 pixels)")


def test_the_builders_note_counts_the_anti_aliased_pixels_of_an_official_example(shared_dir):
    base = os.path.join(shared_dir, "data", "seg2any-examples", "animals")
    with Image.open(base + ".png") as im:
        rgb = np.asarray(im.convert("RGB"))
    with open(base + ".json", encoding="utf-8") as f:
        spec = json.load(f)
    listed = {tuple(s["color"]) for s in spec["segments_info"]}
    flat = [tuple(int(v) for v in px) for px in rgb.reshape(-1, 3)]
    unlisted_px = sum(1 for c in flat if c not in listed)  # counted pixel by pixel, apart from the reader
    (note,) = layout_from_segmentation(rgb, spec).notes
    assert f"of the pixels ({unlisted_px} pixels)" in note


# ---- the editor's request


def doc_text(labels: np.ndarray, entities: list[dict], caption="") -> str:
    cols = [(0, 0, 0, 0)] + [
        (int(e["color"][1:3], 16), int(e["color"][3:5], 16), int(e["color"][5:7], 16), 255) for e in entities
    ]
    buf = io.BytesIO()
    Image.fromarray(np.array(cols, np.uint8)[labels], "RGBA").save(buf, format="PNG")
    h, w = labels.shape
    body = {"version": 1, "width": w, "height": h, "caption": caption, "entities": entities}
    body["map"] = PNG_PREFIX + base64.b64encode(buf.getvalue()).decode()
    return json.dumps(body)


def pole_document(hidden_first=False) -> str:
    labels = np.full((33, 17), 2, np.int16)
    labels[:, 0:3] = 1
    ents = [{"color": "#ff0000", "prompt": LONG, "visible": True}, {"color": "#00ff00", "prompt": "a wall", "visible": True}]
    if hidden_first:
        ents.insert(0, {"color": "#0000ff", "prompt": "hidden", "visible": False})
        labels = labels + 1
    return doc_text(labels, ents)


def test_request_names_rows_and_checks_at_the_models_size():
    flux = answer_request({"document": pole_document(), "model": "flux"}, words)
    assert flux["render_size"] == [16, 32]
    assert [(p["kind"], p["entity"]) for p in flux["problems"]] == [("vanished", 0), ("over-long", 0)]
    assert flux["problems"][0]["message"].startswith("entity 1 (#ff0000) 'an extremely")
    demo = answer_request({"document": pole_document(), "model": "demo"}, words)
    assert demo["render_size"] == [96, 176] and [p["kind"] for p in demo["problems"]] == ["over-long"]
    # a hidden row above still counts: the pole is row 2 in the editor's list
    hidden = answer_request({"document": pole_document(hidden_first=True)}, words)
    assert hidden["problems"][0]["message"].startswith("entity 2 (#ff0000)")


def test_request_reports_an_unreadable_document_in_the_nodes_words():
    got = answer_request({"document": "{}"}, words)
    assert got["problems"] == [
        {
            "kind": "document",
            "message": "layout editor document version None is not supported (expected 1)",
            "entity": None,
            "refused": True,
        }
    ]


@pytest.mark.parametrize(
    "payload, fragment",
    [
        ([], "expected a JSON object"),
        ({"document": 3}, "'document' must be a string"),
        ({"document": "", "path": "/etc/passwd"}, "unknown field(s) ['path']"),
        ({"document": "", "model": "sdxl"}, "'model' must be one of"),
        ({"document": "", "unlisted": [["red", 3]]}, "unlisted[0] must be ['#rrggbb', pixels]"),
        ({"document": "", "unlisted": [["#000001", 1]] * 5000}, "at most 4096"),
    ],
)
def test_bad_requests_are_refused(payload, fragment):
    with pytest.raises(TokenRequestError) as err:
        answer_request(payload, words)
    assert fragment in str(err.value)
    assert MAX_BODY_BYTES > 16 * 1024 * 1024  # a whole document fits the body limit
