// The editor's CSS, scoped under .s2a-editor; colours follow the frontend's theme variables with
// dark fallbacks so both frontend generations (and light themes) stay legible.

export const STYLE = `
.s2a-editor { box-sizing: border-box; display: flex; flex-direction: column; gap: 4px; width: 100%; height: 100%;
  padding: 4px; font: 12px sans-serif; color: var(--input-text, #ddd); background: var(--comfy-menu-bg, #202020);
  border-radius: 6px; overflow: hidden; }
/* Vue-rendered nodes ("Nodes 2.0") lay widgets out in a grid whose rows fit their content; only
   text areas get a row that grows with the node. Give the editor's row the node's height too, so the
   canvas fills the node as it does on the classic canvas instead of shrinking to its minimum. */
.lg-node-widgets:has(.s2a-editor) { grid-template-rows: auto !important; }
.lg-node-widget > :has(> .s2a-editor) { display: flex; flex-direction: column; min-height: 560px; }
.lg-node-widget .s2a-editor { flex: 1 1 auto; height: auto; min-height: 0; }
.s2a-editor.s2a-drop { outline: 2px dashed #4af; }
.s2a-editor button { font: 12px sans-serif; padding: 2px 6px; border-radius: 4px; cursor: pointer;
  border: 1px solid var(--border-color, #555); background: var(--comfy-input-bg, #333); color: inherit; }
.s2a-editor button:hover { filter: brightness(1.3); }
.s2a-editor [hidden] { display: none !important; }
.s2a-editor button.s2a-take-in { border-color: #e0a040; }
.s2a-editor button.s2a-on { background: #2a6bd1; border-color: #6aa0ff; color: #fff; }
.s2a-editor input[type=number] { width: 58px; }
.s2a-editor input, .s2a-editor textarea { box-sizing: border-box; font: 12px sans-serif; color: inherit;
  background: var(--comfy-input-bg, #2a2a2a); border: 1px solid var(--border-color, #555); border-radius: 4px; }
.s2a-bar { display: flex; flex-wrap: wrap; align-items: center; gap: 3px; flex: 0 0 auto; }
.s2a-lbl { opacity: 0.75; margin-left: 4px; }
.s2a-radius, .s2a-opacity { width: 70px; }
.s2a-zoom-label { min-width: 36px; text-align: center; }
.s2a-stage { flex: 1 1 0; min-height: 320px; overflow: auto; background: repeating-conic-gradient(#2a2a2a 0 25%, #333 0 50%) 0 0 / 16px 16px;
  border-radius: 4px; display: flex; }
.s2a-view { display: block; cursor: crosshair; touch-action: none; image-rendering: pixelated; outline: none; margin: auto; }
.s2a-status { flex: 0 0 auto; min-height: 15px; font-size: 11px; opacity: 0.85; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.s2a-status[data-kind=error] { color: #ff8080; opacity: 1; }
.s2a-problems { flex: 0 0 auto; min-height: 14px; font-size: 11px; color: #ffb070; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.s2a-caption-row { display: flex; gap: 4px; align-items: center; flex: 0 0 auto; }
.s2a-caption { flex: 1 1 auto; resize: vertical; min-height: 36px; padding: 3px; }
.s2a-head { display: flex; align-items: center; gap: 6px; flex: 0 0 auto; font-weight: bold; }
.s2a-count { opacity: 0.7; font-weight: normal; }
.s2a-add { margin-left: auto; }
.s2a-rows { flex: 0 1 auto; max-height: 32%; min-height: 84px; overflow-y: auto; display: flex; flex-direction: column; gap: 2px; }
.s2a-row { display: flex; align-items: center; gap: 3px; padding: 2px; border-radius: 4px; border: 1px solid transparent; }
.s2a-row.s2a-active { border-color: #6aa0ff; background: rgba(80, 140, 255, 0.15); }
.s2a-row.s2a-hidden .s2a-prompt { opacity: 0.45; text-decoration: line-through; }
.s2a-num { width: 20px; text-align: right; opacity: 0.7; cursor: grab; touch-action: none; user-select: none; }
.s2a-row.s2a-drop-before { box-shadow: 0 -2px 0 #6aa0ff; }
.s2a-row.s2a-drop-after { box-shadow: 0 2px 0 #6aa0ff; }
.s2a-swatch { width: 26px; height: 22px; padding: 0; border: none; background: none; cursor: pointer; }
.s2a-prompt { flex: 1 1 auto; min-width: 80px; height: 22px; padding: 2px 4px; resize: none; overflow-y: auto; line-height: 16px; }
.s2a-tokens { width: 48px; text-align: right; font-variant-numeric: tabular-nums; opacity: 0.8; flex: 0 0 auto; }
.s2a-caption-tokens { width: 56px; }
.s2a-tokens.s2a-over { color: #ff6060; font-weight: bold; opacity: 1; }
.s2a-row button { padding: 1px 4px; min-width: 22px; }
`;
