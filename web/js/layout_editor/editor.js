// The Layout Editor widget: canvas + tools + entity rows + caption, bound to the node's `layout`
// string (the document seg2any/editor_document.py validates). The frontend (app, api) is passed
// in, so this module runs under both frontend generations without importing their internals.

import {
  fillEllipse,
  fillPolygon,
  fillRect,
  floodFill,
  hexToRgb,
  nextColour,
  resizeMap,
  rgbToHex,
  stamp,
  strokeLine,
} from "./paint.js";
import {
  backgroundFor,
  canvasBlob,
  colourKey,
  download,
  indexFromPixels,
  loadTraceImage,
  mapCanvas,
  officialJson,
  parseOfficialJson,
  readPixels,
} from "./files.js";

export const VERSION = 1;
export const MAX_ENTITIES = 255;
export const MIN_SIDE = 16;
export const MAX_SIDE = 4096;
const DEFAULT_SIDE = 1024;
const UNDO_DEPTH = 60;
const MAX_VIEW_PIXELS = 8192;
const ZOOM_STEP = 1.25; // per zoom button click or mouse wheel notch
const TOOLS = [
  ["brush", "Brush", "B"],
  ["eraser", "Eraser", "E"],
  ["fill", "Fill", "F"],
  ["rect", "Rectangle", "R"],
  ["ellipse", "Ellipse", "O"],
  ["polygon", "Polygon (click points; double-click, Enter or click the first point to close)", "P"],
];

function el(tag, attrs = {}, ...children) {
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

export class LayoutEditor {
  constructor({ api, onChange }) {
    this.api = api;
    this.onChange = onChange || (() => {});
    this.w = DEFAULT_SIDE;
    this.h = DEFAULT_SIDE;
    this.map = new Uint8Array(this.w * this.h);
    this.entities = []; // {slot, colour: [r,g,b], prompt, visible}
    this.caption = "";
    this.active = 0; // slot being painted
    this.tool = "brush";
    this.radius = 12;
    this.zoom = 1; // on top of "fit"
    this.opacity = 1;
    this.trace = null;
    this.undoStack = [];
    this.redoStack = [];
    this.op = null;
    this.docCache = null; // the stored string while nothing has changed (exact round trip)
    this.pending = null; // a document being decoded
    this.tokenTimer = 0;
    this.counts = null;
    this.buildDom();
    this.resetLabels();
  }

  // ------------------------------------------------------------------------------------------
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
    const bar3 = el(
      "div",
      { class: "s2a-bar" },
      el("button", { class: "s2a-import", title: "Import the official X.png + X.json (or drop them on the editor)", text: "Import PNG + JSON…", onclick: () => this.importInput.click() }),
      el("button", { class: "s2a-export", title: "Download the official X.png + X.json", text: "Export", onclick: () => this.exportFiles() }),
      el("button", { class: "s2a-trace", title: "Load an image to trace over (not stored in the workflow)", text: "Trace image…", onclick: () => this.traceInput.click() }),
      el("label", { class: "s2a-lbl", text: "paint opacity" }),
      this.opacityInput,
      this.importInput,
      this.traceInput,
    );
    this.view = el("canvas", { class: "s2a-view", tabindex: "0" });
    this.stage = el("div", { class: "s2a-stage" }, this.view);
    this.status = el("div", { class: "s2a-status" });
    this.captionInput = el("textarea", { class: "s2a-caption", rows: "2", placeholder: "Global caption: the whole picture in one or two sentences" });
    this.captionTokens = el("span", { class: "s2a-tokens s2a-caption-tokens", text: "" });
    this.captionInput.addEventListener("input", () => {
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
  }

  bindCanvas() {
    const v = this.view;
    v.addEventListener("pointerdown", (e) => this.pointerDown(e));
    v.addEventListener("pointermove", (e) => this.pointerMove(e));
    v.addEventListener("pointerup", (e) => this.pointerUp(e));
    v.addEventListener("pointercancel", (e) => this.pointerUp(e));
    v.addEventListener("pointerleave", () => {
      this.hover = null;
      this.draw();
    });
    v.addEventListener("dblclick", (e) => {
      e.stopPropagation();
      if (this.tool === "polygon") this.closePolygon();
    });
    // Vue-rendered nodes forward every wheel event over a node to the graph (zoom) unless the
    // target sits inside [data-capture-wheel]: the canvas and the entity list scroll themselves.
    this.stage.dataset.captureWheel = "true";
    this.rows.dataset.captureWheel = "true";
    this.stage.addEventListener(
      "wheel",
      (e) => {
        if (!(e.ctrlKey || e.metaKey)) return; // plain wheel scrolls the stage
        e.preventDefault();
        e.stopPropagation();
        // one mouse notch (100 px) = one 1.25 step; a trackpad pinch sends small deltas: smaller steps
        const notches = e.deltaMode === 0 ? -e.deltaY / 100 : -Math.sign(e.deltaY);
        this.setZoom(this.zoom * ZOOM_STEP ** Math.max(-1, Math.min(1, notches)), { x: e.clientX, y: e.clientY });
      },
      { passive: false },
    );
  }

  /** A Vue-rendered node ("Nodes 2.0") starts dragging itself on any left-button drag that reaches
   * it; inside the editor a drag paints, moves a slider or selects text, so it stops here. (Canvas
   * nodes hit-test on the graph canvas, which never sees the editor's events.) */
  bindPointerIsolation() {
    const stop = (e) => {
      if (window.LiteGraph?.vueNodesMode) e.stopPropagation();
    };
    for (const type of ["pointerdown", "pointermove", "pointerup"]) this.root.addEventListener(type, stop);
  }

  bindKeys() {
    this.root.addEventListener("keydown", (e) => {
      const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement;
      e.stopPropagation(); // the graph's own shortcuts (delete node, undo) must not fire while editing
      if (typing) return;
      const k = e.key.toLowerCase();
      if ((e.ctrlKey || e.metaKey) && k === "z") {
        e.preventDefault();
        if (e.shiftKey) this.redo();
        else this.undo();
      } else if ((e.ctrlKey || e.metaKey) && k === "y") {
        e.preventDefault();
        this.redo();
      } else if (k === "enter" && this.tool === "polygon") this.closePolygon();
      else if (k === "escape") {
        this.poly = null;
        this.draw();
      } else {
        const t = TOOLS.find(([, , key]) => key.toLowerCase() === k);
        if (t && !e.ctrlKey && !e.metaKey) this.setTool(t[0]);
      }
    });
  }

  bindDrop() {
    const r = this.root;
    const over = (e) => {
      if (![...(e.dataTransfer?.types || [])].includes("Files")) return;
      e.preventDefault();
      e.stopPropagation(); // ComfyUI would otherwise open a dropped PNG as a workflow
      r.classList.add("s2a-drop");
    };
    r.addEventListener("dragenter", over);
    r.addEventListener("dragover", over);
    r.addEventListener("dragleave", () => r.classList.remove("s2a-drop"));
    r.addEventListener("drop", (e) => {
      r.classList.remove("s2a-drop");
      if (!e.dataTransfer?.files?.length) return;
      e.preventDefault();
      e.stopPropagation();
      this.importFiles([...e.dataTransfer.files]);
    });
  }

  message(text, kind = "info") {
    this.status.textContent = text;
    this.status.title = text;
    this.status.dataset.kind = kind;
  }

  setTool(id) {
    if (this.tool === "polygon" && id !== "polygon") this.poly = null;
    this.tool = id;
    for (const b of this.root.querySelectorAll(".s2a-tool")) b.classList.toggle("s2a-on", b.dataset.tool === id);
    this.draw();
  }

  // ------------------------------------------------------------------------------------------
  // view

  fitScale() {
    const sw = Math.max(50, this.stage.clientWidth - 4);
    const sh = Math.max(50, this.stage.clientHeight - 4);
    return Math.min(sw / this.w, sh / this.h);
  }

  /** Zoom to z (1 = fit) about a client point `at` (default: the stage's centre): the layout pixel
   * under it stays where it is on screen, as in image editors. Along an axis where the whole canvas
   * fits the stage there is nothing to scroll, so the canvas stays centred there. */
  setZoom(z, at = null) {
    const fit = this.fitScale();
    const maxZ = Math.max(1, MAX_VIEW_PIXELS / (Math.max(this.w, this.h) * fit));
    const before = this.view.getBoundingClientRect();
    const st = this.stage.getBoundingClientRect();
    const p = at || { x: st.left + st.width / 2, y: st.top + st.height / 2 };
    const u = (p.x - before.left) / before.width; // the anchored point, as a fraction of the layout
    const v = (p.y - before.top) / before.height;
    this.zoom = Math.min(maxZ, Math.max(0.25, z));
    if (Math.abs(this.zoom - 1) < 1e-3) this.zoom = 1;
    this.zoomLabel.textContent = this.zoom === 1 ? "fit" : `${Math.round(this.zoom * 100)}%`;
    this.layoutView();
    const after = this.view.getBoundingClientRect();
    if (!(before.width > 0 && before.height > 0 && after.width > 0)) return; // not on screen
    const k = after.width / this.view.offsetWidth || 1; // client px per CSS px (the graph's zoom, Vue nodes)
    this.stage.scrollLeft += (after.left + u * after.width - p.x) / k;
    this.stage.scrollTop += (after.top + v * after.height - p.y) / k;
  }

  layoutView() {
    const s = this.fitScale() * this.zoom;
    const vw = Math.max(1, Math.round(this.w * s));
    const vh = Math.max(1, Math.round(this.h * s));
    if (this.view.width !== vw || this.view.height !== vh) {
      this.view.width = vw;
      this.view.height = vh;
      this.view.style.width = `${vw}px`;
      this.view.style.height = `${vh}px`;
    }
    this.draw();
  }

  resetLabels() {
    this.labels = document.createElement("canvas");
    this.labels.width = this.w;
    this.labels.height = this.h;
    this.labelCtx = this.labels.getContext("2d");
    this.labelData = this.labelCtx.createImageData(this.w, this.h);
    this.widthInput.value = String(this.w);
    this.heightInput.value = String(this.h);
    this.refreshLut();
    this.refresh([0, 0, this.w, this.h]);
    this.layoutView();
  }

  refreshLut() {
    this.lut = new Uint8ClampedArray(256 * 4);
    for (const e of this.entities) {
      if (!e.visible) continue;
      this.lut.set([e.colour[0], e.colour[1], e.colour[2], 255], e.slot * 4);
    }
  }

  /** Re-colour the label layer inside a box from the index map (the only per-pixel drawing). */
  refresh(box) {
    if (!box) return;
    const [x0, y0, x1, y1] = box;
    const d = this.labelData.data;
    const lut = this.lut;
    const w = this.w;
    for (let y = y0; y < y1; y++) {
      for (let x = x0, i = y * w + x0, p = i * 4; x < x1; x++, i++, p += 4) {
        const q = this.map[i] * 4;
        d[p] = lut[q];
        d[p + 1] = lut[q + 1];
        d[p + 2] = lut[q + 2];
        d[p + 3] = lut[q + 3];
      }
    }
    this.labelCtx.putImageData(this.labelData, 0, 0, x0, y0, x1 - x0, y1 - y0);
    this.draw();
  }

  draw() {
    if (this.drawQueued) return;
    this.drawQueued = true;
    requestAnimationFrame(() => {
      this.drawQueued = false;
      this.drawNow();
    });
  }

  drawNow() {
    const c = this.view.getContext("2d");
    const vw = this.view.width;
    const vh = this.view.height;
    c.imageSmoothingEnabled = false;
    c.fillStyle = this.checker(c); // unpainted = background, whatever colour the export gives it
    c.fillRect(0, 0, vw, vh);
    if (this.trace) {
      c.imageSmoothingEnabled = true;
      c.drawImage(this.trace, 0, 0, vw, vh);
      c.imageSmoothingEnabled = false;
    }
    c.globalAlpha = this.trace ? this.opacity : 1;
    c.drawImage(this.labels, 0, 0, vw, vh);
    c.globalAlpha = 1;
    const s = vw / this.w;
    c.strokeStyle = "#fff";
    c.setLineDash([4, 3]);
    c.lineWidth = 1;
    if (this.shape) {
      const [x0, y0, x1, y1] = this.shape;
      const [ax, ay, bx, by] = [Math.min(x0, x1) * s, Math.min(y0, y1) * s, Math.abs(x1 - x0) * s, Math.abs(y1 - y0) * s];
      c.beginPath();
      if (this.tool === "ellipse") c.ellipse(ax + bx / 2, ay + by / 2, bx / 2, by / 2, 0, 0, 2 * Math.PI);
      else c.rect(ax, ay, bx, by);
      c.stroke();
    }
    if (this.poly && this.poly.length) {
      c.beginPath();
      this.poly.forEach(([x, y], i) => (i ? c.lineTo(x * s, y * s) : c.moveTo(x * s, y * s)));
      if (this.hover) c.lineTo(this.hover[0] * s, this.hover[1] * s);
      c.stroke();
      c.setLineDash([]);
      c.fillStyle = "#fff";
      for (const [x, y] of this.poly) c.fillRect(x * s - 2, y * s - 2, 4, 4);
    }
    if (this.hover && (this.tool === "brush" || this.tool === "eraser")) {
      c.setLineDash([]);
      c.beginPath();
      c.arc(this.hover[0] * s, this.hover[1] * s, Math.max(1, this.radius * s), 0, 2 * Math.PI);
      c.stroke();
    }
    c.setLineDash([]);
  }

  checker(c) {
    if (!this.checkerPattern) {
      const t = document.createElement("canvas");
      t.width = t.height = 16;
      const g = t.getContext("2d");
      g.fillStyle = "#3a3a3a";
      g.fillRect(0, 0, 16, 16);
      g.fillStyle = "#2c2c2c";
      g.fillRect(0, 0, 8, 8);
      g.fillRect(8, 8, 8, 8);
      this.checkerPattern = c.createPattern(t, "repeat");
    }
    return this.checkerPattern;
  }

  // ------------------------------------------------------------------------------------------
  // painting

  toMap(e) {
    const r = this.view.getBoundingClientRect();
    return [((e.clientX - r.left) / r.width) * this.w, ((e.clientY - r.top) / r.height) * this.h];
  }

  paintValue() {
    if (this.tool === "eraser") return 0;
    const ent = this.entities.find((x) => x.slot === this.active);
    if (!ent) {
      this.message("Add an entity first (+ Entity), then paint with it.", "error");
      return null;
    }
    if (!ent.visible) {
      ent.visible = true; // painting something you cannot see helps nobody
      this.refreshLut();
      this.renderRows();
    }
    return ent.slot;
  }

  pointerDown(e) {
    if (e.button !== 0) return;
    e.preventDefault();
    e.stopPropagation();
    this.view.focus({ preventScroll: true });
    const [x, y] = this.toMap(e);
    if (this.tool === "polygon") {
      if (this.poly && this.poly.length >= 3) {
        const [fx, fy] = this.poly[0];
        const s = this.view.width / this.w;
        if (Math.hypot((fx - x) * s, (fy - y) * s) < 8) return this.closePolygon();
      }
      (this.poly ||= []).push([x, y]);
      return this.draw();
    }
    const v = this.paintValue();
    if (v === null) return;
    this.view.setPointerCapture(e.pointerId);
    this.beginOp();
    this.drag = { v, x, y };
    if (this.tool === "brush" || this.tool === "eraser") {
      this.refresh(stamp(this.map, this.w, this.h, x, y, this.radius, v));
    } else if (this.tool === "fill") {
      this.refresh(floodFill(this.map, this.w, this.h, x, y, v));
      this.drag = null;
      this.endOp();
    } else {
      this.shape = [x, y, x, y];
    }
  }

  pointerMove(e) {
    const [x, y] = this.toMap(e);
    this.hover = [x, y];
    const d = this.drag;
    if (d && (this.tool === "brush" || this.tool === "eraser")) {
      this.refresh(strokeLine(this.map, this.w, this.h, d.x, d.y, x, y, this.radius, d.v));
      d.x = x;
      d.y = y;
    } else if (d && this.shape) {
      this.shape[2] = x;
      this.shape[3] = y;
    }
    this.draw();
  }

  pointerUp(e) {
    const d = this.drag;
    if (!d) return;
    this.drag = null;
    if (this.view.hasPointerCapture?.(e.pointerId)) this.view.releasePointerCapture(e.pointerId);
    if (this.shape) {
      const [x0, y0] = this.shape;
      const [x1, y1] = this.toMap(e);
      const fn = this.tool === "ellipse" ? fillEllipse : fillRect;
      this.refresh(fn(this.map, this.w, this.h, x0, y0, x1, y1, d.v));
      this.shape = null;
    }
    this.endOp();
  }

  closePolygon() {
    const pts = this.poly;
    this.poly = null;
    if (!pts || pts.length < 3) return this.draw();
    const v = this.paintValue();
    if (v === null) return this.draw();
    this.beginOp();
    this.refresh(fillPolygon(this.map, this.w, this.h, pts, v));
    this.endOp();
  }

  // ------------------------------------------------------------------------------------------
  // undo: each step keeps the changed box of the index map and the entity list before/after

  snapshotEntities() {
    return {
      list: this.entities.map((e) => ({ ...e, colour: e.colour.slice() })),
      caption: this.caption,
      w: this.w,
      h: this.h,
    };
  }

  beginOp() {
    this.op = { before: this.map.slice(), ents: this.snapshotEntities() };
  }

  endOp() {
    const op = this.op;
    this.op = null;
    if (!op) return;
    let box = null;
    if (op.before.length === this.map.length && op.ents.w === this.w) {
      const w = this.w;
      let x0 = w, y0 = this.h, x1 = -1, y1 = -1; // prettier-ignore
      for (let i = 0; i < this.map.length; i++) {
        if (op.before[i] !== this.map[i]) {
          const x = i % w;
          const y = (i - x) / w;
          if (x < x0) x0 = x;
          if (x > x1) x1 = x;
          if (y < y0) y0 = y;
          if (y > y1) y1 = y;
        }
      }
      if (x1 >= 0) box = [x0, y0, x1 + 1, y1 + 1];
      const after = this.snapshotEntities();
      if (!box && JSON.stringify(after) === JSON.stringify(op.ents)) return;
      this.pushUndo({ kind: "box", box, before: box && this.cut(op.before, box), after: box && this.cut(this.map, box), entsBefore: op.ents, entsAfter: after });
    } else {
      this.pushUndo({ kind: "full", before: op.before, after: this.map.slice(), entsBefore: op.ents, entsAfter: this.snapshotEntities() });
    }
    this.changed(true);
  }

  cut(map, [x0, y0, x1, y1]) {
    const out = new Uint8Array((x1 - x0) * (y1 - y0));
    for (let y = y0, k = 0; y < y1; y++, k += x1 - x0) out.set(map.subarray(y * this.w + x0, y * this.w + x1), k);
    return out;
  }

  paste(part, [x0, y0, x1, y1]) {
    for (let y = y0, k = 0; y < y1; y++, k += x1 - x0) this.map.set(part.subarray(k, k + x1 - x0), y * this.w + x0);
  }

  pushUndo(step) {
    this.undoStack.push(step);
    if (this.undoStack.length > UNDO_DEPTH) this.undoStack.shift();
    this.redoStack = [];
  }

  applyStep(step, forward) {
    const ents = forward ? step.entsAfter : step.entsBefore;
    const sizeChanged = ents.w !== this.w || ents.h !== this.h;
    this.w = ents.w;
    this.h = ents.h;
    this.entities = ents.list.map((e) => ({ ...e, colour: e.colour.slice() }));
    this.caption = ents.caption;
    this.captionInput.value = this.caption;
    if (step.kind === "full") this.map = (forward ? step.after : step.before).slice();
    else if (step.box) this.paste(forward ? step.after : step.before, step.box);
    if (!this.entities.some((e) => e.slot === this.active)) this.active = this.entities[0]?.slot ?? 0;
    if (sizeChanged) this.resetLabels();
    else {
      this.refreshLut();
      this.refresh([0, 0, this.w, this.h]);
    }
    this.renderRows();
    this.changed(true);
  }

  undo() {
    const s = this.undoStack.pop();
    if (!s) return this.message("Nothing to undo.");
    this.redoStack.push(s);
    this.applyStep(s, false);
  }

  redo() {
    const s = this.redoStack.pop();
    if (!s) return this.message("Nothing to redo.");
    this.undoStack.push(s);
    this.applyStep(s, true);
  }

  /** Run an entity-list edit as one undoable step. */
  edit(fn) {
    this.beginOp();
    fn();
    this.sortEntities();
    this.refreshLut();
    this.refresh([0, 0, this.w, this.h]);
    this.renderRows();
    this.endOp();
  }

  // ------------------------------------------------------------------------------------------
  // entities

  /** Seg2Any orders entities by colour (sorted RGB, as the official reader does), and so do the
   * builder's report and the Layout Preview legend: the list keeps that order so a row's number is
   * the number they show. Reordering therefore swaps colours (see moveEntity). */
  sortEntities(list = this.entities) {
    return list.sort((a, b) => colourKey(a.colour) - colourKey(b.colour));
  }

  freeSlot() {
    const used = new Set(this.entities.map((e) => e.slot));
    for (let s = 1; s <= MAX_ENTITIES; s++) if (!used.has(s)) return s;
    return 0;
  }

  addEntity(prompt = "", colour = null) {
    const slot = this.freeSlot();
    if (!slot) return this.message(`At most ${MAX_ENTITIES} entities.`, "error");
    this.edit(() => {
      const c = colour || nextColour(this.entities.map((e) => e.colour));
      this.entities.push({ slot, colour: c, prompt, visible: true });
      this.active = slot;
    });
    const input = this.rows.querySelector(`.s2a-row[data-slot="${slot}"] .s2a-prompt`);
    if (input && !prompt) input.focus({ preventScroll: true });
    return slot;
  }

  deleteEntity(slot) {
    this.edit(() => {
      this.entities = this.entities.filter((e) => e.slot !== slot);
      for (let i = 0; i < this.map.length; i++) if (this.map[i] === slot) this.map[i] = 0;
      if (this.active === slot) this.active = this.entities[0]?.slot ?? 0;
    });
  }

  moveEntity(slot, delta) {
    const i = this.entities.findIndex((e) => e.slot === slot);
    const j = i + delta;
    if (i < 0 || j < 0 || j >= this.entities.length) return;
    this.edit(() => {
      const [a, b] = [this.entities[i], this.entities[j]];
      [a.colour, b.colour] = [b.colour, a.colour]; // the entity takes its neighbour's place in the order
    });
  }

  setColour(slot, hex, input) {
    const c = hexToRgb(hex);
    const clash = this.entities.find((e) => e.slot !== slot && rgbToHex(e.colour) === hex.toLowerCase());
    if (!c || clash) {
      this.message(clash ? `${hex} is already entity ${this.entities.indexOf(clash) + 1}'s colour.` : `${hex} is not a colour.`, "error");
      input.value = rgbToHex(this.entities.find((e) => e.slot === slot).colour);
      return;
    }
    this.edit(() => (this.entities.find((e) => e.slot === slot).colour = c));
  }

  pixelCounts() {
    const n = new Uint32Array(256);
    for (let i = 0; i < this.map.length; i++) n[this.map[i]]++;
    return n;
  }

  renderRows() {
    const focused = document.activeElement;
    const keepFocus = focused && this.rows.contains(focused) ? [focused.closest(".s2a-row")?.dataset.slot, focused.className] : null;
    let rank = 0;
    this.rows.replaceChildren(
      ...this.entities.map((e, i) => {
        const num = e.visible ? String(++rank) : "–";
        const swatch = el("input", { type: "color", class: "s2a-swatch", value: rgbToHex(e.colour), title: "Entity colour (unique)" });
        swatch.addEventListener("change", () => this.setColour(e.slot, swatch.value, swatch));
        const prompt = el("input", { type: "text", class: "s2a-prompt", placeholder: `entity ${num}: what is here?`, value: e.prompt });
        prompt.value = e.prompt;
        prompt.addEventListener("focus", () => this.select(e.slot));
        prompt.addEventListener("input", () => {
          e.prompt = prompt.value;
          this.changed(false);
        });
        const row = el(
          "div",
          { class: `s2a-row${e.slot === this.active ? " s2a-active" : ""}${e.visible ? "" : " s2a-hidden"}`, "data-slot": String(e.slot), "data-index": String(i) },
          el("span", { class: "s2a-num", text: num, title: "Its number in the builder's report and the preview (hidden: left out). Click the row to paint with it." }),
          swatch,
          prompt,
          el("span", { class: "s2a-tokens s2a-entity-tokens", text: "" }),
          el("button", {
            class: "s2a-eye",
            title: e.visible ? "Hide (a hidden entity is left out of the output)" : "Show",
            text: e.visible ? "◉" : "○",
            onclick: () => this.edit(() => (e.visible = !e.visible)),
          }),
          el("button", { class: "s2a-up", title: "Move up (swaps colours with the entity above: the order follows the colours)", text: "▲", onclick: () => this.moveEntity(e.slot, -1) }),
          el("button", { class: "s2a-down", title: "Move down (swaps colours with the entity below)", text: "▼", onclick: () => this.moveEntity(e.slot, 1) }),
          el("button", { class: "s2a-del", title: "Delete (its pixels become background)", text: "✕", onclick: () => this.deleteEntity(e.slot) }),
        );
        row.addEventListener("pointerdown", (ev) => {
          if (ev.target === row || ev.target.classList.contains("s2a-num")) this.select(e.slot);
        });
        return row;
      }),
    );
    this.countLabel.textContent = `${this.entities.length}`;
    if (keepFocus && keepFocus[0]) {
      const cls = String(keepFocus[1]).split(" ")[0];
      this.rows.querySelector(`.s2a-row[data-slot="${keepFocus[0]}"] .${cls}`)?.focus({ preventScroll: true });
    }
    this.showCounts();
  }

  select(slot) {
    this.active = slot;
    for (const r of this.rows.children) r.classList.toggle("s2a-active", Number(r.dataset.slot) === slot);
  }

  // ------------------------------------------------------------------------------------------
  // token counts (the server counts with the pack's T5 tokenizer, as the builder does)

  scheduleCounts() {
    clearTimeout(this.tokenTimer);
    this.tokenTimer = setTimeout(() => this.fetchCounts(), 250);
  }

  async fetchCounts() {
    const texts = [this.caption, ...this.entities.map((e) => e.prompt)];
    const asked = JSON.stringify(texts);
    try {
      const r = await this.api.fetchApi("/seg2any/token_count", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ texts }) });
      const body = await r.json();
      if (!r.ok) throw new Error(body.error || r.statusText);
      if (asked !== JSON.stringify([this.caption, ...this.entities.map((e) => e.prompt)])) return; // stale
      this.counts = body;
      this.showCounts();
    } catch (err) {
      this.counts = null;
      this.message(`Token counts unavailable: ${err.message}`, "error");
    }
  }

  showCounts() {
    const c = this.counts;
    const put = (span, n, limit) => {
      if (!span) return;
      span.textContent = n === undefined ? "…" : `${n}/${limit}`;
      span.classList.toggle("s2a-over", n !== undefined && n > limit);
      span.title = n !== undefined && n > limit ? `Over ${limit} T5 tokens: the builder refuses this caption` : "T5 tokens (with </s>)";
    };
    put(this.captionTokens, c?.counts?.[0], c?.global_limit ?? 512);
    [...this.rows.children].forEach((row, i) => put(row.querySelector(".s2a-entity-tokens"), c?.counts?.[i + 1], c?.entity_limit ?? 50));
  }

  // ------------------------------------------------------------------------------------------
  // size, import, export, trace

  applySize() {
    const nw = Math.round(Number(this.widthInput.value));
    const nh = Math.round(Number(this.heightInput.value));
    if (!(nw >= MIN_SIDE && nw <= MAX_SIDE && nh >= MIN_SIDE && nh <= MAX_SIDE)) {
      this.widthInput.value = String(this.w);
      this.heightInput.value = String(this.h);
      return this.message(`Width and height must be ${MIN_SIDE}..${MAX_SIDE} pixels.`, "error");
    }
    if (nw === this.w && nh === this.h) return;
    this.beginOp();
    this.map = resizeMap(this.map, this.w, this.h, nw, nh);
    this.w = nw;
    this.h = nh;
    this.resetLabels();
    this.endOp();
    this.message(`Layout is now ${nw}x${nh}.`);
  }

  async importFiles(files) {
    const png = files.find((f) => /\.png$/i.test(f.name) || f.type === "image/png");
    const json = files.find((f) => /\.json$/i.test(f.name) || f.type === "application/json");
    if (!png && !json) return this.message("Import takes the official X.png and/or X.json.", "error");
    try {
      const spec = json ? parseOfficialJson(await json.text()) : null;
      if (!png) return this.importPrompts(spec);
      const img = await readPixels(png);
      if (img.width < MIN_SIDE || img.height < MIN_SIDE || img.width > MAX_SIDE || img.height > MAX_SIDE) {
        throw new Error(`the PNG is ${img.width}x${img.height}; the editor takes ${MIN_SIDE}..${MAX_SIDE} pixels a side`);
      }
      let segments = spec?.segments;
      if (!segments) segments = this.coloursOf(img).map((colour) => ({ colour, text: "" }));
      if (segments.length > MAX_ENTITIES) throw new Error(`${segments.length} entities, at most ${MAX_ENTITIES}`);
      const notes = [];
      const slotOf = new Map();
      const ents = segments.map((s, i) => {
        slotOf.set(colourKey(s.colour), i + 1);
        return { slot: i + 1, colour: s.colour, prompt: s.text, visible: true };
      });
      const { map, unknown } = indexFromPixels(img, slotOf);
      this.sortEntities(ents);
      if (unknown.size) notes.push(`${unknown.size} unlisted colour(s) became background`);
      this.beginOp();
      this.w = img.width;
      this.h = img.height;
      this.map = map;
      this.entities = ents;
      this.active = ents[0]?.slot ?? 0;
      if (spec) this.caption = spec.caption;
      this.captionInput.value = this.caption;
      this.resetLabels();
      this.renderRows();
      this.endOp();
      this.setZoom(1);
      this.message(`Imported ${png.name}${json ? ` + ${json.name}` : ""}: ${img.width}x${img.height}, ${ents.length} entities${notes.length ? "; " + notes.join("; ") : ""}.`);
    } catch (err) {
      this.message(`Import failed: ${err.message}`, "error");
    }
  }

  coloursOf(img) {
    const seen = new Set();
    const out = [];
    const d = img.data;
    for (let p = 0; p < d.length && out.length <= MAX_ENTITIES; p += 4) {
      if (d[p + 3] < 128) continue;
      const key = (d[p] << 16) | (d[p + 1] << 8) | d[p + 2];
      if (key === 0 || seen.has(key)) continue;
      seen.add(key);
      out.push([d[p], d[p + 1], d[p + 2]]);
    }
    return out.sort((a, b) => colourKey(a) - colourKey(b)); // the official entity order
  }

  importPrompts(spec) {
    this.edit(() => {
      const byHex = new Map(this.entities.map((e) => [rgbToHex(e.colour), e]));
      for (const s of spec.segments) {
        const e = byHex.get(rgbToHex(s.colour));
        if (e) e.prompt = s.text;
        else if (this.entities.length < MAX_ENTITIES) {
          this.entities.push({ slot: this.freeSlot(), colour: s.colour, prompt: s.text, visible: true });
        }
      }
      this.caption = spec.caption || this.caption;
      this.captionInput.value = this.caption;
    });
    this.message(`Imported prompts for ${spec.segments.length} colour(s).`);
  }

  visibleColours() {
    const colourOf = new Array(256).fill(null);
    for (const e of this.entities) if (e.visible) colourOf[e.slot] = e.colour;
    return colourOf;
  }

  /** The official pair of what the node outputs (visible entities, black background). */
  async officialFiles() {
    const shown = this.entities.filter((e) => e.visible).map((e) => e.colour);
    const png = await canvasBlob(mapCanvas(this.map, this.w, this.h, this.visibleColours(), backgroundFor(shown)));
    const json = officialJson(this.caption.trim(), this.entities.filter((e) => e.visible).map((e) => ({ colour: e.colour, prompt: e.prompt.trim() })));
    return { png, json };
  }

  async exportFiles() {
    const { png, json } = await this.officialFiles();
    download("seg2any_layout.png", png);
    download("seg2any_layout.json", new Blob([json], { type: "application/json" }));
    this.message("Exported seg2any_layout.png + seg2any_layout.json.");
  }

  async setTrace(source, what) {
    try {
      this.trace = await loadTraceImage(source);
      if (this.opacity === 1) {
        this.opacity = 0.6;
        this.opacityInput.value = "0.6";
      }
      this.message(`Tracing over ${what} (${this.trace.width}x${this.trace.height}, shown at the layout's size).`);
      this.draw();
    } catch (err) {
      this.message(`Could not load the trace image: ${err.message}`, "error");
    }
  }

  // ------------------------------------------------------------------------------------------
  // the stored document

  changed(pixels) {
    this.docCache = null;
    this.pending = null;
    if (pixels) this.mapUrl = null;
    this.scheduleCounts();
    this.onChange();
  }

  toDocument() {
    if (this.pending !== null) return this.pending; // still decoding: keep what was stored
    if (this.docCache !== null) return this.docCache;
    if (!this.mapUrl) {
      const all = new Array(256).fill(null);
      for (const e of this.entities) all[e.slot] = e.colour;
      this.mapUrl = mapCanvas(this.map, this.w, this.h, all).toDataURL("image/png");
    }
    this.docCache = JSON.stringify({
      version: VERSION,
      width: this.w,
      height: this.h,
      caption: this.caption,
      entities: this.entities.map((e) => ({ color: rgbToHex(e.colour), prompt: e.prompt, visible: e.visible })),
      map: this.mapUrl,
    });
    return this.docCache;
  }

  async fromDocument(text) {
    if (!text) {
      this.loadState(DEFAULT_SIDE, DEFAULT_SIDE, new Uint8Array(DEFAULT_SIDE * DEFAULT_SIDE), [], "");
      this.docCache = null;
      return;
    }
    if (text === this.docCache || text === this.pending) return;
    this.pending = text;
    try {
      const doc = JSON.parse(text);
      if (doc.version !== VERSION) throw new Error(`unsupported version ${doc.version}`);
      const ents = (doc.entities || []).map((e, i) => ({ slot: i + 1, colour: hexToRgb(e.color) || [255, 0, 255], prompt: e.prompt || "", visible: e.visible !== false }));
      const slotOf = new Map(ents.map((e) => [colourKey(e.colour), e.slot]));
      this.sortEntities(ents);
      const img = await readPixels(doc.map);
      if (this.pending !== text) return; // replaced meanwhile
      if (img.width !== doc.width || img.height !== doc.height) throw new Error(`map is ${img.width}x${img.height}, document says ${doc.width}x${doc.height}`);
      const { map } = indexFromPixels(img, slotOf);
      this.loadState(doc.width, doc.height, map, ents, doc.caption || "");
      this.pending = null;
      this.docCache = text;
    } catch (err) {
      this.pending = null;
      this.message(`The stored layout could not be read (${err.message}); it is kept unchanged until you edit.`, "error");
      this.docCache = text;
    }
  }

  loadState(w, h, map, ents, caption) {
    this.w = w;
    this.h = h;
    this.map = map;
    this.entities = ents;
    this.caption = caption;
    this.captionInput.value = caption;
    this.active = ents[0]?.slot ?? 0;
    this.undoStack = [];
    this.redoStack = [];
    this.mapUrl = null;
    this.resetLabels();
    this.renderRows();
    this.scheduleCounts();
  }

  /** For tests and curious users: what the editor holds, in numbers. */
  summary() {
    const n = this.pixelCounts();
    return {
      width: this.w,
      height: this.h,
      caption: this.caption,
      entities: this.entities.map((e) => ({ colour: rgbToHex(e.colour), prompt: e.prompt, visible: e.visible, pixels: n[e.slot] })),
      counts: this.counts?.counts ?? null,
      trace: this.trace ? [this.trace.width, this.trace.height] : null,
      undo: this.undoStack.length,
      redo: this.redoStack.length,
    };
  }
}

