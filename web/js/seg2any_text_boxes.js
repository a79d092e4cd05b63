// Taller prompt boxes on the Seg2Any nodes that take free text. The frontend shares a node's
// height among its multiline widgets and lets each shrink to about two lines, so the Regional
// Prompt Builder's four boxes showed two to four lines each. Each box gets a minimum of six lines, and a
// freshly added node a size with room for them (a loaded workflow keeps its saved size).
// Uses only widget.options.getMinHeight, which frontends 1.27 and 1.35 both read.

import { app } from "../../../scripts/app.js";

const MIN_BOX_PX = 80; // six lines of the frontend's 12 px textarea font, plus padding
const FRESH_SIZE = {
  Seg2AnyRegionalPromptBuilder: [440, 600],
  Seg2AnyEntity: [400, 170],
};

app.registerExtension({
  name: "seg2any.textBoxes",
  nodeCreated(node) {
    const size = FRESH_SIZE[node.comfyClass ?? node.type];
    if (!size) return;
    for (const w of node.widgets ?? []) {
      if (w.inputEl?.tagName === "TEXTAREA" && w.options) w.options.getMinHeight = () => MIN_BOX_PX;
    }
    const min = node.computeSize?.() ?? node.size;
    node.setSize([Math.max(node.size[0], size[0]), Math.max(node.size[1], size[1], min[1])]);
  },
});
