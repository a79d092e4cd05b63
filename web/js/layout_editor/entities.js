// The entity list: add, delete, reorder, recolour, hide, the rows the user edits prompts in, and
// their T5 token counts (the server counts with the pack's tokenizer, as the builder does).
// Installed on LayoutEditor.prototype (editor.js); `this` is the editor.

import { MAX_ENTITIES } from "./constants.js";
import { el } from "./dom.js";
import { colourKey } from "./files.js";
import { hexToRgb, nextColour, rgbToHex } from "./paint.js";

export const entityMethods = {
  /** Seg2Any orders entities by colour (sorted RGB, as the official reader does), and so do the
   * builder's report and the Layout Preview legend: the list keeps that order so a row's number is
   * the number they show. Reordering therefore swaps colours (see moveEntity). */
  sortEntities(list = this.entities) {
    return list.sort((a, b) => colourKey(a.colour) - colourKey(b.colour));
  },

  freeSlot() {
    const used = new Set(this.entities.map((e) => e.slot));
    for (let s = 1; s <= MAX_ENTITIES; s++) if (!used.has(s)) return s;
    return 0;
  },

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
  },

  deleteEntity(slot) {
    this.edit(() => {
      this.entities = this.entities.filter((e) => e.slot !== slot);
      for (let i = 0; i < this.map.length; i++) if (this.map[i] === slot) this.map[i] = 0;
      if (this.active === slot) this.active = this.entities[0]?.slot ?? 0;
    });
  },

  moveEntity(slot, delta) {
    const i = this.entities.findIndex((e) => e.slot === slot);
    const j = i + delta;
    if (i < 0 || j < 0 || j >= this.entities.length) return;
    this.edit(() => {
      const [a, b] = [this.entities[i], this.entities[j]];
      [a.colour, b.colour] = [b.colour, a.colour]; // the entity takes its neighbour's place in the order
    });
  },

  setColour(slot, hex, input) {
    const c = hexToRgb(hex);
    const clash = this.entities.find((e) => e.slot !== slot && rgbToHex(e.colour) === hex.toLowerCase());
    if (!c || clash) {
      this.message(clash ? `${hex} is already entity ${this.entities.indexOf(clash) + 1}'s colour.` : `${hex} is not a colour.`, "error");
      input.value = rgbToHex(this.entities.find((e) => e.slot === slot).colour);
      return;
    }
    this.edit(() => (this.entities.find((e) => e.slot === slot).colour = c));
  },

  pixelCounts() {
    const n = new Uint32Array(256);
    for (let i = 0; i < this.map.length; i++) n[this.map[i]]++;
    return n;
  },

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
  },

  select(slot) {
    this.active = slot;
    for (const r of this.rows.children) r.classList.toggle("s2a-active", Number(r.dataset.slot) === slot);
  },

  scheduleCounts() {
    clearTimeout(this.tokenTimer);
    this.tokenTimer = setTimeout(() => this.fetchCounts(), 250);
  },

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
  },

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
  },
};
