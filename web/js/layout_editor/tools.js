// The painting tools on the canvas: pointer and key handling, brush / eraser strokes, fill, shapes
// and the polygon; each finished action is one undo step (history.js).
// Installed on LayoutEditor.prototype (editor.js); `this` is the editor.

import { GRAPH_SELECTION_KEYS, TOOLS, ZOOM_STEP } from "./constants.js";
import { claimKey } from "./graph_undo.js";
import { moveMask } from "./transform.js";
import { fillEllipse, fillPolygon, fillRect, floodFill, stamp, strokeLine } from "./paint.js";

export const toolMethods = {
  bindCanvas() {
    const v = this.view;
    v.addEventListener("pointerdown", (e) => this.pointerDown(e));
    // Middle-drag pans the canvas. Frontend 1.49's Vue nodes hand a middle-button press to the graph
    // (which pans itself) from a listener above the node, so, as for Ctrl+wheel, the editor takes
    // middle presses on its own canvas at the window in the capture phase, before anything else.
    // The frontend also follows a held middle button from the window (its canvas pans and takes the
    // pointer), so while the editor pans, the moves and the release are the editor's there too.
    const atWindow = (type, fn) => window.addEventListener(type, fn, { capture: true });
    atWindow("pointerdown", (e) => {
      if (e.button === 1 && v.isConnected && v.contains(e.target)) this.pointerDown(e);
    });
    atWindow("pointermove", (e) => {
      if (!this.panning) return;
      e.stopPropagation();
      this.pointerMove(e);
    });
    for (const type of ["pointerup", "pointercancel"]) {
      atWindow(type, (e) => {
        if (!this.panning) return;
        e.stopPropagation();
        this.pointerUp(e);
      });
    }
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
    // Ctrl+wheel zooms the editor, not the graph. Frontend 1.49 hands every Ctrl+wheel over a Vue
    // node to the graph from a capture listener above the node, so the editor listens in the
    // capture phase at the window, which runs first, and claims only events over its own stage.
    window.addEventListener(
      "wheel",
      (e) => {
        if (!(e.ctrlKey || e.metaKey) || !this.stage.isConnected || !this.stage.contains(e.target)) return;
        e.preventDefault();
        e.stopPropagation();
        // one mouse notch (100 px) = one 1.25 step; a trackpad pinch sends small deltas: smaller steps
        const notches = e.deltaMode === 0 ? -e.deltaY / 100 : -Math.sign(e.deltaY);
        this.setZoom(this.zoom * ZOOM_STEP ** Math.max(-1, Math.min(1, notches)), { x: e.clientX, y: e.clientY });
      },
      { capture: true, passive: false },
    );
  },

  /** Keys while the focus is inside the editor. Ctrl+Z / Ctrl+Shift+Z / Ctrl+Y are the editor's
   * (claimed, so ComfyUI's graph history ignores them: graph_undo.js); other Ctrl / Cmd shortcuts
   * (Ctrl+S, Ctrl+Enter, ...) reach ComfyUI unless they act on the graph's selection; plain keys
   * (tool letters, Delete, Space) stay in the editor. */
  bindKeys() {
    this.root.addEventListener("keydown", (e) => {
      const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement;
      const k = e.key.toLowerCase();
      const mod = e.ctrlKey || e.metaKey;
      if (mod && !e.altKey && (k === "z" || k === "y")) {
        e.stopPropagation();
        if (typing) return; // the text box's own undo (ComfyUI leaves text boxes alone too)
        e.preventDefault();
        claimKey(e);
        if (k === "y" || e.shiftKey) this.redo();
        else this.undo();
        return;
      }
      if (mod && !GRAPH_SELECTION_KEYS.has(k)) return; // ComfyUI's own shortcuts keep working
      e.stopPropagation(); // the graph's selection shortcuts (delete, copy, bypass) must not fire
      if (typing || mod) return;
      if (k === " ") {
        e.preventDefault();
        this.spaceDown = true;
        this.view.style.cursor = "grab";
      } else if (k === "enter" && this.tool === "polygon") this.closePolygon();
      else if (k === "escape") {
        this.poly = null;
        this.draw();
      } else if (!e.altKey) {
        const t = TOOLS.find(([, , key]) => key.toLowerCase() === k);
        if (t) this.setTool(t[0]);
      }
    });
    this.root.addEventListener("keyup", (e) => {
      if (e.key !== " ") return;
      this.spaceDown = false;
      this.view.style.cursor = "";
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

  /** Pan (middle button, or Space + left button), pick (Alt + click), then the current tool. */
  pointerDown(e) {
    const pan = e.button === 1 || (e.button === 0 && this.spaceDown);
    if (e.button !== 0 && !pan) return;
    e.preventDefault();
    e.stopPropagation();
    this.view.focus({ preventScroll: true });
    this.view.setPointerCapture(e.pointerId);
    if (pan) {
      this.panning = { x: e.clientX, y: e.clientY, left: this.stage.scrollLeft, top: this.stage.scrollTop };
      this.view.style.cursor = "grabbing";
      return;
    }
    const [x, y] = this.toMap(e);
    if (e.altKey) return this.pick(x, y);
    if (this.tool === "polygon") {
      if (this.poly && this.poly.length >= 3) {
        const [fx, fy] = this.poly[0];
        const s = this.view.width / this.w;
        if (Math.hypot((fx - x) * s, (fy - y) * s) < 8) return this.closePolygon();
      }
      (this.poly ||= []).push([x, y]);
      return this.draw();
    }
    if (this.tool === "move") {
      if (!this.entities.some((x) => x.slot === this.active)) return this.message("Select an entity to move (click its row, or Alt+click it).", "error");
      this.beginOp();
      this.drag = { v: this.active, x, y, x0: x, y0: y };
      return;
    }
    const v = this.paintValue();
    if (v === null) return;
    this.beginOp();
    this.drag = { v, x, y };
    if (this.tool === "brush" || this.tool === "eraser") {
      this.painted(stamp(this.map, this.w, this.h, x, y, this.radius, v));
    } else if (this.tool === "fill") {
      this.painted(floodFill(this.map, this.w, this.h, x, y, v));
      this.drag = null;
      this.endOp();
    } else {
      this.shape = [x, y, x, y];
    }
  },

  pointerMove(e) {
    if (this.panning) {
      const k = this.view.getBoundingClientRect().width / this.view.offsetWidth || 1; // the graph's zoom
      this.stage.scrollLeft = this.panning.left - (e.clientX - this.panning.x) / k;
      this.stage.scrollTop = this.panning.top - (e.clientY - this.panning.y) / k;
      return;
    }
    const [x, y] = this.toMap(e);
    this.hover = [x, y];
    const d = this.drag;
    if (d && this.tool === "move") {
      this.map = moveMask(this.op.before, this.w, this.h, d.v, Math.round(x - d.x0), Math.round(y - d.y0), this.lockedSlots());
      this.refresh([0, 0, this.w, this.h]);
    } else if (d && (this.tool === "brush" || this.tool === "eraser")) {
      this.painted(strokeLine(this.map, this.w, this.h, d.x, d.y, x, y, this.radius, d.v));
      d.x = x;
      d.y = y;
    } else if (d && this.shape) {
      this.shape[2] = x;
      this.shape[3] = y;
    }
    this.draw();
  },

  pointerUp(e) {
    if (this.view.hasPointerCapture?.(e.pointerId)) this.view.releasePointerCapture(e.pointerId);
    if (this.panning) {
      this.panning = null;
      this.view.style.cursor = this.spaceDown ? "grab" : "";
      return;
    }
    const d = this.drag;
    if (!d) return;
    this.drag = null;
    if (this.shape) {
      const [x0, y0] = this.shape;
      const [x1, y1] = this.toMap(e);
      const fn = this.tool === "ellipse" ? fillEllipse : fillRect;
      this.painted(fn(this.map, this.w, this.h, x0, y0, x1, y1, d.v));
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
    this.painted(fillPolygon(this.map, this.w, this.h, pts, v));
    this.endOp();
  },

  /** Alt+click: select the entity whose pixel is under the pointer. */
  pick(x, y) {
    const px = Math.floor(x);
    const py = Math.floor(y);
    const slot = px >= 0 && py >= 0 && px < this.w && py < this.h ? this.map[py * this.w + px] : 0;
    const i = this.entities.findIndex((e) => e.slot === slot);
    if (i < 0) return this.message("No entity there (background).");
    this.select(slot);
    this.scrollToRow(slot);
    this.message(`Selected entity ${i + 1}${this.entities[i].prompt ? ` '${this.entities[i].prompt}'` : ""}.`);
  },

  /** Slots whose pixels no tool may overwrite (lookup table by slot). */
  lockedSlots() {
    const locked = new Uint8Array(256);
    for (const e of this.entities) if (e.locked) locked[e.slot] = 1;
    return locked;
  },

  /** After a tool wrote into `box`: pixels of locked entities get their value back, then redraw. */
  painted(box) {
    if (!box) return;
    const before = this.op?.before;
    if (before && this.entities.some((e) => e.locked)) {
      const locked = this.lockedSlots();
      const [x0, y0, x1, y1] = box;
      for (let y = y0; y < y1; y++) {
        for (let i = y * this.w + x0, end = y * this.w + x1; i < end; i++) if (locked[before[i]]) this.map[i] = before[i];
      }
    }
    this.refresh(box);
  },
};
