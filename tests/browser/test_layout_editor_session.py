"""A whole painting session in the Layout Editor (issue 17's "done when"): 20 entities painted,
reordered, one moved, undone and redone with the keys, the workflow queued with Ctrl+Enter from
inside the editor, and exported and imported again without losing anything; and a layout made
upstream (the official example through 'Load Seg2Any Layout') taken into the editor to refine.
Real pointer events and key presses, classic and Vue nodes; screenshots under
test-artifacts/browser/<frontend>/<test>/."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PIL import Image

from seg2any.layout.editor_document import hex_color, parse_document
from seg2any.layout.layout import load_layout_pair

pytest.importorskip("selenium")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

from tests.browser.test_layout_editor import Editor, add_editor, show_node  # noqa: E402
from tests.browser.test_layout_editor_editing import keys  # noqa: E402
from tests.browser.test_layout_editor_view import any_nodes, colour_map  # noqa: E402,F401  (classic, then Vue nodes)
from tests.conftest import ROOT  # noqa: E402

LAYOUTS = f"{ROOT}/example_workflows/layouts"  # what 'Load Seg2Any Layout' lists as examples/...

SIDE = 160
CELL = 32  # a 5 x 5 grid of cells; entity k paints a 23 x 19 rectangle in cell k


def cell_rect(k):
    """Entity k's rectangle, (x0, y0, x1, y1) inclusive, as the Rectangle tool paints a drag."""
    r, c = divmod(k, 5)
    return 4 + CELL * c, 4 + CELL * r, 26 + CELL * c, 22 + CELL * r


def same_map(got: np.ndarray, want: np.ndarray) -> list[str]:
    """Where two colour maps differ, per colour: its bounding box and pixel count in each."""
    out = []
    for c in sorted(set(np.unique(got)) | set(np.unique(want))):
        boxes = []
        for m in (got == c, want == c):
            ys, xs = np.nonzero(m)
            boxes.append((int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()), int(m.sum())) if m.any() else None)
        if boxes[0] != boxes[1]:
            out.append(f"{c or 'background'}: got {boxes[0]}, want {boxes[1]}")
    return out


def add_preview(page, ed_id) -> str:
    """A Preview Image of the editor's segmentation: the workflow has an output, so Ctrl+Enter runs it."""
    return page.js(
        """const ed = app.graph.getNodeById(arguments[0]);
        const p = LiteGraph.createNode("PreviewImage"); p.pos = [ed.pos[0] + ed.size[0] + 80, ed.pos[1]];
        app.graph.add(p); ed.connect(0, p, 0); return String(p.id);""",
        ed_id,
    )


def history_ids(page) -> set[str]:
    return set(page.server.get("/history"))


def wait_new_run(page, before: set[str], timeout=120) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        new = history_ids(page) - before
        if new:
            entry = page.server.get("/history")[new.pop()]
            if entry.get("status", {}).get("completed") or entry.get("outputs"):
                return entry
        time.sleep(0.5)
    raise AssertionError(f"no run was queued within {timeout}s:\n{page.server.tail()}")


def preview_pixels(page, entry, preview_id) -> np.ndarray:
    (im,) = entry["outputs"][preview_id]["images"]
    with Image.open(page.server.output_path(im)) as f:
        return np.asarray(f.convert("RGB"))


def test_twenty_entities_painted_reordered_moved_undone_and_exported(any_nodes, tmp_path):  # noqa: F811
    page = any_nodes
    page.js_async("await app.extensionManager.command.execute('Comfy.NewBlankWorkflow');")
    page.settle()
    ed = add_editor(page)
    preview = add_preview(page, ed.id)
    show_node(page, ed.id)
    ed.set_size(SIDE, SIDE)
    ed.tool("rect")
    for k in range(20):
        ed.add(f"tile {k + 1}")
        x0, y0, x1, y1 = cell_rect(k)
        ed.drag((x0, y0), (x1, y1))
    ed.q(".s2a-caption").send_keys("twenty tiles on a black table")
    page.screenshot("20-entities-painted")
    s = ed.summary()
    colours = [e["colour"] for e in s["entities"]]
    assert [e["prompt"] for e in s["entities"]] == [f"tile {k + 1}" for k in range(20)] and len(set(colours)) == 20
    # each entity is a solid rectangle where it was dragged (a pointer lands on whole screen pixels:
    # an edge may be one layout pixel off), nothing else is painted
    want = colour_map(ed.document())
    for k in range(20):
        x0, y0, x1, y1 = cell_rect(k)
        ys, xs = np.nonzero(want == colours[k])
        box = (xs.min(), ys.min(), xs.max(), ys.max())
        assert max(abs(a - b) for a, b in zip(box, (x0, y0, x1, y1))) <= 1, (k, box)
        assert len(xs) == (box[2] - box[0] + 1) * (box[3] - box[1] + 1), k
    assert (want != "").sum() == sum((want == c).sum() for c in colours)

    # Ctrl+Enter from inside the editor (a prompt box has the focus) runs the workflow: the preview
    # shows the painted colour map
    box = ed.q('.s2a-row[data-index="4"] .s2a-prompt')
    page.js("arguments[0].scrollIntoView({block: 'nearest'});", box)
    box.click()
    before = history_ids(page)
    keys(page, Keys.CONTROL, Keys.ENTER)
    entry = wait_new_run(page, before)
    assert entry["status"]["status_str"] == "success", entry["status"]
    shown = preview_pixels(page, entry, preview)
    for k in range(20):
        x0, y0, x1, y1 = cell_rect(k)
        assert hex_color(tuple(int(v) for v in shown[(y0 + y1) // 2, (x0 + x1) // 2])) == colours[k], k
    assert ed.summary()["entities"][4]["prompt"] == "tile 5"  # the key typed nothing into the prompt

    # reorder: row 1's handle dragged below row 3 -> 2, 3, 1, 4, ...; colours and pixels stay
    ed.page.js("arguments[0].scrollTop = 0;", ed.q(".s2a-rows"))
    rows = ed.root.find_elements(By.CSS_SELECTOR, ".s2a-row")
    h = page.js("return arguments[0].getBoundingClientRect().height;", rows[2])
    ActionChains(page.driver).click_and_hold(rows[0].find_element(By.CSS_SELECTOR, ".s2a-num")).move_by_offset(
        0, 5
    ).move_to_element_with_offset(rows[2], 0, h * 0.3).release().perform()
    page.settle()
    order = [e["prompt"] for e in ed.summary()["entities"]]
    assert order == ["tile 2", "tile 3", "tile 1"] + [f"tile {k + 1}" for k in range(3, 20)], order
    assert not same_map(colour_map(ed.document()), want), same_map(colour_map(ed.document()), want)

    # move: Alt+click tile 13 to select it, then drag it 5 right and 3 down with the Move tool
    x0, y0, x1, y1 = cell_rect(12)
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    view = ed.q(".s2a-view")
    ActionChains(page.driver).key_down(Keys.ALT).move_to_element_with_offset(view, *ed.point(cx, cy)).click().key_up(
        Keys.ALT
    ).perform()
    assert ed.summary()["active"] == order.index("tile 13")
    ed.tool("move")
    ed.drag((cx, cy), (cx + 5, cy + 3))
    # tile 13 is the same rectangle, shifted by the drag (5, 3) give or take a screen pixel
    got = colour_map(ed.document())
    (y_a, x_a), (y_b, x_b) = (np.argwhere(m == colours[12]).min(axis=0) for m in (want, got))
    dx, dy = int(x_b - x_a), int(y_b - y_a)
    assert abs(dx - 5) <= 1 and abs(dy - 3) <= 1, (dx, dy)
    moved = want.copy()
    moved[want == colours[12]] = ""
    moved[np.roll(np.roll(want == colours[12], dy, axis=0), dx, axis=1)] = colours[12]
    assert not same_map(colour_map(ed.document()), moved), same_map(colour_map(ed.document()), moved)
    page.screenshot("tile-13-moved")
    final_doc = ed.document()

    # the keys, with the focus on the canvas after the drag: undo the move, then the reorder; redo both
    keys(page, Keys.CONTROL, "z")
    assert not same_map(colour_map(ed.document()), want), same_map(colour_map(ed.document()), want)
    keys(page, Keys.CONTROL, "z")
    assert [e["prompt"] for e in ed.summary()["entities"]] == [f"tile {k + 1}" for k in range(20)]
    page.screenshot("move-and-reorder-undone")
    keys(page, Keys.CONTROL, "y")
    keys(page, Keys.CONTROL, Keys.SHIFT, "z")
    assert [e["prompt"] for e in ed.summary()["entities"]] == order
    assert not same_map(colour_map(ed.document()), moved), same_map(colour_map(ed.document()), moved)
    # the graph history was not touched by those keys, and Ctrl+Enter still runs from the canvas
    before = history_ids(page)
    keys(page, Keys.CONTROL, Keys.ENTER)
    assert wait_new_run(page, before)["status"]["status_str"] == "success"

    # export -> import into a fresh editor: the same document, entity for entity and pixel for pixel
    png, text = ed.exported()
    spec = json.loads(text)
    assert [s["text"] for s in spec["segments_info"]] == order
    (tmp_path / "session.png").write_bytes(png)
    (tmp_path / "session.json").write_text(text)
    lay = load_layout_pair(str(tmp_path / "session.json"), str(tmp_path / "session.png"))
    doc_a = parse_document(final_doc)
    # what the official reader makes of it: every entity, its prompt and its exact pixels
    assert sorted(e.prompt for e in lay.entities) == sorted(order)
    for e in lay.entities:
        assert np.array_equal(e.mask, doc_a.labels == 1 + order.index(e.prompt)), e.prompt
    nid = page.js("""const n = LiteGraph.createNode("Seg2AnyLayoutEditor"); n.pos = [0, 1400]; app.graph.add(n); return n.id;""")
    show_node(page, nid)
    ed2 = Editor(page, nid)
    ed2.q(".s2a-import-input").send_keys(f"{tmp_path / 'session.png'}\n{tmp_path / 'session.json'}")
    page.wait_for(f"window.seg2anyLayoutEditors.get('{nid}').summary().entities.length === 20", 30, "re-import")
    page.screenshot("re-imported")
    doc_b = parse_document(ed2.document())
    assert doc_b.entities == doc_a.entities and doc_b.caption == doc_a.caption
    assert np.array_equal(doc_b.labels, doc_a.labels)


def test_a_layout_from_upstream_is_taken_in_to_refine(page):
    """'Load Seg2Any Layout' -> the editor's segmentation + segments inputs: an empty editor takes the
    layout in after a run (and passes it on); painted, it keeps the user's work and offers the new
    input, which 'Take in input' takes as one undo step."""
    ed = add_editor(page)
    preview = add_preview(page, ed.id)
    loader = page.js(
        """const ed = app.graph.getNodeById(arguments[0]);
        const l = LiteGraph.createNode("Seg2AnyLoadLayout"); l.pos = [ed.pos[0] - 500, ed.pos[1]]; app.graph.add(l);
        l.widgets[0].value = "examples/reading_nook.json";
        l.connect(0, ed, ed.findInputSlot("segmentation")); l.connect(1, ed, ed.findInputSlot("segments"));
        return String(l.id);""",
        ed.id,
    )
    show_node(page, ed.id)
    official = load_layout_pair(f"{LAYOUTS}/reading_nook.json", f"{LAYOUTS}/reading_nook.png")
    before = history_ids(page)
    page.js_async("await app.queuePrompt(0, 1);")
    entry = wait_new_run(page, before)
    assert entry["status"]["status_str"] == "success", entry["status"]
    n = len(official.entities)
    page.wait_for(f"window.seg2anyLayoutEditors.get('{ed.id}').summary().entities.length === {n}", 30, "taken in")
    page.screenshot("taken-in")
    s = ed.summary()
    with open(f"{LAYOUTS}/reading_nook.json", encoding="utf-8") as f:  # the file's order
        assert [e["prompt"] for e in s["entities"]] == [x["text"] for x in json.load(f)["segments_info"]]
    doc = parse_document(ed.document())
    prompts = [e.prompt for e in doc.entities]
    for e in official.entities:  # the official reader's masks, exactly
        assert np.array_equal(doc.labels == 1 + prompts.index(e.prompt), e.mask), e.prompt
    assert s["undo"] == 1  # taking in is one step: Ctrl+Z gives the empty editor back
    # the empty editor passed the input on: the preview is the official colour map
    shown = preview_pixels(page, entry, preview)
    for e in official.entities:
        ys, xs = np.nonzero(e.mask)
        assert tuple(shown[ys[0], xs[0]]) == tuple(e.color)

    # refine: erase a stroke through entity 1; a second run keeps the refinement and offers nothing new
    ed.tool("eraser")
    ys, xs = np.nonzero(official.entities[0].mask)
    x, y = int(xs[len(xs) // 2]), int(ys[len(ys) // 2])  # a pixel of entity 1
    ed.drag((x, y), (x + 30, y))
    refined = ed.document()
    assert parse_document(refined).labels.tolist() != doc.labels.tolist()
    before = history_ids(page)
    page.js_async("await app.queuePrompt(0, 1);")
    assert wait_new_run(page, before)["status"]["status_str"] == "success"
    page.settle()
    assert ed.document() == refined and not ed.q(".s2a-take-in").is_displayed()

    # a different layout upstream: offered, not forced
    page.js(f"app.graph.getNodeById({loader}).widgets[0].value = 'examples/badge_grid.json';")
    before = history_ids(page)
    page.js_async("await app.queuePrompt(0, 1);")
    assert wait_new_run(page, before)["status"]["status_str"] == "success"
    page.wait_for(f"window.seg2anyLayoutEditors.get('{ed.id}').root.querySelector('.s2a-take-in').offsetParent", 30, "offer")
    assert ed.document() == refined
    button = ed.q(".s2a-take-in")
    assert "20" in button.text
    page.screenshot("new-input-offered")
    button.click()
    page.wait_for(f"window.seg2anyLayoutEditors.get('{ed.id}').summary().entities.length === 20", 30, "taken in")
    assert not button.is_displayed()
    page.js("arguments[0].focus();", ed.q(".s2a-view"))
    keys(page, Keys.CONTROL, "z")
    assert parse_document(ed.document()).labels.tolist() == parse_document(refined).labels.tolist()
    page.screenshot("take-in-undone")
