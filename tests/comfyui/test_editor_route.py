"""The Layout Editor through a real ComfyUI server: its token-count route (good and bad requests),
its node feeding the builder and the Layout Preview exactly like 'Load Seg2Any Layout' does with
the same PNG + JSON, errors that name the entity, and the trace image it hands to the frontend."""

from __future__ import annotations

import json
import os
from urllib import error, request

import numpy as np
import pytest
from PIL import Image

from seg2any.conditioning.t5_tokens import T5Tokenizer
from seg2any.layout.editor_document import document_from_files, parse_document
from tests.conftest import COMFYUI_PATH, ROOT
from tests.support.server import ComfyServer, clean

LAYOUTS = os.path.join(ROOT, "example_workflows", "layouts")
ROUTE = "/seg2any/token_count"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("comfy-editor"))
    s = ComfyServer(COMFYUI_PATH, base).start()
    yield s
    s.stop()
    clean(base)


def post_raw(server, path, body: bytes, content_type="application/json"):
    req = request.Request(server.url + path, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read().decode())
    except error.HTTPError as e:
        return e.code, json.loads(e.read().decode() or "{}")


def test_editor_node_is_listed_next_to_the_builder(server):
    info = server.object_info()["Seg2AnyLayoutEditor"]
    assert info["display_name"] == "Layout Editor (Seg2Any)" and info["category"] == "Seg2Any"
    assert info["output"] == ["IMAGE", "STRING", "STRING"]
    assert info["output_name"] == server.object_info()["Seg2AnyLoadLayout"]["output_name"]
    kind, opts = info["input"]["required"]["layout"]
    assert kind == "SEG2ANY_LAYOUT_EDITOR" and opts["widgetType"] == "SEG2ANY_LAYOUT_EDITOR" and opts["socketless"]


@pytest.mark.parametrize("prefix", ["", "/api"])
def test_token_counts_are_the_builders_counts(server, prefix, shared_dir):
    tok = T5Tokenizer(os.path.join(shared_dir, "data", "t5-v1_1-xxl-tokenizer"))
    texts = ["A cosy reading nook.", "an orange tabby cat, curled up asleep", "", "Ünïcode café — 20% off!", "x " * 80]
    status, body = server.post(prefix + ROUTE, {"texts": texts})
    assert status == 200, body
    assert body["counts"] == [len(tok.ids(t.strip())) if t.strip() else 0 for t in texts]
    assert body["counts"][4] > body["entity_limit"] == 50 and body["global_limit"] == 512


BAD = {
    "not-json": (b"{texts: [", "not JSON"),
    "not-utf8": (b"\xff\xfe\x00", "not JSON"),
    "no-texts": (b"{}", "'texts' must be a list"),
    "texts-not-list": (json.dumps({"texts": "a cat"}).encode(), "got str"),
    "number-in-texts": (json.dumps({"texts": ["a", 1]}).encode(), "texts[1] must be a string, got int"),
    "too-many": (json.dumps({"texts": ["a"] * 301}).encode(), "301 texts, at most 300"),
    "too-long": (json.dumps({"texts": ["a" * 10001]}).encode(), "texts[0] has 10001 characters"),
    "file-path": (json.dumps({"texts": [], "path": "/etc/passwd"}).encode(), "unknown field(s) ['path']"),
    "huge-body": (b'{"texts": ["' + b"a" * (1024 * 1024 + 10) + b'"]}', "request body over"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_token_requests_get_400_with_a_message(server, name):
    body, fragment = BAD[name]
    status, answer = post_raw(server, ROUTE, body)
    assert status == 400, answer
    assert fragment in answer["error"]
    ok, again = server.post(ROUTE, {"texts": ["still serving"]})  # the server keeps answering
    assert ok == 200 and again["counts"][0] > 1


def test_a_chunked_body_without_length_is_bounded_too(server):
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.putrequest("POST", ROUTE)
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    piece = b"a" * 65536
    try:  # the server may answer (and stop reading) before the whole body is sent
        conn.send(b'%x\r\n{"texts": ["\r\n' % len(b'{"texts": ["'))
        for _ in range(20):  # 1.3 MB in 64 KiB chunks
            conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        conn.send(b'4\r\n"]}\n\r\n0\r\n\r\n')
    except (BrokenPipeError, ConnectionResetError):
        pass
    r = conn.getresponse()
    body = json.loads(r.read().decode())
    assert r.status == 400 and "request body over" in body["error"]
    conn.close()
    ok, small = server.post(ROUTE, {"texts": ["a cat"]})
    assert ok == 200 and small["counts"][0] > 1


def test_get_is_not_a_token_route(server):
    with pytest.raises(error.HTTPError) as err:
        request.urlopen(server.url + ROUTE, timeout=30)
    assert err.value.code in (404, 405)


def preview_graph(source: dict) -> dict:
    """layout source -> builder (tiny CLIP) -> Layout Preview; the source is node "src"."""
    return {
        "src": source,
        "clip": {"class_type": "Seg2AnyTestTinyClip", "inputs": {"seed": 0}},
        "b": {
            "class_type": "Seg2AnyRegionalPromptBuilder",
            "inputs": {"clip": ["clip", 0], "global_prompt": "", "segmentation": ["src", 0], "segments": ["src", 1]},
        },
        "p": {"class_type": "Seg2AnyLayoutPreview", "inputs": {"layout": ["b", 0]}},
    }


def preview_pixels(server, graph) -> tuple[np.ndarray, dict]:
    result = server.run(graph)
    assert result["status"] == "success", (result["errors"], server.tail())
    img = result["outputs"]["p"]["images"][0]
    with Image.open(server.output_path(img)) as im:
        return np.asarray(im.convert("RGB")), result


def test_editor_feeds_builder_and_preview_like_the_file_loader(server):
    doc = document_from_files(os.path.join(LAYOUTS, "demo_shapes.png"), os.path.join(LAYOUTS, "demo_shapes.json"))
    from_editor, res = preview_pixels(server, preview_graph({"class_type": "Seg2AnyLayoutEditor", "inputs": {"layout": doc}}))
    from_files, _ = preview_pixels(
        server, preview_graph({"class_type": "Seg2AnyLoadLayout", "inputs": {"layout_json": "examples/demo_shapes.json"}})
    )
    assert from_editor.shape == from_files.shape and np.array_equal(from_editor, from_files)
    report = "".join(res["outputs"]["b"]["text"])
    for prompt in ("a purple striped circle", "an orange striped circle", "a green diamond", "a blue striped square"):
        assert prompt in report


def test_bad_document_is_a_node_error_naming_the_entity(server):
    doc = json.loads(document_from_files(os.path.join(LAYOUTS, "demo_shapes.png"), os.path.join(LAYOUTS, "demo_shapes.json")))
    doc["entities"].append({"color": "#123456", "prompt": "a ghost", "visible": True})
    result = server.run(preview_graph({"class_type": "Seg2AnyLayoutEditor", "inputs": {"layout": json.dumps(doc)}}))
    assert result["status"] == "error"
    messages = [e.get("exception_message", "") for e in result["errors"]]
    assert any("entity 5 (#123456) 'a ghost' is not painted anywhere" in m for m in messages), messages


def test_trace_image_comes_back_for_the_editor_to_show(server):
    doc = document_from_files(os.path.join(LAYOUTS, "demo_shapes.png"), os.path.join(LAYOUTS, "demo_shapes.json"))
    graph = {
        "t": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": 1, "color": 0x3366CC}},
        "src": {"class_type": "Seg2AnyLayoutEditor", "inputs": {"layout": doc, "trace": ["t", 0]}},
        "out": {"class_type": "PreviewImage", "inputs": {"images": ["src", 0]}},
    }
    result = server.run(graph)
    assert result["status"] == "success", result["errors"]
    shown = result["outputs"]["src"]["seg2any_trace"]
    assert "images" not in result["outputs"]["src"]  # no second preview drawn over the editor
    with Image.open(server.output_path(shown[0])) as im:
        assert im.size == (64, 48) and im.convert("RGB").getpixel((5, 5)) == (0x33, 0x66, 0xCC)


def test_editor_takes_a_layout_in_passes_it_on_when_empty_and_keeps_its_own_otherwise(server):
    """The editor's 'segmentation' + 'segments' inputs: an empty editor outputs the incoming layout
    (and hands it to the frontend as a document to take in); a painted one outputs its painting."""
    loader = {"class_type": "Seg2AnyLoadLayout", "inputs": {"layout_json": "examples/demo_shapes.json"}}
    from_files, _ = preview_pixels(server, preview_graph(loader))
    graph = preview_graph(
        {"class_type": "Seg2AnyLayoutEditor", "inputs": {"layout": "", "segmentation": ["l", 0], "segments": ["l", 1]}}
    )
    graph["l"] = loader
    passed_on, result = preview_pixels(server, graph)
    assert np.array_equal(passed_on, from_files)
    (offered,) = result["outputs"]["src"]["seg2any_incoming"]
    want = document_from_files(os.path.join(LAYOUTS, "demo_shapes.png"), os.path.join(LAYOUTS, "demo_shapes.json"))
    a, b = parse_document(offered), parse_document(want)
    assert a.entities == b.entities and np.array_equal(a.labels, b.labels)

    # a painted editor (here: the other example) keeps its own layout, and still offers the input
    own = document_from_files(os.path.join(LAYOUTS, "reading_nook.png"), os.path.join(LAYOUTS, "reading_nook.json"))
    graph["src"]["inputs"]["layout"] = own
    from_editor, result = preview_pixels(server, graph)
    alone, _ = preview_pixels(server, preview_graph({"class_type": "Seg2AnyLayoutEditor", "inputs": {"layout": own}}))
    assert np.array_equal(from_editor, alone) and not np.array_equal(from_editor, from_files)
    assert parse_document(result["outputs"]["src"]["seg2any_incoming"][0]).entities == b.entities


def test_editor_input_half_connected_or_batched_is_a_clear_error(server):
    loader = {"class_type": "Seg2AnyLoadLayout", "inputs": {"layout_json": "examples/demo_shapes.json"}}
    half = preview_graph({"class_type": "Seg2AnyLayoutEditor", "inputs": {"layout": "", "segmentation": ["l", 0]}})
    half["l"] = loader
    result = server.run(half)
    messages = " ".join(e.get("exception_message", "") for e in result["errors"])
    assert result["status"] == "error" and "got 'segmentation' without 'segments'" in messages, messages
    two = preview_graph(
        {"class_type": "Seg2AnyLayoutEditor", "inputs": {"layout": "", "segmentation": ["batch", 0], "segments": ["l", 1]}}
    )
    two["l"] = loader
    two["batch"] = {"class_type": "ImageBatch", "inputs": {"image1": ["l", 0], "image2": ["l", 0]}}
    result = server.run(two)
    messages = " ".join(e.get("exception_message", "") for e in result["errors"])
    assert result["status"] == "error" and "a batch of 2 images" in messages, messages


# ---- POST /seg2any/layout_problems: the builder's checks for the editor's status line

PROBLEMS = "/seg2any/layout_problems"


def pole_document(h=64, w=64, pole=slice(0, 3), caption="a courtyard") -> str:
    """Row 1: a pole at the left edge (columns 0..2), row 2 (listed second, a SMALLER colour, so the
    sorted-colour order would call it entity 1): the wall."""
    from seg2any.layout.editor_document import DocEntity, EditorDocument, encode_document

    labels = np.full((h, w), 2, np.int16)
    labels[:, pole] = 1
    ents = (DocEntity((250, 10, 10), "a thin pole"), DocEntity((10, 10, 250), "a brick wall"))
    return encode_document(EditorDocument(w, h, caption, ents, labels))


def test_problems_route_gives_the_builders_own_report_lines(server):
    # 64x64 at FLUX: token column centres 8, 24, 40, 56; the pole (columns 0..2) covers none
    doc = pole_document()
    status, body = server.post(PROBLEMS, {"document": doc, "model": "flux"})
    assert status == 200, body
    (p,) = body["problems"]
    want = "entity 1 (#fa0a0a) 'a thin pole' covers no 16x16 token centre at 64x64: its caption will see no image token"
    assert p == {"kind": "vanished", "message": want, "entity": 0, "refused": False} and body["render_size"] == [64, 64]
    result = server.run(preview_graph({"class_type": "Seg2AnyLayoutEditor", "inputs": {"layout": doc}}))
    assert result["status"] == "success", result["errors"]
    report = "".join(result["outputs"]["b"]["text"])
    assert "WARNING: " + want in report  # the same words in the builder's report
    assert report.index("entity 1 (#fa0a0a)") < report.index("entity 2 (#0a0afa)")  # the list's order


def test_problems_route_checks_at_the_demo_size_and_counts_tokens_like_the_builder(server):
    long = "an extremely ornate and intricately detailed carved wooden chest " * 6
    doc = json.loads(pole_document(h=33, w=17))
    doc["entities"][0]["prompt"] = long
    status, body = server.post(PROBLEMS, {"document": json.dumps(doc), "model": "demo"})
    assert status == 200, body
    assert body["render_size"] == [96, 176]  # the demo renders 17x33 at 96x176, where the pole keeps a token
    (p,) = body["problems"]
    assert p["kind"] == "over-long" and p["message"].startswith("entity 1 (#fa0a0a) 'an extremely ornate")


@pytest.mark.parametrize(
    "body, fragment",
    [
        (b"[1", "not JSON"),
        (json.dumps({"document": "", "path": "/etc/passwd"}).encode(), "unknown field(s) ['path']"),
        (json.dumps({"document": "", "model": "sd15"}).encode(), "'model' must be one of"),
        (b'{"document": "' + b"a" * (17 * 1024 * 1024) + b'"}', "request body over"),
    ],
)
def test_bad_problem_requests_get_400(server, body, fragment):
    status, answer = post_raw(server, PROBLEMS, body)
    assert status == 400 and fragment in answer["error"], answer
    ok, again = server.post(PROBLEMS, {"document": pole_document()})
    assert ok == 200 and again["problems"]
