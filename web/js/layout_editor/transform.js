// Moving, flipping and scaling one entity's pixels in the index map (pure functions, like paint.js).
// Each returns a new map: the entity's old pixels become background, its pixels land at the new
// place wherever no locked entity is (locked[slot] = 1), over any other entity.

/** The entity's bounding box [x0, y0, x1, y1) in `map`, or null when it has no pixel. */
export function maskBox(map, w, h, slot) {
  let x0 = w;
  let y0 = h;
  let x1 = -1;
  let y1 = -1;
  for (let y = 0, i = 0; y < h; y++) {
    for (let x = 0; x < w; x++, i++) {
      if (map[i] !== slot) continue;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
    }
  }
  return x1 < 0 ? null : [x0, y0, x1 + 1, y1 + 1];
}

/** Re-place the entity: `dest` is the box it lands in, `source(x, y)` the pixel centre it comes from. */
function remap(base, w, h, slot, dest, source, locked) {
  const out = base.slice();
  for (let i = 0; i < out.length; i++) if (out[i] === slot) out[i] = 0;
  const x0 = Math.max(0, Math.floor(dest[0]));
  const y0 = Math.max(0, Math.floor(dest[1]));
  const x1 = Math.min(w, Math.ceil(dest[2]));
  const y1 = Math.min(h, Math.ceil(dest[3]));
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const [sx, sy] = source(x + 0.5, y + 0.5).map(Math.floor);
      if (sx < 0 || sy < 0 || sx >= w || sy >= h || base[sy * w + sx] !== slot) continue;
      const d = y * w + x;
      if (!locked[out[d]]) out[d] = slot;
    }
  }
  return out;
}

export function moveMask(base, w, h, slot, dx, dy, locked) {
  const b = maskBox(base, w, h, slot);
  if (!b) return base.slice();
  return remap(base, w, h, slot, [b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy], (x, y) => [x - dx, y - dy], locked);
}

/** Mirror inside its own box: horizontally (`axis` "x") or vertically ("y"). */
export function flipMask(base, w, h, slot, axis, locked) {
  const b = maskBox(base, w, h, slot);
  if (!b) return base.slice();
  return remap(base, w, h, slot, b, (x, y) => (axis === "x" ? [b[0] + b[2] - x, y] : [x, b[1] + b[3] - y]), locked);
}

/** Scale by `k` about the centre of its box (nearest pixel). */
export function scaleMask(base, w, h, slot, k, locked) {
  const b = maskBox(base, w, h, slot);
  if (!b) return base.slice();
  const cx = (b[0] + b[2]) / 2;
  const cy = (b[1] + b[3]) / 2;
  const dest = [cx - (cx - b[0]) * k, cy - (cy - b[1]) * k, cx + (b[2] - cx) * k, cy + (b[3] - cy) * k];
  return remap(base, w, h, slot, dest, (x, y) => [cx + (x - cx) / k, cy + (y - cy) / k], locked);
}
