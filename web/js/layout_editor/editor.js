// The Layout Editor widget: canvas + tools + entity rows + caption, bound to the node's `layout`
// string (the document seg2any/layout/editor_document.py validates). The frontend (app, api) is passed
// in, so this module runs under both frontend generations without importing their internals.
//
// The class holds the state; its methods live in one module per concern and are installed on its
// prototype here:
//   dom.js       the DOM shell (tool bars, stage, status, caption, list container)
//   tools.js     pointer and key handling, the painting tools
//   view.js      fit / zoom, the label layer, drawing the canvas
//   history.js   undo / redo steps
//   entities.js  the entity list and its token counts
//   graph_undo.js ComfyUI's graph history next to the editor's (keys, one step per session)
//   transfer.js  official PNG + JSON import / export, layout size, trace image
//   document.js  the string stored in the workflow
//   problems.js  what the run would refuse, shown while painting
// paint.js (index-map painting) and files.js (PNG / JSON codecs) are plain functions.

import { DEFAULT_SIDE } from "./constants.js";
import { documentMethods } from "./document.js";
import { domMethods } from "./dom.js";
import { entityMethods } from "./entities.js";
import { historyMethods } from "./history.js";
import { problemMethods } from "./problems.js";
import { toolMethods } from "./tools.js";
import { transferMethods } from "./transfer.js";
import { viewMethods } from "./view.js";

export class LayoutEditor {
  constructor({ api, onChange, renderModel }) {
    this.api = api;
    this.renderModel = renderModel; // () => "demo" | "flux": which size the run renders at (problems.js)
    this.onChange = onChange || (() => {});
    this.w = DEFAULT_SIDE;
    this.h = DEFAULT_SIDE;
    this.map = new Uint8Array(this.w * this.h);
    this.entities = []; // {slot, colour: [r,g,b], prompt, visible}
    this.caption = "";
    this.seed = null; // the official JSON's seed, kept for export
    this.active = 0; // slot being painted
    this.tool = "brush";
    this.radius = 12;
    this.zoom = 1; // on top of "fit"
    this.opacity = 1;
    this.trace = null;
    this.undoStack = [];
    this.redoStack = [];
    this.op = null;
    this.docCache = null; // the stored string while nothing has changed (exact round trip)
    this.pending = null; // a document being decoded
    this.tokenTimer = 0;
    this.counts = null;
    this.problemTimer = 0;
    this.serverProblems = null; // the run's problems for one document string (problems.js)
    this.unlisted = [];
    this.buildDom();
    this.resetLabels();
  }
}

Object.assign(LayoutEditor.prototype, domMethods, toolMethods, viewMethods, historyMethods, entityMethods, transferMethods, documentMethods, problemMethods);
