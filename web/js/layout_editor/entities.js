// The entity list: add, delete, reorder, recolour, hide, the rows the user edits prompts in, and
// their T5 token counts (the server counts with the pack's tokenizer, as the builder does).
// Installed on LayoutEditor.prototype (editor.js); `this` is the editor.

import { MAX_ENTITIES } from "./constants.js";
import { el } from "./dom.js";
import { foreignUndo } from "./graph_undo.js";
import { hexToRgb, nextColour, rgbToHex } from "./paint.js";
import { flipMask, scaleMask } from "./transform.js";

/** A prompt box as tall as its lines (up to four), so long prompts read without scrolling. */
function fitHeight(t) {
  t.style.height = "auto";
  if (t.scrollHeight) t.style.height = `${Math.min(t.scrollHeight + 2, 74)}px`;
}

export const entityMethods = {
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
    this.scrollToRow(slot);
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

  /** The user's order is the document's order: moving keeps every entity's colour and pixels. */
  moveEntity(slot, delta) {
    const i = this.entities.findIndex((e) => e.slot === slot);
    this.moveEntityTo(slot, i + delta);
  },

  moveEntityTo(slot, j) {
    const i = this.entities.findIndex((e) => e.slot === slot);
    if (i < 0 || j < 0 || j >= this.entities.length || j === i) return;
    this.edit(() => this.entities.splice(j, 0, ...this.entities.splice(i, 1)));
    this.scrollToRow(slot);
  },

  /** Scroll the list (only the list: never the page around the node) so the row shows. */
  scrollToRow(slot) {
    const row = this.rows.querySelector(`.s2a-row[data-slot="${slot}"]`);
    if (!row) return;
    const top = row.offsetTop - this.rows.offsetTop;
    if (top < this.rows.scrollTop) this.rows.scrollTop = top;
    else if (top + row.offsetHeight > this.rows.scrollTop + this.rows.clientHeight) {
      this.rows.scrollTop = top + row.offsetHeight - this.rows.clientHeight;
    }
  },

  /** Flip ("x" / "y") or scale (a factor) the selected entity's pixels: one undo step. */
  transformActive(kind) {
    if (!this.entities.some((e) => e.slot === this.active)) return this.message("Select an entity first (click its row, or Alt+click it).", "error");
    this.beginOp();
    const locked = this.lockedSlots();
    const base = this.map;
    this.map = typeof kind === "number" ? scaleMask(base, this.w, this.h, this.active, kind, locked) : flipMask(base, this.w, this.h, this.active, kind, locked);
    this.refresh([0, 0, this.w, this.h]);
    this.endOp();
  },

  /** Drag a row by its number to reorder (pointer events, so touch and pen work too). */
  bindRowDrag(handle, slot) {
    handle.addEventListener("pointerdown", (ev) => {
      if (ev.button !== 0) return;
      ev.preventDefault();
      handle.setPointerCapture(ev.pointerId);
      this.rowDrag = { slot, y: ev.clientY, moved: false, to: null };
    });
    handle.addEventListener("pointermove", (ev) => {
      const d = this.rowDrag;
      if (!d || d.slot !== slot) return;
      if (Math.abs(ev.clientY - d.y) > 3) d.moved = true;
      if (!d.moved) return;
      // the index it lands at = how many other rows' middles are above the pointer
      const others = [...this.rows.children].filter((r) => Number(r.dataset.slot) !== slot);
      d.to = others.filter((r) => {
        const b = r.getBoundingClientRect();
        return ev.clientY > b.top + b.height / 2;
      }).length;
      others.forEach((r, k) => {
        r.classList.toggle("s2a-drop-before", k === d.to);
        r.classList.toggle("s2a-drop-after", d.to === others.length && k === others.length - 1);
      });
    });
    const end = (ev) => {
      const d = this.rowDrag;
      if (!d || d.slot !== slot) return;
      this.rowDrag = null;
      for (const r of this.rows.children) r.classList.remove("s2a-drop-before", "s2a-drop-after");
      if (handle.hasPointerCapture?.(ev.pointerId)) handle.releasePointerCapture(ev.pointerId);
      if (!d.moved) return this.select(slot);
      if (d.to !== null) this.moveEntityTo(slot, d.to);
    };
    handle.addEventListener("pointerup", end);
    handle.addEventListener("pointercancel", end);
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
    this.rows.replaceChildren(
      ...this.entities.map((e, i) => {
        const num = String(i + 1); // the run's errors name entities by this place in the list
        const swatch = el("input", { type: "color", class: "s2a-swatch", value: rgbToHex(e.colour), title: "Entity colour (unique)" });
        swatch.addEventListener("change", () => this.setColour(e.slot, swatch.value, swatch));
        const prompt = el("textarea", { class: "s2a-prompt", rows: "1", placeholder: `entity ${num}: what is here?` });
        prompt.value = e.prompt;
        prompt.addEventListener("focus", () => this.select(e.slot));
        prompt.addEventListener("input", (ev) => {
          if (foreignUndo(ev, prompt)) return void (prompt.value = e.prompt);
          e.prompt = prompt.value;
          fitHeight(prompt);
          this.changed(false);
        });
        const num_ = el("span", { class: "s2a-num", text: num, title: "Its place in the list (the node's errors name it so). Drag to reorder; click to paint with it." });
        this.bindRowDrag(num_, e.slot);
        const row = el(
          "div",
          { class: `s2a-row${e.slot === this.active ? " s2a-active" : ""}${e.visible ? "" : " s2a-hidden"}`, "data-slot": String(e.slot), "data-index": String(i) },
          num_,
          swatch,
          prompt,
          el("span", { class: "s2a-tokens s2a-entity-tokens", text: "" }),
          el("button", {
            class: "s2a-eye",
            title: e.visible ? "Hide (a hidden entity is left out of the output)" : "Show",
            text: e.visible ? "◉" : "○",
            onclick: () => this.edit(() => (e.visible = !e.visible)),
          }),
          el("button", {
            class: `s2a-lock${e.locked ? " s2a-on" : ""}`,
            title: e.locked ? "Unlock" : "Lock (no stroke, fill or shape overwrites its pixels)",
            text: e.locked ? "▣" : "□", // plain glyphs: emoji fonts are not everywhere
            onclick: () => this.edit(() => (e.locked = !e.locked)),
          }),
          el("button", { class: "s2a-up", title: "Move up (keeps its colour and pixels)", text: "▲", onclick: () => this.moveEntity(e.slot, -1) }),
          el("button", { class: "s2a-down", title: "Move down (keeps its colour and pixels)", text: "▼", onclick: () => this.moveEntity(e.slot, 1) }),
          el("button", { class: "s2a-del", title: "Delete (its pixels become background)", text: "✕", onclick: () => this.deleteEntity(e.slot) }),
        );
        row.addEventListener("pointerdown", (ev) => {
          if (ev.target === row) this.select(e.slot);
        });
        return row;
      }),
    );
    this.countLabel.textContent = `${this.entities.length}`;
    for (const t of this.rows.querySelectorAll(".s2a-prompt")) fitHeight(t);
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
      span.title = n !== undefined && n > limit ? over : "T5 tokens (with </s>)";
    };
    let over = "Over 512 T5 tokens: the run keeps the first 512 (as upstream does)";
    put(this.captionTokens, c?.counts?.[0], c?.global_limit ?? 512);
    over = "Over 50 T5 tokens: the builder refuses this entity's caption (the adapters were trained with 50)";
    [...this.rows.children].forEach((row, i) => put(row.querySelector(".s2a-entity-tokens"), c?.counts?.[i + 1], c?.entity_limit ?? 50));
    this.showProblems();
  },
};
