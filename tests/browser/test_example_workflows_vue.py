"""Every shipped example workflow in "Modern Node Design (Nodes 2.0)" (setting Comfy.VueNodes.Enabled,
user-facing from frontend 1.35 / ComfyUI 0.8.0, becoming the default): no two nodes drawn over each
other and none under the frontend's chrome, whether the example is opened with the mode on or the
mode is switched on with the example open.

In that mode the frontend scales a classic workflow's layout by 1.2 and draws each node as a DOM
element that grows to fit its content (a Markdown note shows all its text), so node.size says
little: the boxes checked are the client rects of the elements the Vue renderer draws
(``.lg-node[data-node-id]``), in canvas units. Screenshots under
test-artifacts/browser/<frontend>/<test>/."""

from __future__ import annotations

import glob
import json
import os

import pytest

from tests.conftest import ROOT

pytest.importorskip("selenium")
from tests.browser.test_layout_editor_view import set_vue_nodes, vue_nodes_on  # noqa: E402

EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "example_workflows", "*.json")))

# Each drawn node element as a canvas-space box [x, y, w, h] (screen = (canvas + offset) * scale +
# the canvas element's corner, as ComfyPage.to_screen), with its node's id and title.
JS_DRAWN_BOXES = """
const c = app.canvas, r = c.canvas.getBoundingClientRect(), s = c.ds.scale, o = c.ds.offset;
return [...document.querySelectorAll('.lg-node[data-node-id]')].map(e => {
  const b = e.getBoundingClientRect(), n = app.graph.getNodeById(e.dataset.nodeId);
  return {id: e.dataset.nodeId, title: n ? n.title : '(no node ' + e.dataset.nodeId + ')',
          box: [(b.left - r.left) / s - o[0], (b.top - r.top) / s - o[1], b.width / s, b.height / s]};
});"""


def drawn_boxes(page, tries=20) -> list[dict]:
    """The Vue-drawn node boxes once they stop changing (elements mount, measure and grow to fit
    their content over a few frames after a load)."""
    last = None
    for _ in range(tries):
        now = page.js(JS_DRAWN_BOXES)
        if now == last:
            return now
        last = now
        page.settle(frames=2, pause=0.4)
    return last


def check_drawn(page, wf, name, shot) -> None:
    boxes = drawn_boxes(page)
    ids = sorted(str(n["id"]) for n in wf["nodes"])
    assert sorted(b["id"] for b in boxes) == ids, f"{name}: drawn node elements {boxes} for nodes {ids} (see {shot})"
    empty = [f"{b['title']} (#{b['id']})" for b in boxes if b["box"][2] <= 0 or b["box"][3] <= 0]
    assert not empty, f"{name}: nodes not drawn: {empty} (see {shot})"
    problems = page.overlaps(boxes) + page.under_chrome(boxes)
    assert not problems, f"{name} in Vue nodes: " + "; ".join(problems) + f" (see {shot})"


@pytest.mark.parametrize("path", EXAMPLES, ids=[os.path.basename(p)[:-5] for p in EXAMPLES])
def test_example_opens_clean_in_vue_nodes(page, path):
    with open(path, encoding="utf-8") as f:
        wf = json.load(f)
    name = os.path.basename(path)[:-5]
    with vue_nodes_on(page):
        # a template opened with Nodes 2.0 on
        page.load_workflow(wf, name)
        check_drawn(page, wf, name, page.screenshot("opened-in-vue-nodes"))
        # Nodes 2.0 switched on with the example already open (the classic view first)
        set_vue_nodes(page, False)
        page.load_workflow(wf, name + " (classic first)")
        set_vue_nodes(page, True)
        page.wait_stable()
        check_drawn(page, wf, name + " (switched on while open)", page.screenshot("switched-to-vue-nodes"))
