"""Editing in the Layout Editor as in a paint program (issue 17), in the real frontend with real
pointer events and key presses: the editor's own undo keys next to ComfyUI's graph history and
shortcuts, the user's entity order (drag and buttons), an exact export -> import round trip,
pick / move / flip / lock, and panning. Screenshots under test-artifacts/browser/<frontend>/<test>/."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from seg2any.layout.editor_document import parse_document

pytest.importorskip("selenium")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.actions.action_builder import ActionBuilder  # noqa: E402
from selenium.webdriver.common.actions.mouse_button import MouseButton  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

from tests.browser.test_layout_editor import EXAMPLES, add_editor  # noqa: E402
from tests.browser.test_layout_editor_view import any_nodes  # noqa: E402,F401  (classic, then Vue nodes)

JS_TRACKER = (
    "const t = app.extensionManager.workflow.activeWorkflow.changeTracker; return [t.undoQueue.length, t.redoQueue.length];"
)


def keys(page, *combo):
    """Press a chord (modifiers held) on whatever has the focus, as a user does."""
    ac = ActionChains(page.driver)
    mods, key = combo[:-1], combo[-1]
    for m in mods:
        ac = ac.key_down(m)
    ac = ac.send_keys(key)
    for m in reversed(mods):
        ac = ac.key_up(m)
    ac.perform()
    time.sleep(0.3)  # ComfyUI's tracker acts one animation frame later
    page.settle(frames=2, pause=0.1)


def click_graph_background(page):
    """A click on empty graph (right of the node, below the top bar): the editor loses the focus."""
    area = page.canvas_area()["rect"]
    ActionChains(page.driver).move_by_offset(0, 0).perform()
    x, y = area[0] + area[2] - 40, area[1] + area[3] - 40
    ActionChains(page.driver).move_to_element_with_offset(
        page.driver.find_element(By.TAG_NAME, "body"), x - page.view()["viewport"][0] / 2, y - page.view()["viewport"][1] / 2
    ).click().perform()
    page.settle()


def labels(ed):
    return parse_document(ed.document()).labels


def test_editor_undo_keys_graph_history_and_comfy_shortcuts(any_nodes):  # noqa: F811 (the imported fixture)
    page = any_nodes
    # a new, never-saved workflow (the frontend may have reopened one an earlier test saved, where
    # Ctrl+S saves in place without a dialog)
    page.js_async("await app.extensionManager.command.execute('Comfy.NewBlankWorkflow');")
    page.settle()
    ed = add_editor(page)
    click_graph_background(page)
    q0 = page.js(JS_TRACKER)
    ed.set_size(128, 128)
    ed.add("a red box")  # typing 9 characters
    ed.tool("rect")
    ed.drag((10, 10), (50, 50))
    ed.add("a blue disc")
    ed.tool("ellipse")
    ed.drag((60, 60), (120, 120))
    s = ed.summary()
    assert s["undo"] >= 4 and [e["prompt"] for e in s["entities"]] == ["a red box", "a blue disc"]
    page.screenshot("painted-two")

    # Ctrl+Z on the canvas (it has the focus after the drag): the editor's undo, not the graph's
    keys(page, Keys.CONTROL, "z")
    after = ed.summary()
    assert after["entities"][1]["pixels"] == 0 and after["undo"] == s["undo"] - 1 and after["redo"] == 1
    assert page.js(JS_TRACKER)[1] == 0  # the graph redid nothing / undid nothing
    keys(page, Keys.CONTROL, Keys.SHIFT, "z")
    assert ed.summary()["entities"] == s["entities"] and ed.summary()["redo"] == 0
    keys(page, Keys.CONTROL, "z")
    keys(page, Keys.CONTROL, "y")
    assert ed.summary()["entities"] == s["entities"]
    page.screenshot("after-editor-undo-redo")

    # the whole session (size, 2 entities, 20 typed characters, 2 shapes, undo/redo) is one graph step
    click_graph_background(page)
    q1 = page.js(JS_TRACKER)
    assert q1[0] - q0[0] == 1, (q0, q1)
    # and that step undoes the session: graph undo (Ctrl+Z on the graph) brings back the empty editor
    keys(page, Keys.CONTROL, "z")
    page.wait_for(f"window.seg2anyLayoutEditors.get('{ed.id}')?.summary().entities.length === 0", 20, "graph undo")
    page.screenshot("graph-undo")
    # the browser's own text undo did not rewrite a prompt behind the graph's back, so redo works
    keys(page, Keys.CONTROL, "y")
    page.wait_for(f"window.seg2anyLayoutEditors.get('{ed.id}')?.summary().entities.length === 2", 20, "graph redo")
    ed = type(ed)(page, ed.id)
    assert ed.summary()["entities"] == s["entities"]
    page.screenshot("graph-redo")

    # ComfyUI's own shortcuts work while the editor has the focus: Ctrl+S opens the save dialog
    ed.q('.s2a-row[data-index="0"] .s2a-prompt').click()
    assert page.js("return arguments[0].contains(document.activeElement);", ed.root)
    keys(page, Keys.CONTROL, "s")
    page.wait_for(  # PrimeVue's .p-dialog (1.35) or the newer [role=dialog] (1.49): a visible "Save ..." dialog
        "[...document.querySelectorAll('.p-dialog, [role=dialog]')].some(d => d.getClientRects().length && /Save/.test(d.textContent))",
        10,
        "save dialog",
    )
    page.screenshot("ctrl-s-save-dialog")
    keys(page, Keys.ESCAPE)


def test_reorder_keeps_colours_and_new_entities_scroll_into_view(any_nodes):  # noqa: F811 (the imported fixture)
    page = any_nodes
    ed = add_editor(page)
    ed.set_size(128, 128)
    for k in range(22):
        ed.add(f"entity {k + 1}")
        if k < 3:
            ed.tool("rect")
            ed.drag((4 + 40 * k, 4), (34 + 40 * k, 20 + 10 * k))
        # the new row is the last one, visible in the list, and its prompt has the focus
        rows = ed.root.find_elements(By.CSS_SELECTOR, ".s2a-row")
        assert rows[-1].get_attribute("class").find("s2a-active") >= 0
        box, row = page.js(
            "return [arguments[0].getBoundingClientRect(), arguments[1].getBoundingClientRect()].map(r => [r.top, r.bottom]);",
            ed.q(".s2a-rows"),
            rows[-1],
        )
        assert box[0] - 1 <= row[0] and row[1] <= box[1] + 1, (k, box, row)
    page.screenshot("22-entities")
    stage = page.js("const r = arguments[0].getBoundingClientRect(); return [r.width, r.height];", ed.q(".s2a-stage"))
    assert min(stage) * 1.12 >= 320, stage  # the canvas keeps a usable size (CSS px x the graph's zoom)
    before = ed.summary()["entities"]

    # drag row 1's number below row 3: order 2, 3, 1, 4, ...; colours and pixels travel with it
    rows = ed.root.find_elements(By.CSS_SELECTOR, ".s2a-row")
    ed.page.js("arguments[0].scrollTop = 0;", ed.q(".s2a-rows"))
    handle = rows[0].find_element(By.CSS_SELECTOR, ".s2a-num")
    target = rows[2]
    h = page.js("return arguments[0].getBoundingClientRect().height;", target)
    ActionChains(page.driver).click_and_hold(handle).move_by_offset(0, 5).move_to_element_with_offset(
        target, 0, h * 0.3
    ).release().perform()
    page.settle()
    after = ed.summary()["entities"]
    assert after[:4] == [before[1], before[2], before[0], before[3]] and after[4:] == before[4:]
    page.screenshot("dragged-row-1-below-row-3")
    # buttons too, and the painted map still holds each entity where it was painted
    ed.q('.s2a-row[data-index="2"] .s2a-up').click()
    assert ed.summary()["entities"][:3] == [before[1], before[0], before[2]]
    doc = parse_document(ed.document())
    assert [e.prompt for e in doc.entities][:3] == ["entity 2", "entity 1", "entity 3"]
    assert (doc.labels[5:20, 5:34] == 2).all()  # entity 1's box, entity 1 now second in the list


def test_export_import_round_trip_keeps_order_seed_and_hidden(page, tmp_path):
    name = "20_circular_badges"
    ed = add_editor(page)
    ed.q(".s2a-import-input").send_keys(os.path.join(EXAMPLES, name + ".png") + "\n" + os.path.join(EXAMPLES, name + ".json"))
    page.wait_for(f"window.seg2anyLayoutEditors.get('{ed.id}').summary().entities.length === 20", 30, "import")
    assert ed.summary()["seed"] == 105
    ed.q('.s2a-row[data-index="3"] .s2a-eye').click()  # hide the 4th
    ed.q('.s2a-row[data-index="0"] .s2a-down').click()  # swap the first two
    want = ed.summary()
    assert not want["entities"][3]["visible"]
    png, text = ed.exported()
    spec = json.loads(text)
    assert spec["seed"] == 105 and len(spec["segments_info"]) == 19 and spec["hidden_segments_info"][0]["index"] == 3
    (tmp_path / "rt.png").write_bytes(png)
    (tmp_path / "rt.json").write_text(text)
    doc_before = parse_document(ed.document())

    ed2 = add_editor(page)
    ed2.q(".s2a-import-input").send_keys(f"{tmp_path / 'rt.png'}\n{tmp_path / 'rt.json'}")
    page.wait_for(f"window.seg2anyLayoutEditors.get('{ed2.id}').summary().entities.length === 20", 30, "re-import")
    page.screenshot("re-imported")
    got = ed2.summary()
    for k in ("width", "height", "caption", "seed", "entities"):
        assert got[k] == want[k], k
    doc_after = parse_document(ed2.document())
    assert doc_after.entities == doc_before.entities and np.array_equal(doc_after.labels, doc_before.labels)


def test_pick_move_flip_lock_and_pan(any_nodes):  # noqa: F811 (the imported fixture)
    page = any_nodes
    ed = add_editor(page)
    ed.set_size(128, 128)
    ed.add("box a")
    ed.tool("rect")
    ed.drag((10, 10), (40, 30))
    ed.add("box b")
    ed.drag((70, 70), (110, 110))
    area_a = int((labels(ed) == 1).sum())

    # Alt+click on box a selects it
    view = ed.q(".s2a-view")
    ActionChains(page.driver).key_down(Keys.ALT).move_to_element_with_offset(view, *ed.point(20, 20)).click().key_up(
        Keys.ALT
    ).perform()
    assert ed.summary()["active"] == 0
    # Move tool: drag it by (+20, +30) layout pixels
    ed.tool("move")
    ed.drag((20, 20), (40, 50))
    lab = labels(ed)
    ys, xs = np.nonzero(lab == 1)
    assert (xs.min(), ys.min(), int((lab == 1).sum())) == (30, 40, area_a)
    page.screenshot("moved-a")
    # flip keeps the box; shrink makes it smaller about its centre
    ed.q(".s2a-flip-x").click()
    assert int((labels(ed) == 1).sum()) == area_a
    ed.q(".s2a-shrink").click()
    assert 0.7 * area_a < int((labels(ed) == 1).sum()) < 0.9 * area_a

    # lock b, then a brush stroke with a across it leaves b's pixels
    ed.q('.s2a-row[data-index="1"] .s2a-lock').click()
    b_before = labels(ed) == 2
    ed.tool("brush")
    ed.drag((60, 90), (120, 90))
    lab = labels(ed)
    assert np.array_equal(lab == 2, b_before) and (lab[85:95, 60:70] == 1).any()
    page.screenshot("locked-b-stroke")

    # panning: zoomed in, Space + drag and middle-drag scroll the canvas and paint nothing
    for _ in range(3):
        ed.q(".s2a-zoom-in").click()
    page.settle()
    snap = ed.summary()["entities"]
    stage = ed.q(".s2a-stage")
    scroll = lambda: page.js("return [arguments[0].scrollLeft, arguments[0].scrollTop];", stage)  # noqa: E731
    s0 = scroll()
    ActionChains(page.driver).move_to_element(view).key_down(Keys.SPACE).click_and_hold().move_by_offset(
        -60, -40
    ).release().key_up(Keys.SPACE).perform()
    s1 = scroll()
    assert s1[0] > s0[0] + 20 and s1[1] > s0[1] + 10, (s0, s1)
    graph_view = {k: page.view()[k] for k in ("scale", "offset")}
    ab = ActionBuilder(page.driver)
    ab.pointer_action.move_to(view).pointer_down(MouseButton.MIDDLE).move_by(50, 30).pointer_up(MouseButton.MIDDLE)
    ab.perform()
    s2 = scroll()
    assert s2[0] < s1[0] - 20 and s2[1] < s1[1] - 10, (s1, s2)
    assert ed.summary()["entities"] == snap
    # the graph did not pan too (1.49's Vue nodes hand middle drags to the graph before the node sees them)
    assert {k: page.view()[k] for k in ("scale", "offset")} == graph_view
    page.screenshot("panned")


def test_problems_shown_with_the_runs_wording(page):
    """An unpainted entity and an empty prompt are named in the editor as the node's run names them."""
    from seg2any.errors import LayoutError
    from seg2any.layout.editor_document import official_outputs

    ed = add_editor(page)
    ed.set_size(64, 64)
    ed.add("a red box")
    ed.tool("rect")
    ed.drag((4, 4), (30, 30))
    ed.add("a green field")  # never painted
    problems = ed.q(".s2a-problems")
    page.wait_for("document.querySelector('.s2a-problems').dataset.count !== '0'", 10, "problems shown")
    text = problems.get_attribute("textContent")
    with pytest.raises(LayoutError) as err:
        official_outputs(parse_document(ed.document()))
    assert str(err.value) in text, (str(err.value), text)
    assert "entity 2 (" in text and "'a green field' is not painted anywhere" in text
    page.screenshot("problem-unpainted")
    ed.drag((34, 34), (60, 60))  # paint it: no problem left
    page.wait_for("document.querySelector('.s2a-problems').dataset.count === '0'", 10, "problems cleared")
    official_outputs(parse_document(ed.document()))  # the run accepts it


def test_multi_line_prompts_and_a_resizable_node(page):
    ed = add_editor(page)
    ed.add("a green field")
    box = ed.q('.s2a-row[data-index="0"] .s2a-prompt')
    h0 = page.js("return arguments[0].getBoundingClientRect().height;", box)
    box.send_keys(Keys.ENTER + "with tall grass" + Keys.ENTER + "and poppies")
    assert ed.summary()["entities"][0]["prompt"] == "a green field\nwith tall grass\nand poppies"
    assert page.js("return arguments[0].getBoundingClientRect().height;", box) > 2 * h0  # it shows its lines
    page.screenshot("multi-line-prompt")

    # drag the node's bottom-right corner: the canvas grows with the node
    stage = lambda: page.js("return arguments[0].getBoundingClientRect().height;", ed.q(".s2a-stage"))  # noqa: E731
    page.js(  # zoom the graph out so the node's corner and the room below it are on screen
        """const n = app.graph.getNodeById(arguments[0]), c = app.canvas;
        c.ds.scale = 0.5; c.ds.offset = [400 / 0.5 - n.pos[0], 100 / 0.5 - n.pos[1]]; c.setDirty(true, true);""",
        ed.id,
    )
    page.settle()
    before = stage()
    (node,) = [n for n in page.node_boxes() if str(n["id"]) == str(ed.id)]
    x, y, w, h = page.to_screen(node["own"])
    corner = (int(x + w - 3), int(y + h - 3))  # the resize handle, in viewport coordinates
    drag = ActionBuilder(page.driver)
    drag.pointer_action.move_to_location(*corner).pointer_down()
    drag.pointer_action.move_to_location(corner[0] + 40, corner[1] + 60)
    drag.pointer_action.move_to_location(corner[0] + 80, corner[1] + 120).pointer_up()
    drag.perform()
    page.settle()
    (after_node,) = [n for n in page.node_boxes() if str(n["id"]) == str(ed.id)]
    assert after_node["size"][1] > node["size"][1] + 50, (node["size"], after_node["size"])
    assert stage() > before + 40, (before, stage())
    page.screenshot("node-resized")
