// Numbers and tool names every part of the editor shares. The limits match the server's
// (seg2any/layout/editor_document.py): an 8-bit index map holds at most 255 entities.

export const VERSION = 1;
export const MAX_ENTITIES = 255;
export const MIN_SIDE = 16;
export const MAX_SIDE = 4096;
export const DEFAULT_SIDE = 1024;
export const UNDO_DEPTH = 60;
export const MAX_VIEW_PIXELS = 8192;
export const ZOOM_STEP = 1.25; // per zoom button click or mouse wheel notch
export const TOOLS = [
  ["brush", "Brush", "B"],
  ["eraser", "Eraser", "E"],
  ["fill", "Fill", "F"],
  ["rect", "Rectangle", "R"],
  ["ellipse", "Ellipse", "O"],
  ["polygon", "Polygon (click points; double-click, Enter or click the first point to close)", "P"],
  ["move", "Move (drag the selected entity; Alt+click an entity to select it)", "V"],
];
// Ctrl / Cmd + these act on the graph's selection (select all, copy, paste, bypass, mute, group,
// subgraph) or are the editor's undo / redo: they stay inside the editor.
export const GRAPH_SELECTION_KEYS = new Set(["a", "b", "c", "e", "g", "m", "v", "x", "y", "z"]);
