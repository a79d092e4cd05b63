// Undo / redo: each step keeps the changed box of the index map and the entity list before and
// after, so a stroke on a 4096^2 layout costs its box, not the whole map.
// Installed on LayoutEditor.prototype (editor.js); `this` is the editor.

import { UNDO_DEPTH } from "./constants.js";

export const historyMethods = {
  snapshotEntities() {
    return {
      list: this.entities.map((e) => ({ ...e, colour: e.colour.slice() })),
      caption: this.caption,
      seed: this.seed,
      w: this.w,
      h: this.h,
    };
  },

  beginOp() {
    this.op = { before: this.map.slice(), ents: this.snapshotEntities() };
  },

  endOp() {
    const op = this.op;
    this.op = null;
    if (!op) return;
    let box = null;
    if (op.before.length === this.map.length && op.ents.w === this.w) {
      const w = this.w;
      let x0 = w, y0 = this.h, x1 = -1, y1 = -1; // prettier-ignore
      for (let i = 0; i < this.map.length; i++) {
        if (op.before[i] !== this.map[i]) {
          const x = i % w;
          const y = (i - x) / w;
          if (x < x0) x0 = x;
          if (x > x1) x1 = x;
          if (y < y0) y0 = y;
          if (y > y1) y1 = y;
        }
      }
      if (x1 >= 0) box = [x0, y0, x1 + 1, y1 + 1];
      const after = this.snapshotEntities();
      if (!box && JSON.stringify(after) === JSON.stringify(op.ents)) return;
      this.pushUndo({ kind: "box", box, before: box && this.cut(op.before, box), after: box && this.cut(this.map, box), entsBefore: op.ents, entsAfter: after });
    } else {
      this.pushUndo({ kind: "full", before: op.before, after: this.map.slice(), entsBefore: op.ents, entsAfter: this.snapshotEntities() });
    }
    this.changed(true);
  },

  cut(map, [x0, y0, x1, y1]) {
    const out = new Uint8Array((x1 - x0) * (y1 - y0));
    for (let y = y0, k = 0; y < y1; y++, k += x1 - x0) out.set(map.subarray(y * this.w + x0, y * this.w + x1), k);
    return out;
  },

  paste(part, [x0, y0, x1, y1]) {
    for (let y = y0, k = 0; y < y1; y++, k += x1 - x0) this.map.set(part.subarray(k, k + x1 - x0), y * this.w + x0);
  },

  pushUndo(step) {
    this.undoStack.push(step);
    if (this.undoStack.length > UNDO_DEPTH) this.undoStack.shift();
    this.redoStack = [];
  },

  applyStep(step, forward) {
    const ents = forward ? step.entsAfter : step.entsBefore;
    const sizeChanged = ents.w !== this.w || ents.h !== this.h;
    this.w = ents.w;
    this.h = ents.h;
    this.entities = ents.list.map((e) => ({ ...e, colour: e.colour.slice() }));
    this.caption = ents.caption;
    this.seed = ents.seed;
    this.captionInput.value = this.caption;
    if (step.kind === "full") this.map = (forward ? step.after : step.before).slice();
    else if (step.box) this.paste(forward ? step.after : step.before, step.box);
    if (!this.entities.some((e) => e.slot === this.active)) this.active = this.entities[0]?.slot ?? 0;
    if (sizeChanged) this.resetLabels();
    else {
      this.refreshLut();
      this.refresh([0, 0, this.w, this.h]);
    }
    this.renderRows();
    this.changed(true);
  },

  undo() {
    const s = this.undoStack.pop();
    if (!s) return this.message("Nothing to undo.");
    this.redoStack.push(s);
    this.applyStep(s, false);
  },

  redo() {
    const s = this.redoStack.pop();
    if (!s) return this.message("Nothing to redo.");
    this.undoStack.push(s);
    this.applyStep(s, true);
  },

  /** Run an entity-list edit as one undoable step. */
  edit(fn) {
    this.beginOp();
    fn();
    this.refreshLut();
    this.refresh([0, 0, this.w, this.h]);
    this.renderRows();
    this.endOp();
  },
};
