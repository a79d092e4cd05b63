// What the canvas shows: fit and zoom about a point, the colour-coded label layer redrawn only in
// the box a tool touched, the trace image under it and the tool overlays on top.
// Installed on LayoutEditor.prototype (editor.js); `this` is the editor.

import { MAX_VIEW_PIXELS } from "./constants.js";

export const viewMethods = {
  fitScale() {
    const sw = Math.max(50, this.stage.clientWidth - 4);
    const sh = Math.max(50, this.stage.clientHeight - 4);
    return Math.min(sw / this.w, sh / this.h);
  },

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
  },

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
  },

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
  },

  refreshLut() {
    this.lut = new Uint8ClampedArray(256 * 4);
    for (const e of this.entities) {
      if (!e.visible) continue;
      this.lut.set([e.colour[0], e.colour[1], e.colour[2], 255], e.slot * 4);
    }
  },

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
  },

  draw() {
    if (this.drawQueued) return;
    this.drawQueued = true;
    requestAnimationFrame(() => {
      this.drawQueued = false;
      this.drawNow();
    });
  },

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
  },

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
  },
};
