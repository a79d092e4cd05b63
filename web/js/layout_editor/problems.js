// What the run would refuse or change, shown in the editor while painting, in the run's wording
// (seg2any/layout/editor_document.py, the builder's T5 budget): entities are named by their place in the
// list ("entity 3"), which is the document's order, the order the node's errors count in.
// Installed on LayoutEditor.prototype (editor.js); `this` is the editor.

import { rgbToHex } from "./paint.js";

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
  showProblems() {
    const n = this.pixelCounts();
    const list = layoutProblems(
      this.entities,
      this.entities.map((e) => n[e.slot]),
      this.counts?.counts ?? null,
      this.counts?.entity_limit ?? 50,
      this.counts?.global_limit ?? 512,
    );
    this.problems.textContent = list.length ? `⚠ ${list.length === 1 ? list[0] : `${list.length} problems: ${list.join("; ")}`}` : "";
    this.problems.title = list.join("\n");
    this.problems.dataset.count = String(list.length); // the line keeps its place: the canvas never jumps
  },
};
