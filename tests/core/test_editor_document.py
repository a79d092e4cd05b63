"""The Layout Editor's stored document: round trip, the official outputs, bounds and messages that
name the bad entity, colour or size; and the token-count request the editor sends."""

from __future__ import annotations

import base64
import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from seg2any.conditioning.t5_tokens import T5Tokenizer
from seg2any.conditioning.token_request import MAX_TEXT_CHARS, MAX_TEXTS, TokenRequestError, count_tokens
from seg2any.errors import LayoutError
from seg2any.layout.editor_document import (
    MAX_ENTITIES,
    PNG_PREFIX,
    DocEntity,
    EditorDocument,
    document_from_files,
    document_from_official,
    encode_document,
    official_outputs,
    parse_document,
)
from seg2any.layout.layout import layout_from_segmentation
from tests.conftest import ROOT

RED, GREEN, BLUE = (255, 0, 0), (0, 200, 0), (0, 0, 255)


def png_url(arr: np.ndarray, mode="RGB") -> str:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, format="PNG")
    return PNG_PREFIX + base64.b64encode(buf.getvalue()).decode()


def three_box_map(h=32, w=48) -> np.ndarray:
    m = np.zeros((h, w, 3), np.uint8)
    m[2:10, 3:20] = RED
    m[12:30, 5:15] = GREEN
    m[4:28, 30:46] = BLUE
    return m


def doc_json(m=None, entities=None, **over) -> str:
    m = three_box_map() if m is None else m
    body = {
        "version": 1,
        "width": m.shape[1],
        "height": m.shape[0],
        "caption": "three boxes",
        "entities": entities
        if entities is not None
        else [
            {"color": "#ff0000", "prompt": "a red box", "visible": True},
            {"color": "#00c800", "prompt": "a green box", "visible": True},
            {"color": "#0000ff", "prompt": "a blue box", "visible": True},
        ],
        "map": png_url(m),
    }
    body.update(over)
    return json.dumps(body)


def test_outputs_are_the_official_pair_and_build_the_same_layout():
    m = three_box_map()
    rgb, segments, caption = official_outputs(parse_document(doc_json(m)))
    assert np.array_equal(rgb, m) and caption == "three boxes"
    spec = json.loads(segments)
    assert spec["segments_info"] == [
        {"color": [255, 0, 0], "text": "a red box"},
        {"color": [0, 200, 0], "text": "a green box"},
        {"color": [0, 0, 255], "text": "a blue box"},
    ]
    lay = layout_from_segmentation(rgb, segments)
    by_prompt = {e.prompt: e.mask for e in lay.entities}
    assert by_prompt["a red box"].sum() == 8 * 17 and by_prompt["a green box"][12:30, 5:15].all()
    assert by_prompt["a blue box"].sum() == 24 * 16 and lay.global_prompt == "three boxes"


def test_hidden_entity_is_left_out_and_its_pixels_become_background():
    ents = [
        {"color": "#ff0000", "prompt": "a red box"},
        {"color": "#00c800", "prompt": "a green box", "visible": False},
        {"color": "#0000ff", "prompt": "a blue box"},
    ]
    rgb, segments, _ = official_outputs(parse_document(doc_json(entities=ents)))
    assert [s["text"] for s in json.loads(segments)["segments_info"]] == ["a red box", "a blue box"]
    assert (rgb[12:30, 5:15] == 0).all() and (rgb[2:10, 3:20] == RED).all()


def test_encode_parse_round_trip_is_exact_and_compact():
    labels = np.zeros((512, 512), np.int16)
    labels[10:200, 20:300], labels[250:500, 100:400], labels[300:320, 5:500] = 1, 2, 3
    doc = EditorDocument(512, 512, "c", (DocEntity(RED, "r"), DocEntity(GREEN, "g", False), DocEntity(BLUE, "b")), labels)
    text = encode_document(doc)
    back = parse_document(text)
    assert np.array_equal(back.labels, labels) and back.entities == doc.entities and back.caption == "c"
    assert len(text) < 4000  # painted shapes compress: a raw 512x512 map would be 786432 bytes


def test_official_example_imports_with_unlisted_colours_as_background(shared_dir):
    folder = os.path.join(shared_dir, "data", "seg2any-examples")
    text = document_from_files(os.path.join(folder, "animals.png"), os.path.join(folder, "animals.json"))
    doc = parse_document(text)
    spec = json.load(open(os.path.join(folder, "animals.json")))
    assert [list(e.color) for e in doc.entities] == [s["color"] for s in spec["segments_info"]]
    rgb, segments, caption = official_outputs(doc)
    official = np.asarray(Image.open(os.path.join(folder, "animals.png")).convert("RGB"))
    want = layout_from_segmentation(official, spec)
    got = layout_from_segmentation(rgb, segments)
    assert [e.prompt for e in got.entities] == [e.prompt for e in want.entities]
    assert all(np.array_equal(a.mask, b.mask) for a, b in zip(got.entities, want.entities))
    assert caption == spec["caption"]


def test_the_shipped_demo_layout_round_trips():
    lay = os.path.join(ROOT, "example_workflows", "layouts")
    doc = parse_document(document_from_files(os.path.join(lay, "demo_shapes.png"), os.path.join(lay, "demo_shapes.json")))
    assert (doc.width, doc.height) == (128, 128) and len(doc.entities) == 4


def test_transparent_pixels_count_as_unpainted():
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[:8, :, :3] = RED
    rgba[:8, :, 3] = 255
    rgba[8:, :, :3] = GREEN  # colour under zero alpha: not painted
    text = json.dumps(
        {"version": 1, "width": 16, "height": 16, "entities": [{"color": "#ff0000", "prompt": "r"}], "map": png_url(rgba, "RGBA")}
    )
    rgb, _, _ = official_outputs(parse_document(text))
    assert (rgb[:8] == RED).all() and (rgb[8:] == 0).all()


BAD = {
    "empty": ("", "the layout editor is empty"),
    "not-json": ("{oops", "not valid JSON"),
    "version": (doc_json(version=2), "version 2 is not supported"),
    "too-small": (doc_json(width=8), "width 8 is outside 16..4096"),
    "too-big": (doc_json(height=5000), "height 5000 is outside 16..4096"),
    "size-mismatch": (doc_json(width=64), "the painted map is 48x32 but the layout is 64x32"),
    "bad-colour": (doc_json(entities=[{"color": "red", "prompt": "x"}]), "entity 1 'x': colour must be '#rrggbb'"),
    "duplicate": (
        doc_json(entities=[{"color": "#ff0000", "prompt": "a"}, {"color": "#FF0000", "prompt": "b"}]),
        "entity 2 (#ff0000) 'b' has the same colour as entity 1",
    ),
    "stray-colour": (
        doc_json(entities=[{"color": "#ff0000", "prompt": "a"}, {"color": "#0000ff", "prompt": "b"}]),
        "colour(s) that no entity lists: #00c800 (180 pixels)",
    ),
    "map-not-png": (doc_json(map="data:image/jpeg;base64,AAAA"), "'map' must be a PNG data URL"),
    "map-bad-base64": (doc_json(map=PNG_PREFIX + "!!!"), "not valid base64"),
    "map-broken-png": (doc_json(map=PNG_PREFIX + base64.b64encode(b"\x89PNG\r\n\x1a\nbroken").decode()), "not a readable PNG"),
    "too-many": (doc_json(entities=[{"color": "#ff0000", "prompt": "a"}] * (MAX_ENTITIES + 1)), "256 entities, at most 255"),
    "prompt-type": (doc_json(entities=[{"color": "#ff0000", "prompt": 3}]), "entity 1: 'prompt' must be text"),
    "long-prompt": (doc_json(entities=[{"color": "#ff0000", "prompt": "x" * 2001}]), "has 2001 characters (limit 2000)"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_documents_are_refused_by_name(name):
    text, fragment = BAD[name]
    with pytest.raises(LayoutError) as err:
        parse_document(text)
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    "entities,fragment",
    [
        ([{"color": "#ff0000", "prompt": "a red box", "visible": False}], "no visible entity"),
        ([{"color": "#ff0000", "prompt": " "}], "entity 1 (#ff0000): the prompt is empty"),
        (
            [{"color": "#ff0000", "prompt": "a red box"}, {"color": "#123456", "prompt": "a ghost"}],
            "entity 2 (#123456) 'a ghost' is not painted",
        ),
    ],
)
def test_outputs_refuse_unusable_entities_by_name(entities, fragment):
    m = np.zeros((16, 16, 3), np.uint8)
    m[:4, :4] = RED
    with pytest.raises(LayoutError, match=None) as err:
        official_outputs(parse_document(doc_json(m, entities=entities)))
    assert fragment in str(err.value)


def test_a_black_entity_gets_a_white_background():
    """The official badge example lists black for a badge on a white background."""
    img = np.full((16, 16, 3), 255, np.uint8)
    img[:4, :4] = 0
    img[8:, 8:] = RED
    doc = document_from_official(
        img, {"segments_info": [{"color": [0, 0, 0], "text": "a black badge"}, {"color": [255, 0, 0], "text": "r"}]}
    )
    back = parse_document(encode_document(doc))
    assert (back.labels[:4, :4] == 1).all() and (back.labels[8:, 8:] == 2).all() and back.labels.sum() == 16 + 64 * 2
    rgb, segments, _ = official_outputs(back)
    assert (rgb[:4, :4] == 0).all() and (rgb[4:8] == 255).all()
    lay = layout_from_segmentation(rgb, segments)
    assert [e.area for e in lay.entities] == [16, 64] and "background" in lay.notes[0]


def test_official_badge_example_round_trips_exactly(shared_dir):
    folder = os.path.join(shared_dir, "data", "seg2any-examples")
    spec = json.load(open(os.path.join(folder, "20_circular_badges.json")))
    official = np.asarray(Image.open(os.path.join(folder, "20_circular_badges.png")).convert("RGB"))
    doc = parse_document(
        document_from_files(os.path.join(folder, "20_circular_badges.png"), os.path.join(folder, "20_circular_badges.json"))
    )
    rgb, segments, _ = official_outputs(doc)
    want, got = layout_from_segmentation(official, spec), layout_from_segmentation(rgb, segments)
    assert [(e.color, e.prompt) for e in got.entities] == [(e.color, e.prompt) for e in want.entities]
    assert all(np.array_equal(a.mask, b.mask) for a, b in zip(got.entities, want.entities))


# ----------------------------------------------------------------------------------------------
# token counts for the editor


@pytest.fixture(scope="module")
def count(shared_dir):
    tok = T5Tokenizer(os.path.join(shared_dir, "data", "t5-v1_1-xxl-tokenizer"))
    return lambda s: len(tok.ids(s))


def test_counts_are_the_builders_count_of_the_stripped_text(count):
    out = count_tokens({"texts": ["  a red striped triangle ", "", "   "]}, count)
    assert out["counts"] == [count("a red striped triangle"), 0, 0]
    assert out["entity_limit"] == 50 and out["global_limit"] == 512


@pytest.mark.parametrize(
    "payload,fragment",
    [
        ([], "expected a JSON object"),
        ({}, "'texts' must be a list"),
        ({"texts": "a cat"}, "'texts' must be a list of strings, got str"),
        ({"texts": ["ok", 3]}, "texts[1] must be a string, got int"),
        ({"texts": ["x"] * (MAX_TEXTS + 1)}, "301 texts, at most 300"),
        ({"texts": ["x" * (MAX_TEXT_CHARS + 1)]}, "texts[0] has 10001 characters"),
        ({"texts": [], "path": "/etc/passwd"}, "unknown field(s) ['path']"),
    ],
)
def test_bad_token_requests_are_refused_with_a_message(payload, fragment, count):
    with pytest.raises(TokenRequestError) as err:
        count_tokens(payload, count)
    assert fragment in str(err.value)


def test_seed_is_kept_and_written_to_the_outputs():
    """The official JSON's seed survives document -> outputs (export -> import round trip)."""
    from seg2any.layout.editor_document import encode_document, official_outputs, parse_document

    labels = np.zeros((16, 16), np.int16)
    labels[:8] = 1
    labels[8:] = 2
    ents = (DocEntity((255, 0, 0), "top"), DocEntity((0, 0, 255), "bottom", visible=False))
    doc = EditorDocument(16, 16, "cap", ents, labels, 1234)
    back = parse_document(encode_document(doc))
    assert back.seed == 1234 and [e.prompt for e in back.entities] == ["top", "bottom"]
    _, spec, _ = official_outputs(back)
    assert json.loads(spec) == {"caption": "cap", "seed": 1234, "segments_info": [{"color": [255, 0, 0], "text": "top"}]}
    with pytest.raises(LayoutError, match="'seed' must be an integer"):
        parse_document(encode_document(doc).replace('"seed":1234', '"seed":"x"'))
