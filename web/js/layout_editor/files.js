// Pictures in and out of the editor: the stored document's PNG colour map, the official PNG + JSON
// pair (import and export), trace images. Colour maps are read with colour management off, so a
// PNG carrying gAMA/iCCP chunks (the official animals.png does) keeps its exact bytes.

import { parseColour, rgbToHex } from "./paint.js";

// Background candidates for exported maps: the first one no visible entity uses (the stored map
// keeps the background transparent instead, so any colour, black included, can be an entity's).
export const BACKGROUNDS = [
  [0, 0, 0],
  [255, 255, 255],
  [128, 128, 128],
  [1, 2, 3],
];

export function backgroundFor(colours) {
  const used = new Set(colours.map((c) => (c[0] << 16) | (c[1] << 8) | c[2]));
  return BACKGROUNDS.find((c) => !used.has((c[0] << 16) | (c[1] << 8) | c[2]));
}

function scratch(w, h) {
  const c = document.createElement("canvas");
  c.width = w;
  c.height = h;
  return c;
}

/** RGBA pixels of a PNG (Blob or data URL), exactly as stored. */
export async function readPixels(source) {
  const blob = typeof source === "string" ? await (await fetch(source)).blob() : source;
  const bmp = await createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  const c = scratch(bmp.width, bmp.height);
  const ctx = c.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bmp, 0, 0);
  bmp.close?.();
  return ctx.getImageData(0, 0, c.width, c.height);
}

/** Index map from RGBA pixels: colours found in `slotOf` (key -> slot) get their slot; transparent
 * pixels, and opaque black when no entity is black, are background; other colours are counted. */
export function indexFromPixels(img, slotOf) {
  const { data, width, height } = img;
  const map = new Uint8Array(width * height);
  const unknown = new Map();
  for (let i = 0, p = 0; i < map.length; i++, p += 4) {
    if (data[p + 3] < 128) continue;
    const key = (data[p] << 16) | (data[p + 1] << 8) | data[p + 2];
    const slot = slotOf.get(key);
    if (slot !== undefined) map[i] = slot;
    else if (key !== 0) unknown.set(key, (unknown.get(key) || 0) + 1);
  }
  return { map, unknown };
}

export function colourKey(c) {
  return (c[0] << 16) | (c[1] << 8) | c[2];
}

/** Colour-map canvas: each slot's colour (`colourOf[slot]`; null = background), the background
 * transparent (`background` null, the stored map) or opaque in the given colour (exports). */
export function mapCanvas(map, w, h, colourOf, background = null) {
  const c = scratch(w, h);
  const ctx = c.getContext("2d");
  const img = ctx.createImageData(w, h);
  const d = img.data;
  for (let i = 0, p = 0; i < map.length; i++, p += 4) {
    const col = colourOf[map[i]] || background;
    if (!col) continue; // transparent (createImageData starts at 0, 0, 0, 0)
    d[p] = col[0];
    d[p + 1] = col[1];
    d[p + 2] = col[2];
    d[p + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  return c;
}

/** Parse the official JSON text: {caption, seed, segments_info: [{color, text}]} (or a bare list),
 * plus the editor's `hidden_segments_info: [{color, text, index}]` (entities hidden at export, at
 * their place `index` in the full list). Segments come back in the file's order. */
export function parseOfficialJson(text) {
  let spec;
  try {
    spec = JSON.parse(text);
  } catch (e) {
    throw new Error(`the JSON file is not valid JSON (${e.message})`);
  }
  if (Array.isArray(spec)) spec = { segments_info: spec };
  if (!spec || typeof spec !== "object" || !Array.isArray(spec.segments_info)) {
    throw new Error("the JSON file has no 'segments_info' list");
  }
  const seen = new Set();
  const read = (key, hidden) => (item, i) => {
    const colour = parseColour(item && item.color);
    if (!colour) throw new Error(`${key}[${i}]: 'color' must be [r, g, b] or '#rrggbb'`);
    const hex = rgbToHex(colour);
    if (seen.has(hex)) throw new Error(`${key}[${i}]: colour ${hex} is listed twice`);
    seen.add(hex);
    return { colour, text: typeof item.text === "string" ? item.text.trim() : "", hidden, index: item.index };
  };
  const segments = spec.segments_info.map(read("segments_info", false));
  const hidden = Array.isArray(spec.hidden_segments_info) ? spec.hidden_segments_info.map(read("hidden_segments_info", true)) : [];
  for (const h of hidden.sort((a, b) => a.index - b.index)) {
    const at = Number.isInteger(h.index) ? Math.max(0, Math.min(segments.length, h.index)) : segments.length;
    segments.splice(at, 0, h);
  }
  const seed = Number.isInteger(spec.seed) ? spec.seed : null;
  return { caption: typeof spec.caption === "string" ? spec.caption : "", seed, segments };
}

/** The official JSON of `entities` [{colour, prompt, visible}] in their order (see parseOfficialJson). */
export function officialJson(caption, entities, seed = null) {
  const out = { caption };
  if (seed !== null) out.seed = seed;
  out.segments_info = entities.filter((e) => e.visible).map((e) => ({ color: e.colour.slice(), text: e.prompt }));
  const hidden = entities.map((e, index) => ({ ...e, index })).filter((e) => !e.visible);
  if (hidden.length) out.hidden_segments_info = hidden.map((e) => ({ color: e.colour.slice(), text: e.prompt, index: e.index }));
  return JSON.stringify(out, null, 2);
}

export function download(name, blob) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

export function canvasBlob(canvas) {
  return new Promise((resolve, reject) =>
    canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("the browser could not encode the PNG"))), "image/png"),
  );
}

export function readText(file) {
  return file.text();
}

/** An image for tracing from a URL or File (drawn scaled under the paint layer). */
export async function loadTraceImage(source) {
  const blob = typeof source === "string" ? await (await fetch(source)).blob() : source;
  return createImageBitmap(blob);
}
