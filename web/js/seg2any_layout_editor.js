// Registers the Layout Editor (Seg2Any) widget with the ComfyUI frontend. Uses only the public
// extension API (registerExtension, getCustomWidgets, addDOMWidget, onExecuted, api.fetchApi),
// which frontends 1.27 (ComfyUI 0.3.64) and 1.35 (ComfyUI 0.8.0) both provide.

import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";
import { LayoutEditor } from "./layout_editor/editor.js";
import { bindGraphUndo, captureGraph } from "./layout_editor/graph_undo.js";
import { STYLE } from "./layout_editor/style.js";

const NODE = "Seg2AnyLayoutEditor";
const WIDGET = "SEG2ANY_LAYOUT_EDITOR"; // nodes/editor_nodes.py EDITOR_WIDGET
const TRACE_KEY = "seg2any_trace"; // nodes/editor_nodes.py TRACE_UI_KEY
const INCOMING_KEY = "seg2any_incoming"; // nodes/editor_nodes.py INCOMING_UI_KEY
const NODE_SIZE = [640, 1000];
const MIN_HEIGHT = 700; // tool bars + a canvas of 320 px + caption + a few entity rows

function addStyle() {
  if (document.getElementById("seg2any-layout-editor-style")) return;
  const s = document.createElement("style");
  s.id = "seg2any-layout-editor-style";
  s.textContent = STYLE;
  document.head.append(s);
}

function markModified() {
  app.graph?.setDirtyCanvas?.(true, false);
  captureGraph(app); // one graph undo step per editing session (graph_undo.js)
}

/** Vue-rendered nodes (Nodes 2.0) attach a DOM widget's element only when the widget's component
 * mounts, and keep the component when a node is replaced by another with the same id in one task
 * (e.g. graph.clear() then add, as a script may do): the removed node's editor would stay on
 * screen, cut off from the node that is saved and run. Put this node's editor in its place. */
function replaceStaleVueEditor(node) {
  const root = node.seg2anyEditor.root;
  if (!window.LiteGraph?.vueNodesMode || node.graph !== app.canvas?.graph) return;
  for (const old of document.querySelectorAll(`.s2a-editor[data-node-id="${node.id}"]`)) {
    if (old !== root && old.closest(".lg-node")?.dataset.nodeId === String(node.id)) old.replaceWith(root);
  }
}

/** The demo model renders at its trained size, FLUX at the layout's: the size the editor's vanished-
 * entity check must use (a demo loader in the workflow means the demo renders it). */
function renderModel() {
  const nodes = app.graph?.nodes ?? app.graph?._nodes ?? [];
  return nodes.some((n) => (n.comfyClass ?? n.type) === "Seg2AnyDemoModelLoader") ? "demo" : "flux";
}

window.seg2anyLayoutEditors ??= new Map(); // String(node id) -> editor, for the browser tests and the console
// (frontend 1.49 gives string node ids, earlier ones numbers: the key is the id as text in both)

app.registerExtension({
  name: "Seg2Any.LayoutEditor",

  getCustomWidgets() {
    return {
      [WIDGET](node, inputName) {
        addStyle();
        const editor = new LayoutEditor({ api, onChange: markModified, renderModel });
        const widget = node.addDOMWidget(inputName, WIDGET, editor.root, {
          getValue: () => editor.toDocument(),
          setValue: (v) => editor.fromDocument(typeof v === "string" ? v : ""),
          getMinHeight: () => MIN_HEIGHT,
          socketless: true,
          hideOnZoom: false,
        });
        editor.root.dataset.nodeId = String(node.id);
        bindGraphUndo(app, editor.root);
        node.seg2anyEditor = editor;
        window.seg2anyLayoutEditors.set(String(node.id), editor);
        const removed = node.onRemoved;
        node.onRemoved = function () {
          window.seg2anyLayoutEditors.delete(String(this.id));
          return removed?.apply(this, arguments);
        };
        editor.fromDocument("");
        return { widget, minWidth: 480, minHeight: MIN_HEIGHT };
      },
    };
  },

  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== NODE) return;
    const executed = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      executed?.apply(this, arguments);
      const img = message?.[TRACE_KEY]?.[0];
      if (img && this.seg2anyEditor) {
        const q = new URLSearchParams({ filename: img.filename, subfolder: img.subfolder || "", type: img.type || "temp" });
        this.seg2anyEditor.setTrace(api.apiURL(`/view?${q}`), "the 'trace' input");
      }
      const incoming = message?.[INCOMING_KEY]?.[0];
      if (incoming && this.seg2anyEditor) this.seg2anyEditor.offerIncoming(incoming);
    };
    const created = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const r = created?.apply(this, arguments);
      this.setSize([Math.max(this.size[0], NODE_SIZE[0]), Math.max(this.size[1], NODE_SIZE[1])]);
      return r;
    };
  },

  nodeCreated(node) {
    // ids are assigned when the node joins the graph; keep the test/console map keyed by the final id
    if (node.comfyClass !== NODE || !node.seg2anyEditor) return;
    const added = node.onAdded;
    node.onAdded = function () {
      const r = added?.apply(this, arguments);
      window.seg2anyLayoutEditors.set(String(this.id), this.seg2anyEditor);
      this.seg2anyEditor.root.dataset.nodeId = String(this.id);
      replaceStaleVueEditor(this);
      return r;
    };
  },
});
