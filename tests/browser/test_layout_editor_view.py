"""The Layout Editor's view in the real frontend: inside Vue-rendered nodes ("Modern Node Design
(Nodes 2.0)", setting Comfy.VueNodes.Enabled, user-facing in frontend 1.35 / ComfyUI 0.8.0) and
its zoom about the pointer (Ctrl+wheel), on the classic canvas and in Vue nodes.
Screenshots under test-artifacts/browser/<frontend>/<test>/."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest

from seg2any.layout.editor_document import hex_color, parse_document
from tests.support.workflows import example_path

pytest.importorskip("selenium")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.actions.action_builder import ActionBuilder  # noqa: E402
from selenium.webdriver.common.actions.wheel_input import ScrollOrigin  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

from tests.browser.test_layout_editor import Editor, add_editor, show_node, t5_count  # noqa: E402

VUE_SETTING = "Comfy.VueNodes.Enabled"
EXAMPLE_EDITOR = 5  # the Seg2AnyLayoutEditor's node id in the layout-editor example

# client rect [left, top, width, height] of an element
JS_RECT = "const b = arguments[0].getBoundingClientRect(); return [b.left, b.top, b.width, b.height];"


def set_vue_nodes(page, on: bool):
    page.js_async("await app.extensionManager.setting.set(args[0], args[1]);", VUE_SETTING, on)
    page.wait_for(f"LiteGraph.vueNodesMode === {str(on).lower()}", 20, "Vue nodes mode switched")
    page.settle()


@contextlib.contextmanager
def vue_nodes_on(page):
    """Nodes 2.0 switched on inside the block, the user's previous value put back afterwards (the
    setting is stored on the server and the browser session is shared)."""
    kind = page.js("const s = app.ui.settings.settingsLookup?.[arguments[0]]; return s ? s.type : null;", VUE_SETTING)
    if kind in (None, "hidden"):
        pytest.skip(
            f"frontend {page.frontend} has no user setting {VUE_SETTING} (Modern Node Design / Nodes 2.0): "
            f"{'absent' if kind is None else 'only a hidden experimental prototype'}; it is user-facing from 1.35"
        )
    before = bool(page.js("return !!app.extensionManager.setting.get(arguments[0]);", VUE_SETTING))
    set_vue_nodes(page, True)
    try:
        yield page
    finally:
        set_vue_nodes(page, before)


@pytest.fixture
def vue_nodes(page):
    with vue_nodes_on(page):
        yield page


@pytest.fixture(params=["classic", "vue"])
def any_nodes(request, page):
    """The page with classic canvas nodes, then with Vue-rendered nodes (where the frontend has them)."""
    if request.param == "classic":
        assert not page.js("return !!LiteGraph.vueNodesMode;")
        yield page
    else:
        with vue_nodes_on(page):
            yield page


def rect(page, element) -> list[float]:
    return page.js(JS_RECT, element)


def inside(inner, outer, slack=1.0) -> bool:
    return (
        inner[0] >= outer[0] - slack
        and inner[1] >= outer[1] - slack
        and inner[0] + inner[2] <= outer[0] + outer[2] + slack
        and inner[1] + inner[3] <= outer[1] + outer[3] + slack
    )


def uncovered(page, element, points) -> list[str]:
    """Points (fractions of the element's rect) where something else is on top of the element."""
    bad = []
    for fx, fy in points:
        hit = page.js(
            """const e = arguments[0], b = e.getBoundingClientRect();
            const t = document.elementFromPoint(b.left + b.width * arguments[1], b.top + b.height * arguments[2]);
            return t && (e === t || e.contains(t)) ? null : (t ? t.tagName + '.' + t.className : 'nothing');""",
            element,
            fx,
            fy,
        )
        if hit:
            bad.append(f"({fx}, {fy}) of {element.get_attribute('class')}: {hit}")
    return bad


def colour_map(text: str) -> np.ndarray:
    """(H, W) of each pixel's entity colour '#rrggbb' ('' = background): label numbers follow the
    stored entity order, which the editor may rewrite, colours do not."""
    doc = parse_document(text)
    names = np.array([""] + [hex_color(e.color).lower() for e in doc.entities])
    return names[doc.labels]


def shows_its_own_editor(page, nid) -> bool:
    """The one editor on screen for node `nid` is the one bound to the node (its value is what is
    saved and run), not a removed node's editor left behind."""
    return page.js(
        """const shown = [...document.querySelectorAll(`.s2a-editor[data-node-id="${arguments[0]}"]`)]
          .filter(e => e.getClientRects().length > 0);
        return shown.length === 1 && shown[0] === app.graph.getNodeById(arguments[0]).seg2anyEditor.root;""",
        nid,
    )


def open_example(page):
    with open(example_path("layout_editor"), encoding="utf-8") as f:
        page.load_workflow(json.load(f), "layout_editor")
    page.wait_for(f"window.seg2anyLayoutEditors.get('{EXAMPLE_EDITOR}').summary().entities.length === 3", 30, "layout decoded")
    show_node(page, EXAMPLE_EDITOR)
    assert shows_its_own_editor(page, EXAMPLE_EDITOR)
    ed = Editor(page, EXAMPLE_EDITOR)
    ed.wait_counts(4)
    return ed


def test_layout_editor_in_vue_nodes(vue_nodes):
    page = vue_nodes
    open_example(page)
    ed = open_example(page)  # opened again over itself: same node ids, the new node's editor is shown
    page.screenshot("vue-nodes-example")
    node_el = page.driver.find_element(By.CSS_SELECTOR, f'.lg-node[data-node-id="{EXAMPLE_EDITOR}"]')
    node, root = rect(page, node_el), rect(page, ed.root)
    stage, view = rect(page, ed.q(".s2a-stage")), rect(page, ed.q(".s2a-view"))
    rows = [rect(page, r) for r in ed.root.find_elements(By.CSS_SELECTOR, ".s2a-row")]

    # the editor lives inside its Vue node, below the node's sockets, and fills the node's height
    assert inside(root, node), (root, node)
    slots = page.js(
        "return [...arguments[0].querySelectorAll('.lg-slot')].filter(e => !e.closest('.lg-node-widgets'))"
        ".map(e => e.getBoundingClientRect()).filter(b => b.height > 0).map(b => b.bottom);",
        node_el,
    )
    assert slots and root[1] >= max(slots) - 1, (root, slots)
    assert root[1] + root[3] >= node[1] + node[3] - 0.12 * node[3], ("editor does not reach the node's bottom", root, node)
    # the canvas is the big part of it (before the fix it shrank to its 160 px minimum: 14% of the node)
    assert stage[3] >= 0.45 * node[3], (stage, node)
    assert max(view[2] / stage[2], view[3] / stage[3]) > 0.95 and inside(view, stage), (view, stage)
    # three entity rows, each fully visible inside the editor, nothing drawn over them or the canvas
    assert len(rows) == 3 and all(r[2] > 100 and r[3] > 10 and inside(r, root) for r in rows), rows
    spots = [(0.1, 0.1), (0.5, 0.5), (0.9, 0.9)]
    hidden = uncovered(page, ed.q(".s2a-view"), spots)
    for r in ed.root.find_elements(By.CSS_SELECTOR, ".s2a-row .s2a-prompt"):
        hidden += uncovered(page, r, [(0.5, 0.5)])
    assert not hidden, hidden

    # token counts, as the builder counts them
    s = ed.summary()
    want = [t5_count(s["caption"])] + [t5_count(e["prompt"]) for e in s["entities"]]
    assert s["counts"] == want
    assert ed.tokens() == [f"{want[0]}/512"] + [f"{n}/50" for n in want[1:]]

    # painting with real pointer events: a brush stroke over background, with the first entity
    pos = page.js(f"return Array.from(app.graph.getNodeById({EXAMPLE_EDITOR}).pos);")
    first = s["entities"][0]["colour"]
    map0 = colour_map(ed.document())
    assert (map0[40:60, 40:300] == "").all()  # background where the stroke goes
    ed.q('.s2a-row[data-index="0"] .s2a-num').click()
    ed.tool("brush")
    ed.drag((50, 50), (290, 50), via=[(170, 50)])
    page.settle()
    page.screenshot("vue-nodes-painted")
    map1 = colour_map(ed.document())
    painted = map1 != map0
    assert painted.sum() > 200 * 12, painted.sum()  # a 240 px long stroke, radius 12
    assert set(map1[painted]) == {first}  # all of it the first entity
    assert (map1[50, 60:280] == first).all()  # along the whole stroke
    assert ed.summary()["entities"][0]["pixels"] == s["entities"][0]["pixels"] + int(painted.sum())
    # a drag inside the editor is the editor's: the node stays put (the brush-size slider too)
    slider = ed.q(".s2a-radius")
    ActionChains(page.driver).move_to_element_with_offset(slider, -20, 0).click_and_hold().move_by_offset(
        60, 30
    ).release().perform()
    page.settle()
    assert page.js(f"return Array.from(app.graph.getNodeById({EXAMPLE_EDITOR}).pos);") == pos
    assert page.js(f"return window.seg2anyLayoutEditors.get('{EXAMPLE_EDITOR}').radius;") > 12

    # saved and reloaded (still in Vue nodes): the painting is there
    painted_summary, tokens_before = ed.summary(), ed.tokens()
    workflow = json.loads(page.js("return JSON.stringify(app.graph.serialize());"))
    status, _ = page.server.post("/api/userdata/workflows%2Feditor_vue.json?overwrite=true", workflow)
    assert status == 200
    page.open()
    assert page.js("return LiteGraph.vueNodesMode;") is True
    reloaded = page.js_async("const r = await fetch('/api/userdata/workflows%2Feditor_vue.json'); return await r.json();")
    page.load_workflow(reloaded, "editor_vue")
    page.wait_for(f"window.seg2anyLayoutEditors.get('{EXAMPLE_EDITOR}').summary().entities.length === 3", 30, "reloaded layout")
    show_node(page, EXAMPLE_EDITOR)
    assert shows_its_own_editor(page, EXAMPLE_EDITOR)
    ed2 = Editor(page, EXAMPLE_EDITOR)
    ed2.wait_counts(4)
    assert ed2.tokens() == tokens_before
    page.screenshot("vue-nodes-reloaded")
    assert np.array_equal(colour_map(ed2.document()), map1)
    assert ed2.summary()["entities"] == painted_summary["entities"]
    node2 = rect(page, page.driver.find_element(By.CSS_SELECTOR, f'.lg-node[data-node-id="{EXAMPLE_EDITOR}"]'))
    assert rect(page, ed2.q(".s2a-stage"))[3] >= 0.45 * node2[3]


# ------------------------------------------------------------------------------------------------
# zoom about the pointer


def wheel_zoom(page, at, notches):
    """Ctrl+wheel as a user does it (real input from the driver), `notches` > 0 zooms in."""
    ActionChains(page.driver).key_down(Keys.CONTROL).scroll_from_origin(
        ScrollOrigin.from_viewport(int(at[0]), int(at[1])), 0, -100 * notches
    ).key_up(Keys.CONTROL).perform()
    page.settle()


def layout_xy_under(view, at, size):
    """The layout coordinates (float pixels) shown at client point `at` by a view at client rect `view`."""
    return ((at[0] - view[0]) / view[2] * size[0], (at[1] - view[1]) / view[3] * size[1])


def click_at(page, at):
    """A real left click at client point `at`."""
    ab = ActionBuilder(page.driver)
    ab.pointer_action.move_to_location(int(at[0]), int(at[1])).click()
    ab.perform()
    page.settle()


def test_wheel_zoom_keeps_the_pixel_under_the_pointer(any_nodes):
    page = any_nodes
    mode = "vue" if page.js("return !!LiteGraph.vueNodesMode;") else "classic"
    ed = add_editor(page)
    page.wait_stable()  # switching to Vue nodes can rescale the graph's layout (Comfy.VueNodes.AutoScaleLayout)
    show_node(page, ed.id)
    assert shows_its_own_editor(page, ed.id)
    size = (640, 480)
    ed.set_size(*size)
    ed.add("a marker")  # a brush dot under the pointer before each zoom shows where that pixel went
    ed.tool("brush")
    marker = ed.summary()["entities"][0]["colour"]
    for _ in range(2):  # zoomed in so the canvas overflows the stage both ways: it can scroll
        ed.q(".s2a-zoom-in").click()
    page.js("const s = arguments[0]; s.scrollLeft = s.scrollWidth / 5; s.scrollTop = s.scrollHeight / 4;", ed.q(".s2a-stage"))
    page.settle()
    page.screenshot(f"{mode}-zoomed-twice")
    stage = rect(page, ed.q(".s2a-stage"))
    graph_zoom = page.js("return app.canvas.ds.scale;")
    painted = np.zeros(size[::-1], bool)
    for k, (fx, fy, notches) in enumerate([(0.3, 0.6, 1), (0.7, 0.25, 1), (0.55, 0.7, -1)]):
        at = (round(stage[0] + fx * stage[2]), round(stage[1] + fy * stage[3]))
        click_at(page, at)
        dot = (colour_map(ed.document()) == marker) & ~painted
        painted |= dot
        ys, xs = np.nonzero(dot)
        centre = (xs.mean() + 0.5, ys.mean() + 0.5)  # the layout point the editor painted under the pointer
        before = rect(page, ed.q(".s2a-view"))
        assert np.hypot(*np.subtract(layout_xy_under(before, at, size), centre)) < 1.0, (centre, before, at)
        zoom = page.js(f"return window.seg2anyLayoutEditors.get('{ed.id}').zoom;")
        wheel_zoom(page, at, notches)
        after = rect(page, ed.q(".s2a-view"))
        page.screenshot(f"{mode}-wheel-{k}-dot-still-under-the-pointer")
        factor = 1.25**notches
        # the canvas grew (shrank) by one step; the graph itself did not zoom
        assert abs(after[2] / before[2] - factor) < 0.01 and abs(after[3] / before[3] - factor) < 0.01, (before, after)
        assert page.js(f"return window.seg2anyLayoutEditors.get('{ed.id}').zoom;") == pytest.approx(zoom * factor)
        assert page.js("return app.canvas.ds.scale;") == graph_zoom
        # the canvas scaled by the factor about the pointer (within a screen pixel) ...
        want_left = at[0] - (at[0] - before[0]) * factor
        want_top = at[1] - (at[1] - before[1]) * factor
        assert abs(after[0] - want_left) <= 1.0 and abs(after[1] - want_top) <= 1.0, (at, before, after)
        # ... so the painted dot's centre is still under the pointer
        px = after[2] / size[0]  # screen px per layout px
        off = np.subtract(layout_xy_under(after, at, size), centre) * px
        assert np.hypot(*off) <= 1.5, (off, centre, at, before, after)
