"""The Layout Editor in the real frontend (headless Chromium, real ComfyUI with the pack): painted
with real pointer events, prompts typed, token counts read, the demo model run through the painted
layout, the workflow saved and reloaded, the official example imported, 25 entities painted.
Every step leaves a screenshot under test-artifacts/browser/<frontend>/<test>/."""

from __future__ import annotations

import base64
import glob
import io
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from seg2any.conditioning.t5_tokens import T5Tokenizer
from seg2any.layout.editor_document import hex_color, parse_document
from seg2any.layout.layout import layout_from_segmentation
from tests.conftest import ROOT, SHARED

pytest.importorskip("selenium")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402


def demo_workflow() -> dict:
    """The shipped demo workflow (the one built on 'Load Seg2Any Demo Model'), whatever its file name."""
    for path in sorted(glob.glob(os.path.join(ROOT, "example_workflows", "*.json"))):
        with open(path, encoding="utf-8") as f:
            wf = json.load(f)
        if any(n.get("type") == "Seg2AnyDemoModelLoader" for n in wf.get("nodes", [])):
            return wf
    raise AssertionError("no example workflow uses Seg2AnyDemoModelLoader")


EXAMPLES = os.path.join(SHARED, "data", "seg2any-examples")
SPIECE = os.path.join(ROOT, "seg2any", "demo", "spiece.model")
SIZE = 128  # the demo model's layouts

# the `page` fixture (a freshly opened frontend on the session's ComfyUI + Chromium) is in conftest.py


# ------------------------------------------------------------------------------------------------
# driving the editor


class Editor:
    """One Layout Editor node on the page, driven through its DOM with real pointer events."""

    def __init__(self, page, node_id):
        self.page = page
        self.id = node_id
        self.root = page.driver.find_element(By.CSS_SELECTOR, f'.s2a-editor[data-node-id="{node_id}"]')

    def q(self, sel):
        return self.root.find_element(By.CSS_SELECTOR, sel)

    def summary(self):
        return self.page.js("return window.seg2anyLayoutEditors.get(String(arguments[0])).summary();", self.id)

    def set_size(self, w, h):
        for sel, v in ((".s2a-width", w), (".s2a-height", h)):
            box = self.q(sel)
            box.clear()
            box.send_keys(str(v))
        self.q(".s2a-resize").click()

    def point(self, x, y):
        """Offset from the canvas centre of layout pixel (x, y), from the rect the user sees."""
        r = self.page.js("const r = arguments[0].getBoundingClientRect(); return [r.width, r.height];", self.q(".s2a-view"))
        s = self.summary()
        return (x + 0.5) / s["width"] * r[0] - r[0] / 2, (y + 0.5) / s["height"] * r[1] - r[1] / 2

    def tool(self, name):
        self.q(f'[data-tool="{name}"]').click()

    def drag(self, a, b, via=()):
        view = self.q(".s2a-view")
        ac = ActionChains(self.page.driver).move_to_element_with_offset(view, *self.point(*a)).click_and_hold()
        for p in (*via, b):
            ac = ac.move_to_element_with_offset(view, *self.point(*p))
        ac.release().perform()

    def click(self, p):
        ActionChains(self.page.driver).move_to_element_with_offset(self.q(".s2a-view"), *self.point(*p)).click().perform()

    def add(self, prompt):
        """+ Entity, then type its prompt; the new entity is the active row, the last in the list."""
        self.q(".s2a-add").click()
        self.q(".s2a-row.s2a-active .s2a-prompt").send_keys(prompt)

    def tokens(self):
        return [e.get_attribute("textContent") for e in self.root.find_elements(By.CSS_SELECTOR, ".s2a-tokens")]

    def wait_counts(self, n_texts):
        self.page.wait_for(
            f"(() => {{ const s = window.seg2anyLayoutEditors.get('{self.id}').summary(); "
            f"return s.counts && s.counts.length === {n_texts} && "
            "JSON.stringify(s.counts.slice(1)) !== 'null'; })()",
            30,
            "token counts",
        )
        self.page.settle()

    def exported(self) -> tuple[bytes, str]:
        """The official PNG + JSON the Export button downloads (the same blobs, read in the page)."""
        png_b64, text = self.page.js_async(
            """const f = await window.seg2anyLayoutEditors.get(String(args[0])).officialFiles();
            const b = new Uint8Array(await f.png.arrayBuffer()); let s = ""; for (const x of b) s += String.fromCharCode(x);
            return [btoa(s), f.json];""",
            self.id,
        )
        return base64.b64decode(png_b64), text

    def document(self):
        return self.page.js(
            "return app.graph.getNodeById(arguments[0]).widgets.find(w => w.name === 'layout').value;",
            self.id,
        )


def add_editor(page, pos=(0, 0)):
    nid = page.js(
        """app.graph.clear(); const n = LiteGraph.createNode("Seg2AnyLayoutEditor"); n.pos = arguments[0]; app.graph.add(n); return n.id;""",
        list(pos),
    )
    show_node(page, nid)
    return Editor(page, nid)


def show_node(page, nid):
    """Put the whole node in view: right of the side bar, under the top bar, scaled to fit the height."""
    chrome = page.chrome_rects()
    left = max([r["rect"][0] + r["rect"][2] for r in chrome["side bar"]] + [0]) + 30
    top = max([r["rect"][1] + r["rect"][3] for r in chrome["top bar"]] + [0]) + 50
    height = page.js(  # a Vue-rendered node (Nodes 2.0) can be drawn larger than node.size: its auto-scaled layout
        """const el = document.querySelector(`.lg-node[data-node-id="${arguments[0]}"]`);
        return el ? el.getBoundingClientRect().height / app.canvas.ds.scale + 10 : app.graph.getNodeById(arguments[0]).size[1] + 40;""",
        nid,
    )
    scale = min(0.9, (page.view()["viewport"][1] - top - 10) / height)
    page.js(
        """const n = app.graph.getNodeById(arguments[0]), c = app.canvas, r = c.canvas.getBoundingClientRect();
        c.ds.scale = arguments[3];
        c.ds.offset = [(arguments[1] - r.left) / arguments[3] - n.pos[0], (arguments[2] - r.top) / arguments[3] - n.pos[1]];
        c.setDirty(true, true);""",
        nid,
        left,
        top,
        scale,
    )
    page.settle()


def t5_count(text):
    tok = T5Tokenizer(SPIECE)
    return len(tok.ids(text.strip())) if text.strip() else 0


def run_and_wait(page, timeout=600):
    """Queue the open workflow as the Run button does and wait for its history entry."""
    server = page.server
    before = set(server.get("/history"))
    page.js_async("await app.queuePrompt(0, 1);")
    deadline = time.time() + timeout
    while time.time() < deadline:
        new = set(server.get("/history")) - before
        if new:
            entry = server.get("/history")[new.pop()]
            return entry
        time.sleep(1)
    raise TimeoutError(f"no result in {timeout}s:\n{server.tail()}")


def images_of(entry, server, node_type_outputs):
    out = []
    for nid, o in entry["outputs"].items():
        if nid in node_type_outputs:
            out += [server.output_path(im) for im in o.get("images", [])]
    return out


# ------------------------------------------------------------------------------------------------


THREE = [  # (prompt, tool, points, expected dominant channel of the generated pixels)
    ("a blue striped square", "rect", [(10, 10), (58, 58)], 2),
    ("an orange striped circle", "ellipse", [(66, 12), (118, 64)], 0),
    ("a plain green diamond", "polygon", [(64, 70), (100, 96), (64, 122), (28, 96)], 1),
]
CAPTION = "a blue striped square, an orange striped circle and a plain green diamond on a black background"


def paint_three(ed):
    ed.set_size(SIZE, SIZE)
    for prompt, tool, pts, _ in THREE:
        ed.add(prompt)
        ed.tool(tool)
        if tool == "polygon":
            for p in pts:
                ed.click(p)
            ed.click(pts[0])  # clicking the first point closes the polygon
        else:
            ed.drag(pts[0], pts[1])
    ed.q(".s2a-caption").send_keys(CAPTION)
    ed.wait_counts(4)


def test_paint_three_entities_and_run_the_demo(page, tmp_path):
    page.load_workflow(demo_workflow(), "seg2any_demo")
    page.screenshot("demo-workflow-opened")
    nid = page.js(  # a fresh editor in place of the workflow's layout source (file loader or editor)
        """const old = app.graph._nodes.find(x => x.type === "Seg2AnyLoadLayout" || x.type === "Seg2AnyLayoutEditor");
        const b = app.graph._nodes.find(x => x.type === "Seg2AnyRegionalPromptBuilder");
        const n = LiteGraph.createNode("Seg2AnyLayoutEditor");
        n.pos = [Math.min(...app.graph._nodes.map(x => x.pos[0])) - 700, old.pos[1]];
        app.graph.remove(old);
        app.graph.add(n);
        n.connect(0, b, b.findInputSlot("segmentation"));
        n.connect(1, b, b.findInputSlot("segments"));
        return n.id;"""
    )
    show_node(page, nid)
    ed = Editor(page, nid)
    paint_three(ed)
    s = ed.summary()
    page.screenshot("three-entities-painted")

    # what was painted: the exact areas of the shapes, the prompts, the counts the builder would use
    assert sorted(e["prompt"] for e in s["entities"]) == sorted(t[0] for t in THREE)
    assert [e["prompt"] for e in s["entities"]] == [t[0] for t in THREE]  # the order they were added in
    by_prompt = {e["prompt"]: e for e in s["entities"]}
    px = [by_prompt[t[0]]["pixels"] for t in THREE]
    assert px[0] == 49 * 49  # pixels 10..58 inclusive on both axes
    assert abs(px[1] - np.pi * 26 * 26) < 0.05 * px[1]  # the ellipse inscribed in a 52 x 52 drag
    assert abs(px[2] - 72 * 52 / 2) < 0.05 * px[2]  # a rhombus with diagonals 72 and 52
    assert s["counts"] == [t5_count(CAPTION)] + [t5_count(e["prompt"]) for e in s["entities"]]
    shown = ed.tokens()
    assert shown == [f"{t5_count(CAPTION)}/512"] + [f"{t5_count(e['prompt'])}/50" for e in s["entities"]]

    entry = run_and_wait(page)
    assert entry["status"]["status_str"] == "success", entry["status"]
    page.settle(pause=1.5)
    page.screenshot("demo-run-finished")
    save_id = page.js("return String(app.graph._nodes.find(x => x.type === 'SaveImage').id);")
    show_node(page, int(save_id))
    page.screenshot("demo-result-image")
    (img_path,) = images_of(entry, page.server, {save_id})
    with Image.open(img_path) as im:
        img = np.asarray(im.convert("RGB"), np.float64)
    assert img.shape == (SIZE, SIZE, 3)

    # the image follows the painted layout: inside each shape the prompted colour dominates
    doc = parse_document(ed.document())
    background = doc.labels == 0
    for prompt, _, _, channel in THREE:
        mask = doc.labels == 1 + [e.prompt for e in doc.entities].index(prompt)
        mean = img[mask].mean(axis=0)
        assert int(np.argmax(mean)) == channel, (prompt, mean)
        assert img[mask].mean() > img[background].mean() + 20, prompt  # the shape is drawn, not left black

    # and it is the image the command line draws from the exported official PNG + JSON
    png, text = ed.exported()
    (tmp_path / "painted.png").write_bytes(png)
    (tmp_path / "painted.json").write_text(text)
    sampler = page.js("return app.graph._nodes.find(x => x.type === 'Seg2AnyMaskedFluxSampler').widgets_values.slice(0, 3);")
    cli = tmp_path / "cli.png"
    r = subprocess.run(
        [sys.executable, "-m", "seg2any", "generate", str(tmp_path / "painted.json"), "--out", str(cli),
         "--steps", str(sampler[2]), "--seed", str(sampler[0])],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    with Image.open(cli) as im:
        ref = np.asarray(im.convert("RGB"), np.float64)
    assert np.abs(img - ref).mean() < 1.5, np.abs(img - ref).mean()


def test_saved_workflow_reloads_with_the_same_layout(page):
    ed = add_editor(page)
    paint_three(ed)
    ed.tool("brush")
    ed.drag((5, 120), (60, 110), via=[(30, 100)])  # a brush stroke over background, entity 3 active
    ed.tool("eraser")
    ed.drag((20, 20), (40, 40))  # an eraser stroke through the square
    before = ed.summary()
    doc_before = ed.document()
    page.screenshot("painted-before-save")
    workflow = json.loads(page.js("return JSON.stringify(app.graph.serialize());"))  # what Save writes
    stored = json.dumps(workflow)
    assert doc_before in [w for n in workflow["nodes"] if n["type"] == "Seg2AnyLayoutEditor" for w in n["widgets_values"]]
    assert len(stored) < 60_000, len(stored)  # the painting travels inside the workflow, compactly

    # save as a user workflow file (what the Save command writes), reload the page, open it again
    status, _ = page.server.post("/api/userdata/workflows%2Feditor_saved.json?overwrite=true", workflow)
    assert status == 200
    page.open()
    reloaded = page.js_async("const r = await fetch('/api/userdata/workflows%2Feditor_saved.json'); return await r.json();")
    page.load_workflow(reloaded, "editor_saved")
    nid = page.js("return app.graph._nodes.find(x => x.type === 'Seg2AnyLayoutEditor').id;")
    show_node(page, nid)
    ed2 = Editor(page, nid)
    page.wait_for(f"window.seg2anyLayoutEditors.get('{nid}').summary().entities.length === 3", 30, "layout decoded")
    ed2.wait_counts(4)
    page.screenshot("reloaded")
    after = ed2.summary()
    for k in ("width", "height", "caption", "entities", "counts"):
        assert after[k] == before[k], k
    a, b = parse_document(doc_before), parse_document(ed2.document())
    assert np.array_equal(a.labels, b.labels) and a.entities == b.entities

    # undo / redo work on the reloaded layout too
    ed2.tool("fill")
    ed2.click((2, 2))  # fill the background with the active entity
    filled = ed2.summary()["entities"][0]["pixels"]
    assert filled > SIZE * SIZE // 2
    ed2.q(".s2a-undo").click()
    assert ed2.summary()["entities"] == before["entities"]
    ed2.q(".s2a-redo").click()
    assert ed2.summary()["entities"][0]["pixels"] == filled
    page.screenshot("fill-undo-redo")

    # moving an entity down keeps its colour and pixels: only the order changes
    ents = ed2.summary()["entities"]
    ed2.q('.s2a-row[data-index="0"] .s2a-down').click()
    moved = ed2.summary()["entities"]
    assert moved == [ents[1], ents[0], ents[2]]
    ed2.q('.s2a-row[data-index="2"] .s2a-eye').click()  # hide the last one: it keeps its place number
    assert [r.get_attribute("textContent") for r in ed2.root.find_elements(By.CSS_SELECTOR, ".s2a-num")] == ["1", "2", "3"]
    assert "s2a-hidden" in ed2.q('.s2a-row[data-index="2"]').get_attribute("class")
    page.screenshot("reordered-and-hidden")

    # zoom: the canvas grows by 1.25 per step and scrolls inside the editor; Fit brings it back
    width = lambda: page.js("return arguments[0].getBoundingClientRect().width;", ed2.q(".s2a-view"))  # noqa: E731
    fit = width()
    for _ in range(3):
        ed2.q(".s2a-zoom-in").click()
    page.settle()
    assert abs(width() / fit - 1.25**3) < 0.02 and ed2.q(".s2a-zoom-label").get_attribute("textContent") == "195%"
    stage = page.js("const s = arguments[0]; return [s.scrollWidth, s.clientWidth];", ed2.q(".s2a-stage"))
    assert stage[0] > stage[1]  # wider than the editor: it scrolls
    page.screenshot("zoomed-in")
    ed2.q(".s2a-zoom-fit").click()
    page.settle()
    assert abs(width() - fit) < 1


def official_layout(name):
    with open(os.path.join(EXAMPLES, name + ".json")) as f:
        spec = json.load(f)
    with Image.open(os.path.join(EXAMPLES, name + ".png")) as im:
        rgb = np.asarray(im.convert("RGB"))
    return spec, layout_from_segmentation(rgb, spec)


@pytest.mark.parametrize("name", ["20_circular_badges"])
def test_import_the_official_example_by_file_and_export_it(page, name):
    spec, want = official_layout(name)
    ed = add_editor(page)
    ed.q(".s2a-import-input").send_keys(os.path.join(EXAMPLES, name + ".png") + "\n" + os.path.join(EXAMPLES, name + ".json"))
    n = len(spec["segments_info"])
    page.wait_for(f"window.seg2anyLayoutEditors.get('{ed.id}').summary().entities.length === {n}", 30, "import")
    ed.wait_counts(n + 1)
    page.screenshot("imported")
    s = ed.summary()
    assert (s["width"], s["height"]) == Image.open(os.path.join(EXAMPLES, name + ".png")).size
    assert s["caption"] == spec["caption"]
    # listed in the file's order, each with its colour's pixels
    assert [e["prompt"] for e in s["entities"]] == [x["text"].strip() for x in spec["segments_info"]]
    area = {hex_color(e.color): e.area for e in want.entities}
    assert [e["pixels"] for e in s["entities"]] == [area[e["colour"]] for e in s["entities"]]
    assert [r.get_attribute("textContent") for r in ed.root.find_elements(By.CSS_SELECTOR, ".s2a-num")][:3] == ["1", "2", "3"]
    # the node's outputs build the same layout as the official files
    doc = parse_document(ed.document())
    from seg2any.layout.editor_document import official_outputs

    rgb, segments, caption = official_outputs(doc)
    got = layout_from_segmentation(rgb, segments)
    assert [e.prompt for e in got.entities] == [e.prompt for e in want.entities]
    assert all(np.array_equal(a.mask, b.mask) for a, b in zip(got.entities, want.entities))
    # export gives the official pair back
    png, text = ed.exported()
    exported = layout_from_segmentation(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")), text)
    assert all(np.array_equal(a.mask, b.mask) for a, b in zip(exported.entities, want.entities))


def test_drop_the_official_pair_on_the_editor(page):
    spec, want = official_layout("animals")
    ed = add_editor(page)
    payload = {}
    for ext, mime in (("png", "image/png"), ("json", "application/json")):
        with open(os.path.join(EXAMPLES, "animals." + ext), "rb") as f:
            payload[ext] = (base64.b64encode(f.read()).decode(), mime)
    page.js(
        """const [root, files] = arguments, dt = new DataTransfer();
        for (const [ext, [b64, mime]] of Object.entries(files)) {
          const bin = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
          dt.items.add(new File([bin], "animals." + ext, {type: mime}));
        }
        for (const type of ["dragenter", "dragover", "drop"])
          root.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: dt}));""",
        ed.root,
        payload,
    )
    page.wait_for(f"window.seg2anyLayoutEditors.get('{ed.id}').summary().entities.length === 3", 30, "drop import")
    ed.wait_counts(4)
    page.screenshot("dropped-animals")
    s = ed.summary()
    assert sorted((e["prompt"], e["pixels"]) for e in s["entities"]) == sorted((e.prompt, e.area) for e in want.entities)
    assert page.js("return app.graph._nodes.length;") == 1  # ComfyUI did not open the PNG as a workflow
    assert s["counts"] == [t5_count(spec["caption"])] + [t5_count(e["prompt"]) for e in s["entities"]]
    assert not ed.root.find_elements(By.CSS_SELECTOR, ".s2a-entity-tokens.s2a-over")
    # a prompt pushed over the 50 tokens the builder accepts is flagged while typing
    k = int(np.argmax(s["counts"][1:]))  # the longest prompt
    ed.q(f'.s2a-row[data-index="{k}"] .s2a-prompt').send_keys(
        " With sparks, smoke and embers swirling in the hot night air all around."
    )
    page.wait_for(f"window.seg2anyLayoutEditors.get('{ed.id}').summary().counts[{k + 1}] > 50", 30, "over-long count")
    page.settle()
    flagged = ed.q(f'.s2a-row[data-index="{k}"] .s2a-tokens')
    assert "s2a-over" in flagged.get_attribute("class") and int(flagged.get_attribute("textContent").split("/")[0]) > 50
    page.screenshot("prompt-over-50-tokens")


def test_paint_25_entities_and_build_them(page):
    ed = add_editor(page)
    ed.set_size(320, 320)
    for k in range(25):
        r, c = divmod(k, 5)
        ed.add(f"entity number {k + 1}, a small {['red', 'green', 'blue', 'yellow', 'purple'][c]} tile")
        ed.tool(["rect", "ellipse", "brush", "rect", "polygon"][c])
        x0, y0 = 8 + 64 * c, 8 + 64 * r
        if c == 2:
            ed.drag((x0 + 6, y0 + 6), (x0 + 40, y0 + 40), via=[(x0 + 40, y0 + 6)])
        elif c == 4:
            for p in [(x0 + 24, y0), (x0 + 48, y0 + 24), (x0 + 24, y0 + 48), (x0, y0 + 24)]:
                ed.click(p)
            ed.q(".s2a-view").send_keys("\n")  # Enter closes the polygon
        else:
            ed.drag((x0, y0), (x0 + 48, y0 + 48))
    ed.wait_counts(26)
    page.screenshot("25-entities-painted")
    s = ed.summary()
    assert len(s["entities"]) == 25 and len({e["colour"] for e in s["entities"]}) == 25
    assert all(e["pixels"] > 300 for e in s["entities"]), [e["pixels"] for e in s["entities"]]
    assert s["counts"][1:] == [t5_count(e["prompt"]) for e in s["entities"]]
    assert ed.tokens()[1:] == [f"{c}/50" for c in s["counts"][1:]]

    # the builder (demo text encoder) takes all 25 and the preview shows them
    page.js(
        """const ed = app.graph.getNodeById(arguments[0]);
        const mk = (t, x, y) => { const n = LiteGraph.createNode(t); n.pos = [x, y]; app.graph.add(n); return n; };
        const m = mk("Seg2AnyDemoModelLoader", ed.pos[0] + 640, ed.pos[1]);
        const b = mk("Seg2AnyRegionalPromptBuilder", ed.pos[0] + 640, ed.pos[1] + 200);
        const p = mk("Seg2AnyLayoutPreview", b.pos[0] + b.size[0] + 60, ed.pos[1]);
        p.setSize([640, 700]);
        const t = mk("EmptyImage", ed.pos[0] + 640, b.pos[1] + b.size[1] + 80);
        for (const [k, v] of [["width", 160], ["height", 160], ["color", 0x4080c0]]) t.widgets.find(w => w.name === k).value = v;
        t.connect(0, ed, ed.findInputSlot("trace"));
        m.connect(1, b, b.findInputSlot("clip"));
        ed.connect(0, b, b.findInputSlot("segmentation"));
        ed.connect(1, b, b.findInputSlot("segments"));
        b.connect(0, p, p.findInputSlot("layout"));""",
        ed.id,
    )
    entry = run_and_wait(page)
    assert entry["status"]["status_str"] == "success", entry["status"]
    report = "".join(next(o["text"] for o in entry["outputs"].values() if "text" in o))
    assert all(f"entity number {k + 1}," in report for k in range(25))
    # the connected trace image came back after the run and lies under the painting
    page.wait_for(f"window.seg2anyLayoutEditors.get('{ed.id}').summary().trace", 30, "trace image shown")
    assert ed.summary()["trace"] == [160, 160]
    show_node(page, ed.id)
    page.screenshot("trace-image-under-the-painting")
    show_node(page, page.js("return app.graph._nodes.find(x => x.type === 'Seg2AnyLayoutPreview').id;"))
    page.settle(pause=1.0)
    page.screenshot("25-entities-built-and-previewed")
