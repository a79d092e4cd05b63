// The editor inside ComfyUI's graph history (frontends 1.27 .. 1.49).
//
// ComfyUI's ChangeTracker listens for keydown on `window` in the capture phase, i.e. before any
// element sees the key, and later (one animation frame on) runs `undoRedo(event)`: Ctrl+Z on the
// editor's canvas would undo the graph and rebuild the node, losing the editor's own history. It
// also records a graph undo step after every mouseup / keydown / widget change, so a painting
// session would fill the graph's 50 steps. Two small wraps of the tracker's prototype fix both,
// touching nothing outside the editor:
//   * `undoRedo(e)` answers "handled" for key events the editor claimed (claimKey), so the graph
//     does not undo while the editor does;
//   * after a state capture during an editor session (focus inside one editor), the steps the
//     session added after its first one are dropped: the whole session is one graph undo step.
// Everything else (Ctrl+S, Ctrl+Enter, graph undo outside the editor) runs unchanged.

const claimed = new WeakSet();
let keyFocus = null; // what had the focus when the last key went down

// The browser's own Ctrl+Z (outside any text box) undoes the last typing in whichever text box had
// it, even one the user left long ago, and focuses it: a graph undo would also rewrite an entity's
// prompt. Remember where each key press started so the editor can tell that apart (foreignUndo).
window.addEventListener("keydown", () => (keyFocus = document.activeElement), true);

/** An `input` event on `box` that is the browser's undo / redo of old typing, started while the
 * focus was elsewhere (ComfyUI's graph undo handles that key): the editor keeps its text. */
export function foreignUndo(e, box) {
  return /^history(Undo|Redo)$/.test(e.inputType || "") && keyFocus !== box;
}
let session = null; // {tracker, top, base}
let patched = false;

/** The editor handled this key event itself (its own undo / redo): the graph must not. */
export function claimKey(e) {
  claimed.add(e);
}

function activeTracker(app) {
  return app.extensionManager?.workflow?.activeWorkflow?.changeTracker ?? null;
}

function patch(tracker) {
  if (patched || !tracker) return;
  const proto = Object.getPrototypeOf(tracker);
  if (typeof proto.undoRedo !== "function") return;
  patched = true;
  const undoRedo = proto.undoRedo;
  proto.undoRedo = function (e) {
    if (claimed.has(e)) return Promise.resolve(true);
    return undoRedo.apply(this, arguments);
  };
  // 1.49 captures in captureCanvasState (checkState calls it); 1.27 / 1.35 in checkState
  const name = typeof proto.captureCanvasState === "function" ? "captureCanvasState" : "checkState";
  const capture = proto[name];
  proto[name] = function () {
    const r = capture.apply(this, arguments);
    squash(this);
    return r;
  };
}

/** Keep one step for the session: the state before it (the first step it pushed). */
function squash(tracker) {
  const s = session;
  if (!s || s.tracker !== tracker || !Array.isArray(tracker.undoQueue)) return;
  const q = tracker.undoQueue;
  if (!s.base) {
    if (q.length && q[q.length - 1] !== s.top) s.base = q[q.length - 1];
    return;
  }
  const i = q.lastIndexOf(s.base);
  if (i >= 0 && i < q.length - 1) q.splice(i + 1);
}

/** Graph-history handling for one editor root: sessions follow the focus. */
export function bindGraphUndo(app, root) {
  root.addEventListener("focusin", () => {
    const tracker = activeTracker(app);
    patch(tracker);
    if (!tracker || session?.root === root) return;
    const q = tracker.undoQueue || [];
    session = { root, tracker, top: q[q.length - 1], base: null };
  });
  root.addEventListener("focusout", (e) => {
    if (root.contains(e.relatedTarget) || session?.root !== root) return;
    // a re-rendered row drops the focus for a moment: end only if it stays outside the editor
    setTimeout(() => {
      if (session?.root !== root || root.contains(document.activeElement)) return;
      const tracker = session.tracker;
      // the node was rebuilt (graph undo / load): nothing of ours to record
      if (root.isConnected) (tracker.captureCanvasState || tracker.checkState)?.call(tracker); // the session's last state
      session = null;
    }, 0);
  });
}

/** Record the editor's change in the graph's history now (one squashed step per session). */
export function captureGraph(app) {
  const tracker = activeTracker(app);
  patch(tracker);
  if (!tracker) return;
  (tracker.captureCanvasState || tracker.checkState)?.call(tracker);
}
