// The painting tools on the canvas: pointer and key handling, brush / eraser strokes, fill, shapes
// and the polygon; each finished action is one undo step (history.js).
// Installed on LayoutEditor.prototype (editor.js); `this` is the editor.

import { ZOOM_STEP, TOOLS } from "./constants.js";
import { fillEllipse, fillPolygon, fillRect, floodFill, stamp, strokeLine } from "./paint.js";

export const toolMethods = {
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
  },

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
  },

  setTool(id) {
    if (this.tool === "polygon" && id !== "polygon") this.poly = null;
    this.tool = id;
    for (const b of this.root.querySelectorAll(".s2a-tool")) b.classList.toggle("s2a-on", b.dataset.tool === id);
    this.draw();
  },

  toMap(e) {
    const r = this.view.getBoundingClientRect();
    return [((e.clientX - r.left) / r.width) * this.w, ((e.clientY - r.top) / r.height) * this.h];
  },

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
  },

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
  },

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
  },

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
  },

  closePolygon() {
    const pts = this.poly;
    this.poly = null;
    if (!pts || pts.length < 3) return this.draw();
    const v = this.paintValue();
    if (v === null) return this.draw();
    this.beginOp();
    this.refresh(fillPolygon(this.map, this.w, this.h, pts, v));
    this.endOp();
  },
};
