// What the run would refuse or change, shown in the editor while painting, in the run's wording.
// The server computes the list (POST /seg2any/layout_problems: seg2any/conditioning/problems.py, the
// function the builder's report uses), so vanished entities are checked at the size the run renders,
// and entities are named by their row ("entity 3" is row 3). Until the server has answered for the
// current layout, the quick local checks below stand in (same words, no token grid).
// Installed on LayoutEditor.prototype (editor.js); `this` is the editor.

import { rgbToHex } from "./paint.js";

const PROBLEMS_ROUTE = "/seg2any/layout_problems";
const PROBLEMS_DELAY_MS = 400; // after the last stroke or keystroke

/** "entity 3 (#3f24f2) 'a cat'": the run's name for list position i (0-based). */
export function entityName(i, e) {
  const p = e.prompt.trim();
  const short = p.length <= 40 ? p : p.slice(0, 37) + "...";
  return `entity ${i + 1} (${rgbToHex(e.colour)})${short ? ` '${short}'` : ""}`;
}

/** Problems of a layout: entities [{colour, prompt, visible}], pixels[i] per entity, token counts
 * ([caption, ...entities] or null) with their limits. */
export function layoutProblems(entities, pixels, counts, entityLimit = 50, globalLimit = 512) {
  const out = [];
  entities.forEach((e, i) => {
    if (!e.visible) return;
    if (!e.prompt.trim()) out.push(`${entityName(i, e)}: the prompt is empty`);
    if (pixels[i] === 0) out.push(`${entityName(i, e)} is not painted anywhere: paint it, hide it or delete it`);
    const n = counts?.[i + 1];
    if (n !== undefined && n > entityLimit) out.push(`${entityName(i, e)} has ${n} T5 tokens, over ${entityLimit}: the builder refuses it; shorten it`);
  });
  if (entities.length && !entities.some((e) => e.visible)) out.push("the layout editor has no visible entity: add one (or show a hidden one) and paint it");
  const g = counts?.[0];
  if (g !== undefined && g > globalLimit) out.push(`the global caption has ${g} T5 tokens: the run keeps the first ${globalLimit}`);
  return out;
}

export const problemMethods = {
  /** Ask the server for the run's problems once the user pauses (strokes, typing, imports). */
  scheduleProblems() {
    clearTimeout(this.problemTimer);
    this.problemTimer = setTimeout(() => this.fetchProblems(), PROBLEMS_DELAY_MS);
  },

  async fetchProblems() {
    const document = this.toDocument();
    if (this.pending !== null || !this.entities.length) return; // nothing decoded yet / nothing to check
    const model = this.renderModel?.() ?? "flux";
    const unlisted = this.unlisted ?? [];
    try {
      const r = await this.api.fetchApi(PROBLEMS_ROUTE, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ document, model, unlisted }) });
      const body = await r.json();
      if (!r.ok) throw new Error(body.error || r.statusText);
      if (document !== this.toDocument()) return; // edited meanwhile: a newer request follows
      this.serverProblems = { document, list: body.problems.map((p) => p.message), renderSize: body.render_size };
    } catch {
      this.serverProblems = null; // the local checks stand in
    }
    this.showProblems();
  },

  showProblems() {
    const fresh = this.serverProblems && this.pending === null && this.serverProblems.document === this.toDocument();
    let list;
    if (fresh) list = this.serverProblems.list;
    else {
      const n = this.pixelCounts();
      list = layoutProblems(
        this.entities,
        this.entities.map((e) => n[e.slot]),
        this.counts?.counts ?? null,
        this.counts?.entity_limit ?? 50,
        this.counts?.global_limit ?? 512,
      );
    }
    this.problems.textContent = list.length ? `⚠ ${list.length === 1 ? list[0] : `${list.length} problems: ${list.join("; ")}`}` : "";
    this.problems.title = list.join("\n");
    this.problems.dataset.count = String(list.length); // the line keeps its place: the canvas never jumps
    this.problems.dataset.source = fresh ? "server" : "local";
  },
};
