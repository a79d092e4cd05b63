// The editor's DOM shell: tool bars, the stage that holds the canvas, status line, caption and the
// entity list's container; the `el` helper every part builds its elements with.
// Installed on LayoutEditor.prototype (editor.js); `this` is the editor.

import { foreignUndo } from "./graph_undo.js";
import { MIN_SIDE, MAX_SIDE, ZOOM_STEP, TOOLS } from "./constants.js";

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

export const domMethods = {
  // DOM
  buildDom() {
    const tools = TOOLS.map(([id, label, key]) =>
      el("button", { class: "s2a-tool", "data-tool": id, title: `${label} (${key})`, text: label.split(" ")[0], onclick: () => this.setTool(id) }),
    );
    this.radiusInput = el("input", { type: "range", min: "1", max: "128", value: String(this.radius), class: "s2a-radius", title: "Brush / eraser radius" });
    this.radiusInput.addEventListener("input", () => (this.radius = Number(this.radiusInput.value)));
    this.zoomLabel = el("span", { class: "s2a-zoom-label", text: "fit" });
    const bar1 = el("div", { class: "s2a-bar" }, ...tools, el("label", { class: "s2a-lbl", text: "size" }), this.radiusInput);
    this.widthInput = el("input", { type: "number", min: String(MIN_SIDE), max: String(MAX_SIDE), class: "s2a-width", title: "Layout width (pixels)" });
    this.heightInput = el("input", { type: "number", min: String(MIN_SIDE), max: String(MAX_SIDE), class: "s2a-height", title: "Layout height (pixels)" });
    const bar2 = el(
      "div",
      { class: "s2a-bar" },
      el("button", { class: "s2a-undo", title: "Undo (Ctrl+Z)", text: "Undo", onclick: () => this.undo() }),
      el("button", { class: "s2a-redo", title: "Redo (Ctrl+Y / Ctrl+Shift+Z)", text: "Redo", onclick: () => this.redo() }),
      el("button", { class: "s2a-zoom-out", title: "Zoom out", text: "−", onclick: () => this.setZoom(this.zoom / ZOOM_STEP) }),
      this.zoomLabel,
      el("button", { class: "s2a-zoom-in", title: "Zoom in (or Ctrl+wheel)", text: "+", onclick: () => this.setZoom(this.zoom * ZOOM_STEP) }),
      el("button", { class: "s2a-zoom-fit", title: "Fit the canvas", text: "Fit", onclick: () => this.setZoom(1) }),
      el("button", { class: "s2a-flip-x", title: "Flip the selected entity left-right", text: "⇆", onclick: () => this.transformActive("x") }),
      el("button", { class: "s2a-flip-y", title: "Flip the selected entity upside down", text: "⇅", onclick: () => this.transformActive("y") }),
      el("button", { class: "s2a-shrink", title: "Shrink the selected entity by 10%", text: "▫", onclick: () => this.transformActive(1 / 1.1) }),
      el("button", { class: "s2a-grow", title: "Grow the selected entity by 10%", text: "◻", onclick: () => this.transformActive(1.1) }),
      el("label", { class: "s2a-lbl", text: "W" }),
      this.widthInput,
      el("label", { class: "s2a-lbl", text: "H" }),
      this.heightInput,
      el("button", { class: "s2a-resize", title: "Apply the size (the painting is scaled)", text: "Set size", onclick: () => this.applySize() }),
    );
    this.importInput = el("input", { type: "file", accept: ".png,.json,image/png,application/json", multiple: "", class: "s2a-import-input", style: "display:none" });
    this.importInput.addEventListener("change", () => {
      this.importFiles([...this.importInput.files]);
      this.importInput.value = "";
    });
    this.traceInput = el("input", { type: "file", accept: "image/*", class: "s2a-trace-input", style: "display:none" });
    this.traceInput.addEventListener("change", () => {
      const f = this.traceInput.files[0];
      if (f) this.setTrace(f, `file ${f.name}`);
      this.traceInput.value = "";
    });
    this.opacityInput = el("input", { type: "range", min: "0.1", max: "1", step: "0.05", value: "1", class: "s2a-opacity", title: "Opacity of the painted layer over the trace image" });
    this.opacityInput.addEventListener("input", () => {
      this.opacity = Number(this.opacityInput.value);
      this.draw();
    });
    this.takeInButton = el("button", {
      class: "s2a-take-in",
      title: "Replace the painting with the layout on the node's 'segmentation' + 'segments' inputs (from the last run)",
      text: "Take in input",
      onclick: () => this.takeIncoming(),
    });
    this.takeInButton.hidden = true;
    const bar3 = el(
      "div",
      { class: "s2a-bar" },
      el("button", { class: "s2a-import", title: "Import the official X.png + X.json (or drop them on the editor)", text: "Import PNG + JSON…", onclick: () => this.importInput.click() }),
      el("button", { class: "s2a-export", title: "Download the official X.png + X.json", text: "Export", onclick: () => this.exportFiles() }),
      this.takeInButton,
      el("button", { class: "s2a-trace", title: "Load an image to trace over (not stored in the workflow)", text: "Trace image…", onclick: () => this.traceInput.click() }),
      el("label", { class: "s2a-lbl", text: "paint opacity" }),
      this.opacityInput,
      this.importInput,
      this.traceInput,
    );
    this.view = el("canvas", { class: "s2a-view", tabindex: "0" });
    this.stage = el("div", { class: "s2a-stage" }, this.view);
    this.status = el("div", { class: "s2a-status" });
    this.problems = el("div", { class: "s2a-problems", "data-count": "0" });
    this.captionInput = el("textarea", { class: "s2a-caption", rows: "2", placeholder: "Global caption: the whole picture in one or two sentences" });
    this.captionTokens = el("span", { class: "s2a-tokens s2a-caption-tokens", text: "" });
    this.captionInput.addEventListener("input", (e) => {
      if (foreignUndo(e, this.captionInput)) return void (this.captionInput.value = this.caption);
      this.caption = this.captionInput.value;
      this.changed(false);
    });
    this.rows = el("div", { class: "s2a-rows" });
    const head = el(
      "div",
      { class: "s2a-head" },
      el("span", { class: "s2a-head-title", text: "Entities" }),
      el("span", { class: "s2a-count" }),
      el("button", { class: "s2a-add", title: "Add an entity (a new colour) and paint with it", text: "+ Entity", onclick: () => this.addEntity() }),
    );
    this.countLabel = head.querySelector(".s2a-count");
    this.root = el(
      "div",
      { class: "s2a-editor" },
      bar1,
      bar2,
      bar3,
      this.stage,
      this.status,
      this.problems,
      el("div", { class: "s2a-caption-row" }, this.captionInput, this.captionTokens),
      head,
      this.rows,
    );
    this.bindCanvas();
    this.bindKeys();
    this.bindPointerIsolation();
    this.bindDrop();
    new ResizeObserver(() => requestAnimationFrame(() => this.layoutView())).observe(this.stage);
    this.setTool("brush");
  },

  /** A Vue-rendered node ("Nodes 2.0") starts dragging itself on any left-button drag that reaches
   * it; inside the editor a drag paints, moves a slider or selects text, so it stops here. (Canvas
   * nodes hit-test on the graph canvas, which never sees the editor's events.) */
  bindPointerIsolation() {
    const stop = (e) => {
      if (window.LiteGraph?.vueNodesMode) e.stopPropagation();
    };
    for (const type of ["pointerdown", "pointermove", "pointerup"]) this.root.addEventListener(type, stop);
  },

  message(text, kind = "info") {
    this.status.textContent = text;
    this.status.title = text;
    this.status.dataset.kind = kind;
  },
};
