"""Every shipped example workflow opened in the live frontend, judged the way a user sees it: node
types all known, no node box (title bar included) overlapping another, nothing under the top bar,
tab bar or side bar when the workflow opens, the builder's report shown by a node, text boxes tall
enough to read a prompt, and the templates listed with readable titles and thumbnails."""

from __future__ import annotations

import glob
import json
import os

import pytest

from tests.conftest import ROOT

EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "example_workflows", "*.json")))
TEXT_LINES = 4  # prompt boxes show at least this many lines of text when the workflow opens


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def test_pinned_frontend_is_served(page, comfy_browser):
    _, _, version = comfy_browser
    assert page.js("return window.__COMFYUI_FRONTEND_VERSION__;") == version
    page.screenshot("empty-canvas")


@pytest.mark.parametrize("path", EXAMPLES, ids=[os.path.basename(p)[:-5] for p in EXAMPLES])
def test_example_opens_clean(page, path):
    wf = load(path)
    name = os.path.basename(path)[:-5]
    page.load_workflow(wf, name)
    shot = page.screenshot("opened")
    boxes = page.node_boxes()

    unknown = sorted({n["type"] for n in wf["nodes"] if not page.registered(n["type"])})
    assert not unknown, f"{name}: node types missing in the frontend: {unknown} (see {shot})"
    broken = [f"{n['title']} (#{n['id']})" for n in boxes if n["has_errors"]]
    assert not broken, f"{name}: nodes loaded with errors: {broken}"
    assert len(boxes) == len(wf["nodes"]), f"{name}: {len(boxes)} nodes in the graph, {len(wf['nodes'])} in the file"

    overlaps = page.overlaps(boxes)
    assert not overlaps, f"{name}: " + "; ".join(overlaps) + f" (see {shot})"
    hidden = page.under_chrome(boxes)
    assert not hidden, f"{name}: " + "; ".join(hidden) + f" (see {shot})"


@pytest.mark.parametrize("path", EXAMPLES, ids=[os.path.basename(p)[:-5] for p in EXAMPLES])
def test_builder_report_is_shown_and_prompt_boxes_are_tall(page, path):
    wf = load(path)
    page.load_workflow(wf, os.path.basename(path)[:-5])
    # the builder's second output (report) feeds a node that shows text
    shown = page.js(
        """
        const out = [];
        for (const n of app.graph._nodes.filter(n => n.type === 'Seg2AnyRegionalPromptBuilder')) {
          const links = (n.outputs[1] && n.outputs[1].links) || [];
          out.push(links.map(id => app.graph.getNodeById(app.graph.links[id].target_id).type));
        }
        return out;"""
    )
    assert shown, "no Regional Prompt Builder in the example"
    assert all("PreviewAny" in targets for targets in shown), f"builder report goes to {shown}, not to a Preview Any node"
    # every prompt box of every Seg2Any node shows TEXT_LINES lines at the canvas' own scale
    boxes = page.js(
        """
        const out = [];
        for (const n of app.graph._nodes) {
          if (!n.type.startsWith('Seg2Any')) continue;
          for (const w of n.widgets || []) {
            const el = w.inputEl || w.element;
            if (!el || el.tagName !== 'TEXTAREA') continue;
            const line = parseFloat(getComputedStyle(el).lineHeight) || 1.2 * parseFloat(getComputedStyle(el).fontSize);
            out.push({node: n.title, widget: w.name, lines: el.getBoundingClientRect().height / line});
          }
        }
        return out;"""
    )
    short = [f"{b['node']}.{b['widget']}: {b['lines']:.1f} lines" for b in boxes if b["lines"] < TEXT_LINES]
    page.screenshot("prompt-boxes")
    assert boxes and not short, f"prompt boxes shorter than {TEXT_LINES} lines: {short}"


def test_templates_have_readable_titles_and_thumbnails(page):
    listed = page.server.get("/workflow_templates")
    ours = next(v for k, v in listed.items() if k == "seg2any-nodes")
    assert sorted(ours) == sorted(os.path.basename(p)[:-5] for p in EXAMPLES)
    for name in ours:  # a title says what it is and what it needs (the frontend shows the file name)
        assert name.startswith("Seg2Any ") and ("FLUX.1-dev" in name or "CPU" in name), name
        assert "_" not in name, f"{name}: the template browser shows file names verbatim"
    page.js("app.extensionManager.command.execute('Comfy.BrowseTemplates');")
    page.wait_for("document.querySelector('.p-dialog')", 30, "template browser")
    # open our module's list (1.27: 'seg2any-nodes' under Custom Nodes; 1.35: under Extensions)
    page.js_async(
        """
        for (let i = 0; i < 40; i++) {
          const items = [...document.querySelectorAll('.p-dialog *')].filter(e =>
            e.children.length === 0 && e.textContent.trim() === 'seg2any-nodes');
          if (items.length) { items[0].click(); break; }
          const ext = [...document.querySelectorAll('.p-dialog *')].find(e =>
            e.children.length === 0 && e.textContent.trim() === 'Extensions');
          if (ext) ext.click();
          await new Promise(r => setTimeout(r, 250));
        }"""
    )
    page.wait_for(
        "[...document.querySelectorAll('.p-dialog img')].filter(i => i.src.includes('/workflow_templates/seg2any-nodes/')"
        f" && i.complete && i.naturalWidth > 0).length >= {len(ours)}",
        30,
        "our template thumbnails",
    )
    page.settle(pause=1.0)
    page.screenshot("template-browser")
    text = page.js("return document.querySelector('.p-dialog').innerText;")
    for name in ours:
        assert name in text, f"template {name!r} not shown in the template browser"
