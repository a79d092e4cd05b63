// Painting on an index map: one byte per pixel, 0 = background, 1..255 = an entity's slot.
// Every tool writes bytes into a Uint8Array, never per-pixel DOM or canvas paths, so 25+ entities
// on a 1024x1024 layout stay as cheap as one; the canvas only shows the result (editor.js).
// Each function returns the touched box [x0, y0, x1, y1) (or null) so only that part is redrawn.

export function clipBox(w, h, x0, y0, x1, y1) {
  const a = Math.max(0, Math.floor(x0));
  const b = Math.max(0, Math.floor(y0));
  const c = Math.min(w, Math.ceil(x1));
  const d = Math.min(h, Math.ceil(y1));
  return c > a && d > b ? [a, b, c, d] : null;
}

export function unionBox(a, b) {
  if (!a) return b;
  if (!b) return a;
  return [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[2], b[2]), Math.max(a[3], b[3])];
}

/** A filled disc of radius r (pixels) centred at (cx, cy), pixel centres inside it. */
export function stamp(map, w, h, cx, cy, r, v) {
  const rr = Math.max(0.5, r);
  const box = clipBox(w, h, cx - rr, cy - rr, cx + rr + 1, cy + rr + 1);
  if (!box) return null;
  const r2 = rr * rr;
  for (let y = box[1]; y < box[3]; y++) {
    const dy = y + 0.5 - cy;
    for (let x = box[0]; x < box[2]; x++) {
      const dx = x + 0.5 - cx;
      if (dx * dx + dy * dy <= r2) map[y * w + x] = v;
    }
  }
  return box;
}

/** A brush stroke segment: discs every r/3 pixels so fast pointer moves leave no gaps. */
export function strokeLine(map, w, h, x0, y0, x1, y1, r, v) {
  const len = Math.hypot(x1 - x0, y1 - y0);
  const steps = Math.max(1, Math.ceil(len / Math.max(0.5, r / 3)));
  let box = null;
  for (let i = 0; i <= steps; i++) {
    const t = i / steps;
    box = unionBox(box, stamp(map, w, h, x0 + (x1 - x0) * t, y0 + (y1 - y0) * t, r, v));
  }
  return box;
}

export function fillRect(map, w, h, x0, y0, x1, y1, v) {
  const box = clipBox(w, h, Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1));
  if (!box) return null;
  for (let y = box[1]; y < box[3]; y++) map.fill(v, y * w + box[0], y * w + box[2]);
  return box;
}

/** The ellipse inscribed in the dragged box (pixel centres inside). */
export function fillEllipse(map, w, h, x0, y0, x1, y1, v) {
  const ax = Math.min(x0, x1);
  const bx = Math.max(x0, x1);
  const ay = Math.min(y0, y1);
  const by = Math.max(y0, y1);
  const rx = (bx - ax) / 2;
  const ry = (by - ay) / 2;
  if (rx <= 0 || ry <= 0) return null;
  const cx = ax + rx;
  const cy = ay + ry;
  const box = clipBox(w, h, ax, ay, bx, by);
  if (!box) return null;
  for (let y = box[1]; y < box[3]; y++) {
    const dy = (y + 0.5 - cy) / ry;
    for (let x = box[0]; x < box[2]; x++) {
      const dx = (x + 0.5 - cx) / rx;
      if (dx * dx + dy * dy <= 1) map[y * w + x] = v;
    }
  }
  return box;
}

/** Even-odd scanline fill of a closed polygon [[x, y], ...] through pixel centres. */
export function fillPolygon(map, w, h, pts, v) {
  if (pts.length < 3) return null;
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  const box = clipBox(w, h, Math.min(...xs), Math.min(...ys), Math.max(...xs) + 1, Math.max(...ys) + 1);
  if (!box) return null;
  const n = pts.length;
  for (let y = box[1]; y < box[3]; y++) {
    const sy = y + 0.5;
    const cross = [];
    for (let i = 0; i < n; i++) {
      const [ax, ay] = pts[i];
      const [bx, by] = pts[(i + 1) % n];
      if ((ay <= sy && by > sy) || (by <= sy && ay > sy)) cross.push(ax + ((sy - ay) / (by - ay)) * (bx - ax));
    }
    cross.sort((p, q) => p - q);
    for (let k = 0; k + 1 < cross.length; k += 2) {
      const from = Math.max(box[0], Math.ceil(cross[k] - 0.5));
      const to = Math.min(box[2] - 1, Math.floor(cross[k + 1] - 0.5));
      if (to >= from) map.fill(v, y * w + from, y * w + to + 1);
    }
  }
  return box;
}

/** 4-connected flood fill of the region holding the clicked value (scanline, explicit stack). */
export function floodFill(map, w, h, x, y, v) {
  x = Math.floor(x);
  y = Math.floor(y);
  if (x < 0 || y < 0 || x >= w || y >= h) return null;
  const target = map[y * w + x];
  if (target === v) return null;
  const stack = [x, y];
  let box = [x, y, x + 1, y + 1];
  while (stack.length) {
    const sy = stack.pop();
    const sx = stack.pop();
    let l = sx;
    const row = sy * w;
    if (map[row + l] !== target) continue;
    while (l > 0 && map[row + l - 1] === target) l--;
    let r = sx;
    while (r < w - 1 && map[row + r + 1] === target) r++;
    map.fill(v, row + l, row + r + 1);
    box = unionBox(box, [l, sy, r + 1, sy + 1]);
    for (const ny of [sy - 1, sy + 1]) {
      if (ny < 0 || ny >= h) continue;
      const nrow = ny * w;
      let inRun = false;
      for (let i = l; i <= r; i++) {
        const hit = map[nrow + i] === target;
        if (hit && !inRun) stack.push(i, ny);
        inRun = hit;
      }
    }
  }
  return box;
}

/** Nearest-neighbour resize of an index map (used when the layout size changes). */
export function resizeMap(map, w, h, nw, nh) {
  const out = new Uint8Array(nw * nh);
  for (let y = 0; y < nh; y++) {
    const sy = Math.min(h - 1, Math.floor(((y + 0.5) * h) / nh));
    for (let x = 0; x < nw; x++) out[y * nw + x] = map[sy * w + Math.min(w - 1, Math.floor(((x + 0.5) * w) / nw))];
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// colours

export function hexToRgb(hex) {
  const m = /^#?([0-9a-f]{6})$/i.exec(String(hex).trim());
  if (!m) return null;
  const n = parseInt(m[1], 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

export function rgbToHex(c) {
  return "#" + c.map((v) => v.toString(16).padStart(2, "0")).join("");
}

/** An official JSON colour: [r, g, b], "#rrggbb" or "r,g,b". */
export function parseColour(value) {
  if (Array.isArray(value) && value.length === 3 && value.every((v) => Number.isInteger(v) && v >= 0 && v <= 255)) {
    return value.slice();
  }
  if (typeof value === "string") {
    const hex = hexToRgb(value);
    if (hex) return hex;
    const parts = value.split(/[\s,;()[\]]+/).filter(Boolean).map(Number);
    if (parts.length === 3 && parts.every((v) => Number.isInteger(v) && v >= 0 && v <= 255)) return parts;
  }
  return null;
}

function hsv(hh, s, v) {
  const i = Math.floor(hh * 6);
  const f = hh * 6 - i;
  const p = v * (1 - s);
  const q = v * (1 - f * s);
  const t = v * (1 - (1 - f) * s);
  const rgb = [
    [v, t, p],
    [q, v, p],
    [p, v, t],
    [p, q, v],
    [t, p, v],
    [v, p, q],
  ][i % 6];
  return rgb.map((c) => Math.round(c * 255));
}

/** A clearly different colour for the next entity: golden-ratio hues over a few shades. */
export function nextColour(used) {
  const taken = new Set(used.map(rgbToHex));
  for (let i = 0; i < 4096; i++) {
    const c = hsv((0.07 + i * 0.618034) % 1, i % 3 === 2 ? 0.55 : 0.85, i % 4 === 3 ? 0.7 : 0.95);
    const hex = rgbToHex(c);
    if (!taken.has(hex) && hex !== "#000000") return c;
  }
  return [1 + Math.floor(Math.random() * 254), 1 + Math.floor(Math.random() * 254), 1 + Math.floor(Math.random() * 254)];
}
