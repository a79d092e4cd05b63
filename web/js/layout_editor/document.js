// The stored document: the string the node's `layout` widget holds (seg2any/layout/editor_document.py
// validates it on the server), written when something changed and decoded when a workflow loads.
// Installed on LayoutEditor.prototype (editor.js); `this` is the editor.

import { VERSION, DEFAULT_SIDE } from "./constants.js";
import { colourKey, indexFromPixels, mapCanvas, readPixels } from "./files.js";
import { hexToRgb, rgbToHex } from "./paint.js";

/** A stored document decoded into the editor's state: size, index map, entities (in the stored
 * order, slots 1..n), caption and seed. Throws with what is wrong. */
export async function decodeDocument(text) {
  const doc = JSON.parse(text);
  if (doc.version !== VERSION) throw new Error(`unsupported version ${doc.version}`);
  const entities = (doc.entities || []).map((e, i) => ({
    slot: i + 1,
    colour: hexToRgb(e.color) || [255, 0, 255],
    prompt: e.prompt || "",
    visible: e.visible !== false,
    locked: e.locked === true,
  }));
  const slotOf = new Map(entities.map((e) => [colourKey(e.colour), e.slot]));
  const img = await readPixels(doc.map);
  if (img.width !== doc.width || img.height !== doc.height) throw new Error(`map is ${img.width}x${img.height}, document says ${doc.width}x${doc.height}`);
  const { map } = indexFromPixels(img, slotOf);
  return { w: doc.width, h: doc.height, map, entities, caption: doc.caption || "", seed: Number.isInteger(doc.seed) ? doc.seed : null };
}

export const documentMethods = {
  changed(pixels) {
    this.docCache = null;
    this.pending = null;
    if (pixels) this.mapUrl = null;
    this.scheduleCounts();
    this.scheduleProblems();
    this.showProblems();
    this.onChange();
  },

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
      entities: this.entities.map((e) => ({ color: rgbToHex(e.colour), prompt: e.prompt, visible: e.visible, ...(e.locked ? { locked: true } : {}) })),
      ...(this.seed !== null ? { seed: this.seed } : {}),
      map: this.mapUrl,
    });
    return this.docCache;
  },

  async fromDocument(text) {
    if (!text) {
      this.loadState(DEFAULT_SIDE, DEFAULT_SIDE, new Uint8Array(DEFAULT_SIDE * DEFAULT_SIDE), [], "");
      this.docCache = null;
      return;
    }
    if (text === this.docCache || text === this.pending) return;
    this.pending = text;
    try {
      const d = await decodeDocument(text);
      if (this.pending !== text) return; // replaced meanwhile
      this.loadState(d.w, d.h, d.map, d.entities, d.caption, d.seed);
      this.pending = null;
      this.docCache = text;
    } catch (err) {
      this.pending = null;
      this.message(`The stored layout could not be read (${err.message}); it is kept unchanged until you edit.`, "error");
      this.docCache = text;
    }
  },

  loadState(w, h, map, ents, caption, seed = null) {
    this.seed = seed;
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
    this.unlisted = []; // colours an import turned into background: none in a stored document
    this.renderRows();
    this.scheduleCounts();
    this.scheduleProblems();
  },

  /** For tests and curious users: what the editor holds, in numbers. */
  summary() {
    const n = this.pixelCounts();
    return {
      width: this.w,
      height: this.h,
      caption: this.caption,
      seed: this.seed,
      active: this.entities.findIndex((e) => e.slot === this.active),
      entities: this.entities.map((e) => ({ colour: rgbToHex(e.colour), prompt: e.prompt, visible: e.visible, locked: !!e.locked, pixels: n[e.slot] })),
      counts: this.counts?.counts ?? null,
      trace: this.trace ? [this.trace.width, this.trace.height] : null,
      undo: this.undoStack.length,
      redo: this.redoStack.length,
    };
  },
};
