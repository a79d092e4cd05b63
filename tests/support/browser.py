"""Drive the real ComfyUI frontend in Debian's headless Chromium through selenium.

The browser tier checks what a user sees: workflows opened in the live frontend, node boxes read
from the live graph, DOM rects of the frontend's own chrome (top bar, tab bar, side bar), and a
screenshot of every step under ``test-artifacts/browser/<frontend version>/<test>/``.

Nothing is downloaded at test time: chromium and chromedriver are the Debian packages, the
frontend is the ``comfyui-frontend-package`` version the ComfyUI snapshot pins, either installed
in the venv or unpacked with ``pip install --target .cache/frontends/<version>`` (each ComfyUI
snapshot pins a different one, and the venv can hold only one).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time

from tests.support import comfy_kit as kit
from tests.support.server import ROOT

CHROMIUM = os.environ.get("SEG2ANY_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SEG2ANY_CHROMEDRIVER", "/usr/bin/chromedriver")
ARTIFACTS = os.environ.get("SEG2ANY_BROWSER_ARTIFACTS", os.path.join(ROOT, "test-artifacts", "browser"))
WINDOW = (1600, 1000)
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)

# Frontend settings of a fresh test user: no first-run template browser or release popups over
# the canvas, so the screenshot shows the workflow the way a returning user opens it.
USER_SETTINGS = {
    "Comfy.TutorialCompleted": True,
    "Comfy.Release.Version": "99.0.0",
    "Comfy.Release.Status": "skipped",
    "Comfy.Release.Timestamp": 4102444800000,
    "Comfy.InstalledVersion": "99.0.0",
    # the classic canvas, which frontend 1.49 no longer defaults to; the Vue-nodes tests switch Nodes 2.0 on
    "Comfy.VueNodes.Enabled": False,
    "Comfy.RightSidePanel.IsOpen": False,  # 1.49's side panel, closed as for a new user
}


# ------------------------------------------------------------------------------------------------
# prerequisites


def frontend_problem(comfy_path: str) -> tuple[str | None, str]:
    """(problem or None, frontend version): the server must serve the frontend the checkout pins."""
    want = kit.pinned(comfy_path).get("comfyui-frontend-package")
    have = kit.installed_version(comfy_path, "comfyui-frontend-package")
    if want is None:
        return f"cannot read the pinned comfyui-frontend-package from {comfy_path}/requirements.txt", have or "?"
    if have != want:
        return (
            f"ComfyUI at {comfy_path} pins comfyui-frontend-package=={want} but the server would get {have}; unpack the "
            f"pinned packages with: {kit.install_command(comfy_path)}",
            want,
        )
    return None, want


def frontend_args(comfy_path: str) -> tuple[list[str], str | None, str]:
    """(extra server args, problem or None, frontend version). The pinned frontend reaches the server
    through the kit on PYTHONPATH (server.py), so no extra argument is needed today."""
    problem, version = frontend_problem(comfy_path)
    return [], problem, version


def missing_prerequisites() -> list[str]:
    """What stops the browser tier here (empty: it can run)."""
    missing = []
    for path, pkg in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            missing.append(f"{path} (apt-get install {pkg})")
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install selenium)")
    return missing


# ------------------------------------------------------------------------------------------------
# the browser


def start_chromium(window=WINDOW):
    """A fresh headless Chromium (own profile directory) driven by the Debian chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="seg2any-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={profile}")
    opts.add_argument(f"--window-size={window[0]},{window[1]}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=CHROMEDRIVER))
    driver.set_script_timeout(120)
    driver.seg2any_profile = profile
    return driver


def stop_chromium(driver) -> None:
    try:
        driver.quit()
    finally:
        shutil.rmtree(getattr(driver, "seg2any_profile", ""), ignore_errors=True)


def seed_user_settings(base_dir: str) -> None:
    """Write the test user's frontend settings before the server starts (single-user mode)."""
    d = os.path.join(base_dir, "user", "default")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "comfy.settings.json"), "w", encoding="utf-8") as f:
        json.dump(USER_SETTINGS, f)


# ------------------------------------------------------------------------------------------------
# page helpers (JavaScript run in the live frontend)

# Boxes in canvas space [x, y, w, h] including the title bar, as the frontend hit-tests them.
JS_NODE_BOXES = """
const T = (window.LiteGraph && LiteGraph.NODE_TITLE_HEIGHT) || 30;
return app.graph._nodes.map(n => {
  let b = null;
  if (n.boundingRect && n.boundingRect.length === 4) b = Array.from(n.boundingRect);
  else if (n.getBounding) b = Array.from(n.getBounding());
  const own = [n.pos[0], n.pos[1] - T, n.size[0], n.size[1] + T];
  return {id: n.id, type: n.type, title: n.title, pos: Array.from(n.pos), size: Array.from(n.size),
          box: b || own, own: own, collapsed: !!(n.flags && n.flags.collapsed),
          registered: !!LiteGraph.registered_node_types[n.type], has_errors: !!n.has_errors};
});
"""

# Canvas -> screen: screen = (canvas + offset) * scale + the canvas element's client rect.
JS_VIEW = """
const c = app.canvas, el = c.canvas, r = el.getBoundingClientRect();
return {scale: c.ds.scale, offset: Array.from(c.ds.offset), canvas: [r.left, r.top, r.width, r.height],
        viewport: [window.innerWidth, window.innerHeight]};
"""

# The frontend's chrome that covers the canvas: top menu / tab bar, side bar (all versions tested).
CHROME_SELECTORS = {
    "top bar": [
        ".comfyui-body-top",
        ".comfyui-menu",
        ".workflow-tabs-container",
        ".top-menu-bar",
        ".actionbar",
        ".comfyui-queue-button",
    ],
    "side bar": [".side-tool-bar-container", ".side-bar-panel", ".comfyui-body-left"],
}

# The part of the window where the graph shows unobstructed (right of the side bar, below the top bar).
CANVAS_AREA_SELECTORS = [".graph-canvas-panel", ".splitter-overlay-root"]

JS_CANVAS_AREA = """
for (const s of arguments[0]) for (const e of document.querySelectorAll(s)) {
  const r = e.getBoundingClientRect();
  if (r.width > 0 && r.height > 0) return {selector: s, rect: [r.left, r.top, r.width, r.height]};
}
return null;
"""

JS_CHROME = """
const sel = arguments[0], out = {};
for (const [name, list] of Object.entries(sel)) {
  out[name] = [];
  for (const s of list) for (const e of document.querySelectorAll(s)) {
    const r = e.getBoundingClientRect(), st = getComputedStyle(e);
    if (r.width > 0 && r.height > 0 && st.visibility !== 'hidden' && st.display !== 'none')
      out[name].push({selector: s, rect: [r.left, r.top, r.width, r.height]});
  }
}
return out;
"""


def intersect(a, b) -> float:
    """Area shared by two [x, y, w, h] rectangles (0 when they only touch)."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


class ComfyPage:
    """One Chromium tab on a running ComfyUI server, with screenshots kept as test artifacts."""

    def __init__(self, driver, server, frontend: str, artifacts_dir: str):
        self.driver = driver
        self.server = server
        self.frontend = frontend
        self.artifacts = artifacts_dir
        self.step = 0
        shutil.rmtree(artifacts_dir, ignore_errors=True)  # a rerun's steps replace the last run's
        os.makedirs(artifacts_dir, exist_ok=True)

    # -- basics --------------------------------------------------------------------------------
    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def js_async(self, body: str, *args):
        """Run an async function body (may ``await``); its return value comes back, a throw raises."""
        script = (
            "const done = arguments[arguments.length - 1];"
            f"(async (...args) => {{ {body} }})(...Array.from(arguments).slice(0, -1))"
            ".then(v => done({ok: v === undefined ? null : v}), e => done({error: String(e && e.stack || e)}));"
        )
        res = self.driver.execute_async_script(script, *args)
        if res is None or "error" in res:
            raise RuntimeError(f"in the page: {res and res['error']}")
        return res["ok"]

    def wait_for(self, predicate_js: str, timeout=60, what="condition"):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                if self.js(f"try {{ return !!({predicate_js}); }} catch (e) {{ return false; }}"):
                    return
            except Exception as exc:  # page still navigating
                last = exc
            time.sleep(0.25)
        self.screenshot(f"timeout-{re.sub(r'[^a-z0-9]+', '-', what.lower())}")
        raise TimeoutError(f"{what} not reached in {timeout}s ({last}); console: {self.console()[-10:]}")

    def open(self, timeout=120):
        """Load the frontend and wait until the app, its canvas and the Seg2Any nodes are registered."""
        self.driver.get(self.server.url + "/")
        self.wait_for(
            "window.app && app.graph && app.canvas && window.LiteGraph && "
            "LiteGraph.registered_node_types['Seg2AnyLoadLoRA'] && "
            "document.querySelector('.side-tool-bar-container')",
            timeout,
            "frontend ready",
        )
        self.settle()
        return self

    def settle(self, frames=3, pause=0.3):
        """Let the frontend lay out and draw (DOM widgets follow the canvas one frame later)."""
        time.sleep(pause)
        self.js_async(f"for (let i = 0; i < {frames}; i++) await new Promise(r => requestAnimationFrame(r));")
        app_canvas_dirty = "app.canvas.setDirty(true, true); app.canvas.draw(true, true);"
        self.js(app_canvas_dirty)

    def screenshot(self, name: str) -> str:
        self.step += 1
        path = os.path.join(self.artifacts, f"{self.step:02d}-{name}.png")
        self.driver.save_screenshot(path)
        return path

    def console(self) -> list[str]:
        try:
            return [f"{e['level']}: {e['message']}" for e in self.driver.get_log("browser")]
        except Exception:
            return []

    def save_console(self, name="console") -> str:
        path = os.path.join(self.artifacts, f"{name}.log")
        with open(path, "a", encoding="utf-8") as f:
            f.write("\n".join(self.console()) + "\n")
        return path

    # -- workflows ---------------------------------------------------------------------------------
    def load_workflow(self, workflow: dict, name: str = "workflow"):
        """Open a UI-format workflow as the frontend does for a template (new tab, its own view)."""
        self.js_async("await app.loadGraphData(args[0], true, true, args[1]);", workflow, name)
        self.settle()
        self.wait_stable()

    def wait_stable(self, timeout=20):
        """Node sizes can grow after load (images arrive, DOM widgets measure): wait until they hold."""
        deadline, last = time.time() + timeout, None
        while time.time() < deadline:
            now = [(n["id"], n["pos"], n["size"]) for n in self.node_boxes()]
            if now == last:
                return
            last = now
            self.settle(frames=2, pause=0.4)

    def node_boxes(self) -> list[dict]:
        return self.js(JS_NODE_BOXES)

    def view(self) -> dict:
        return self.js(JS_VIEW)

    def to_screen(self, box, view=None) -> list[float]:
        """A canvas-space [x, y, w, h] as the client-space rectangle the user sees."""
        v = view or self.view()
        s, (ox, oy), (cx, cy, _, _) = v["scale"], v["offset"], v["canvas"]
        return [(box[0] + ox) * s + cx, (box[1] + oy) * s + cy, box[2] * s, box[3] * s]

    def chrome_rects(self) -> dict[str, list[dict]]:
        return self.js(JS_CHROME, CHROME_SELECTORS)

    def canvas_area(self) -> dict | None:
        return self.js(JS_CANVAS_AREA, CANVAS_AREA_SELECTORS)

    def registered(self, node_type: str) -> bool:
        return bool(self.js("return !!LiteGraph.registered_node_types[arguments[0]];", node_type))

    # -- geometry checks -------------------------------------------------------------------------
    def overlaps(self, boxes=None) -> list[str]:
        """Every pair of nodes whose boxes (title included) share area, in canvas space."""
        boxes = boxes if boxes is not None else self.node_boxes()
        out = []
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                area = intersect(a["box"], b["box"])
                if area > 0:
                    out.append(f"{a['title']} (#{a['id']}) and {b['title']} (#{b['id']}) overlap by {area:.0f} px^2")
        return out

    def under_chrome(self, boxes=None) -> list[str]:
        """Nodes whose on-screen box reaches under the top bar or the side bar."""
        boxes = boxes if boxes is not None else self.node_boxes()
        view, chrome, area = self.view(), self.chrome_rects(), self.canvas_area()
        out = []
        for n in boxes:
            scr = self.to_screen(n["box"], view)
            for part, rects in chrome.items():
                for r in rects:
                    if intersect(scr, r["rect"]) > 0:
                        out.append(
                            f"{n['title']} (#{n['id']}) at screen {[round(x) for x in scr]} is under the {part} "
                            f"({r['selector']} {[round(x) for x in r['rect']]})"
                        )
            if area and (scr[0] < area["rect"][0] or scr[1] < area["rect"][1]):
                out.append(
                    f"{n['title']} (#{n['id']}) at screen {[round(x) for x in scr]} starts above or left of the visible "
                    f"canvas area ({area['selector']} {[round(x) for x in area['rect']]})"
                )
        return out
