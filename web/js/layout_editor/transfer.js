// Layouts in and out: the official PNG + JSON (import by file or drop, export), the layout size, and
// trace images to paint over.
// Installed on LayoutEditor.prototype (editor.js); `this` is the editor.

import { MAX_ENTITIES, MIN_SIDE, MAX_SIDE } from "./constants.js";
import { backgroundFor, canvasBlob, colourKey, download, indexFromPixels, loadTraceImage, mapCanvas, officialJson, parseOfficialJson, readPixels } from "./files.js";
import { resizeMap, rgbToHex } from "./paint.js";
import { decodeDocument } from "./document.js";

export const transferMethods = {
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
  },

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
  },

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
        return { slot: i + 1, colour: s.colour, prompt: s.text, visible: !s.hidden };
      });
      const { map, unknown } = indexFromPixels(img, slotOf);
      if (unknown.size) notes.push(`${unknown.size} unlisted colour(s) became background`);
      this.unlisted = [...unknown].map(([k, n]) => [rgbToHex([(k >> 16) & 255, (k >> 8) & 255, k & 255]), n]); // problems.js reports them
      const hidden = ents.filter((e) => !e.visible).length;
      if (hidden) notes.push(`${hidden} hidden`);
      this.replaceLayout({ w: img.width, h: img.height, map, entities: ents, ...(spec ? { caption: spec.caption, seed: spec.seed } : {}) });
      this.message(`Imported ${png.name}${json ? ` + ${json.name}` : ""}: ${img.width}x${img.height}, ${ents.length} entities${notes.length ? "; " + notes.join("; ") : ""}.`);
    } catch (err) {
      this.message(`Import failed: ${err.message}`, "error");
    }
  },

  /** A whole new layout ({w, h, map, entities, caption?, seed?}; caption and seed kept when absent)
   * as one undo step, the first entity selected, the view fitted. */
  replaceLayout({ w, h, map, entities, caption = this.caption, seed = this.seed }) {
    this.beginOp();
    Object.assign(this, { w, h, map, entities, caption, seed });
    this.active = entities[0]?.slot ?? 0;
    this.captionInput.value = caption;
    this.resetLabels();
    this.renderRows();
    this.endOp();
    this.setZoom(1);
  },

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
  },

  /** A JSON without its PNG: prompts for the colours already here; new colours become entities
   * with no pixels yet, and the status says so (the run would refuse them). */
  importPrompts(spec) {
    let added = 0;
    this.edit(() => {
      const byHex = new Map(this.entities.map((e) => [rgbToHex(e.colour), e]));
      for (const s of spec.segments) {
        const e = byHex.get(rgbToHex(s.colour));
        if (e) e.prompt = s.text;
        else if (this.entities.length < MAX_ENTITIES) {
          this.entities.push({ slot: this.freeSlot(), colour: s.colour, prompt: s.text, visible: !s.hidden });
          added++;
        }
      }
      this.caption = spec.caption || this.caption;
      if (spec.seed !== null) this.seed = spec.seed;
      this.captionInput.value = this.caption;
    });
    const empty = added ? `; ${added} new entit${added === 1 ? "y has" : "ies have"} no pixels yet: paint ${added === 1 ? "it" : "them"} (or import the PNG too)` : "";
    this.message(`Imported prompts for ${spec.segments.length} colour(s)${empty}.`, added ? "error" : "info");
  },

  /** The official pair: the JSON lists the visible entities in the user's order (what the node
   * outputs), with the caption and seed; hidden entities keep their pixels in the PNG under their
   * own colour, listed apart in `hidden_segments_info` (official readers treat an unlisted colour
   * as background, as the node does), so export -> import gives back exactly this layout. */
  async officialFiles() {
    const all = new Array(256).fill(null);
    for (const e of this.entities) all[e.slot] = e.colour;
    const png = await canvasBlob(mapCanvas(this.map, this.w, this.h, all, backgroundFor(this.entities.map((e) => e.colour))));
    const list = this.entities.map((e) => ({ colour: e.colour, prompt: e.prompt.trim(), visible: e.visible }));
    return { png, json: officialJson(this.caption.trim(), list, this.seed) };
  },

  async exportFiles() {
    const { png, json } = await this.officialFiles();
    download("seg2any_layout.png", png);
    download("seg2any_layout.json", new Blob([json], { type: "application/json" }));
    this.message("Exported seg2any_layout.png + seg2any_layout.json.");
  },

  /** After a run: the layout on the node's 'segmentation' + 'segments' inputs (as a document). An
   * empty editor takes it in; a painted one keeps its painting and offers 'Take in input', so a new
   * detection upstream never overwrites the user's refinements by itself. */
  offerIncoming(text) {
    if (!text || text === this.incomingSeen) return;
    this.incomingSeen = text;
    this.incoming = text;
    if (!this.entities.length) return this.takeIncoming();
    let n = "?";
    try {
      n = String(JSON.parse(text).entities.length);
    } catch {
      /* counted when taken in */
    }
    this.takeInButton.textContent = `Take in input (${n})`;
    this.takeInButton.hidden = false;
    this.message(`The layout on the 'segmentation' input changed (${n} entities): 'Take in input' replaces the painting with it (Ctrl+Z brings the painting back).`);
  },

  /** The offered input layout replaces the painting, as one undo step. */
  async takeIncoming() {
    const text = this.incoming;
    if (!text) return this.message("Nothing to take in: connect 'segmentation' + 'segments' and run the workflow.", "error");
    try {
      const d = await decodeDocument(text);
      this.unlisted = []; // a stored document has no unlisted colours: an earlier import's are gone
      this.replaceLayout(d);
      this.incoming = null;
      this.takeInButton.hidden = true;
      this.message(`Took in the input layout: ${d.w}x${d.h}, ${d.entities.length} entities; refine it here (Ctrl+Z undoes).`);
    } catch (err) {
      this.message(`Could not take in the input layout: ${err.message}`, "error");
    }
  },

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
  },
};
