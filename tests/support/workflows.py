"""UI-format workflows (what the frontend saves and lists as templates) <-> API prompts.

``ui_to_api`` follows the frontend's ``graphToPrompt``: widget values are matched to widget
inputs in the order /object_info declares them (required, then optional); an INT or COMBO with
``control_after_generate`` (or an INT named seed / noise_seed) carries one extra value, as does a
COMBO with ``image_upload``; linked inputs become [node id, slot]; notes, muted (mode 2) and
bypassed (mode 4) nodes are dropped, bypassed ones passing their inputs through; Reroutes are
followed to their source. A count mismatch raises, so a node whose inputs changed makes the
shipped file fail loudly instead of sending shifted values.
"""

from __future__ import annotations

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
NOTE_TYPES = {"Note", "MarkdownNote"}


def _inputs_in_order(info: dict) -> list[tuple[str, str, dict]]:
    """(name, type, options) of every declared input, required then optional."""
    out = []
    order = info.get("input_order", {})
    for section in ("required", "optional"):
        spec = info.get("input", {}).get(section, {}) or {}
        names = order.get(section, list(spec))
        for name in names:
            if name not in spec:
                continue
            t = spec[name][0]
            opts = spec[name][1] if len(spec[name]) > 1 and isinstance(spec[name][1], dict) else {}
            if isinstance(t, list):
                typ, opts = "COMBO", {"options": t, **opts}
            else:
                typ = t
            out.append((name, typ, opts))
    return out


def is_widget(typ: str, opts: dict) -> bool:
    """A widget input: a standard widget type, or a custom one the node declares with ``widgetType``
    (the Layout Editor's canvas), unless forced to a socket."""
    return (typ in WIDGET_TYPES or bool(opts.get("widgetType"))) and not opts.get("forceInput")


def widget_slots(info: dict) -> list[tuple[str, int]]:
    """(input name, number of widgets_values entries) for each widget input, in order."""
    slots = []
    for name, typ, opts in _inputs_in_order(info):
        if not is_widget(typ, opts):
            continue
        n = 1
        if (typ in ("INT", "COMBO") and opts.get("control_after_generate")) or (typ == "INT" and name in ("seed", "noise_seed")):
            n += 1
        if typ == "COMBO" and opts.get("image_upload"):
            n += 1
        slots.append((name, n))
    return slots


def ui_to_api(ui: dict, object_info: dict) -> dict:
    nodes = {n["id"]: n for n in ui["nodes"]}
    links = {}
    for ln in ui.get("links", []):
        if isinstance(ln, dict):
            links[ln["id"]] = (ln["origin_id"], ln["origin_slot"])
        else:
            links[ln[0]] = (ln[1], ln[2])

    def source(link_id):
        origin, slot = links[link_id]
        node = nodes[origin]
        if node["type"] == "Reroute":
            return source(node["inputs"][0]["link"])
        if node.get("mode", 0) == 4:  # bypassed: pass the first input of the same type through
            out_type = node["outputs"][slot]["type"]
            for inp in node.get("inputs", []):
                if inp.get("link") is not None and inp.get("type") == out_type:
                    return source(inp["link"])
            raise ValueError(f"bypassed node {origin} has no input of type {out_type} to pass through")
        return [str(origin), slot]

    prompt = {}
    for nid, node in nodes.items():
        t = node["type"]
        if t in NOTE_TYPES or t == "Reroute" or node.get("mode", 0) in (2, 4):
            continue
        if t not in object_info:
            raise ValueError(f"node {nid}: unknown node type {t!r} (is its pack installed?)")
        info = object_info[t]
        inputs = {}
        values = list(node.get("widgets_values") or [])
        slots = widget_slots(info)
        need = sum(n for _, n in slots)
        if len(values) != need:
            raise ValueError(f"node {nid} ({t}): {len(values)} widget values but its inputs {[s[0] for s in slots]} need {need}")
        pos = 0
        for name, n in slots:
            inputs[name] = values[pos]
            pos += n
        for inp in node.get("inputs", []):
            if inp.get("link") is not None:
                inputs[inp["name"]] = source(inp["link"])
        prompt[str(nid)] = {"class_type": t, "inputs": inputs}
    return prompt


def build_ui(spec: list[dict], object_info: dict, notes: list[dict] | None = None, view: dict | None = None) -> dict:
    """A UI-format workflow from a compact spec.

    Each node: {"id", "type", "pos": [x, y], "widgets": {name: value}, "links": {input: (src id, src slot)},
    optional "title", "size"}. Widget values are laid out in the frontend's order ("fixed" for
    seed controls, "image" for upload buttons).
    """
    ui_nodes, links = [], []
    outputs_links: dict[tuple[int, int], list[int]] = {}
    link_id = 0
    by_id = {n["id"]: n for n in spec}
    for n in spec:
        for name, (src, slot) in n.get("links", {}).items():
            link_id += 1
            src_info = object_info[by_id[src]["type"]]
            typ = src_info["output"][slot]
            links.append([link_id, src, slot, n["id"], name, typ])
            outputs_links.setdefault((src, slot), []).append(link_id)
    for order, n in enumerate(spec):
        info = object_info[n["type"]]
        widgets = n.get("widgets", {})
        values = []
        declared = {nm: (t, o) for nm, t, o in _inputs_in_order(info)}
        for name, count in widget_slots(info):
            if name in widgets:
                values.append(widgets[name])
            elif "default" in declared[name][1]:
                values.append(declared[name][1]["default"])
            elif declared[name][0] == "COMBO" and declared[name][1].get("options"):
                values.append(declared[name][1]["options"][0])
            else:
                raise ValueError(f"{n['type']}: no value for widget {name!r}")
            if count > 1:
                opts = dict((nm, o) for nm, _, o in _inputs_in_order(info))[name]
                values.append("image" if opts.get("image_upload") else "fixed")
        inputs = []
        for name, typ, opts in _inputs_in_order(info):
            if name in n.get("links", {}):
                entry = {"name": name, "type": typ, "link": None}
                if is_widget(typ, opts):
                    entry["widget"] = {"name": name}
                inputs.append(entry)
            elif not is_widget(typ, opts):
                inputs.append({"name": name, "type": typ, "link": None})
        outputs = []
        for slot, (typ, oname) in enumerate(zip(info["output"], info.get("output_name", info["output"]))):
            outputs.append({"name": oname, "type": typ, "links": outputs_links.get((n["id"], slot), []), "slot_index": slot})
        node = {
            "id": n["id"],
            "type": n["type"],
            "pos": list(n.get("pos", [0, 0])),
            "size": list(n.get("size", [320, 120])),
            "flags": {},
            "order": order,
            "mode": 0,
            "inputs": inputs,
            "outputs": outputs,
            "properties": {"Node name for S&R": n["type"], **({"models": n["models"]} if "models" in n else {})},
            "widgets_values": values,
        }
        if "title" in n:
            node["title"] = n["title"]
        ui_nodes.append(node)
    # resolve input link ids (by target node / input name)
    for lk in links:
        lid, _, _, tgt, name, _ = lk
        node = next(x for x in ui_nodes if x["id"] == tgt)
        entry = next(i for i in node["inputs"] if i["name"] == name)
        entry["link"] = lid
        lk[4] = node["inputs"].index(entry)
    next_id = max(n["id"] for n in spec) + 1
    for note in notes or []:
        ui_nodes.append(
            {
                "id": next_id,
                "type": "MarkdownNote",
                "pos": note["pos"],
                "size": note.get("size", [420, 260]),
                "flags": {},
                "order": len(ui_nodes),
                "mode": 0,
                "inputs": [],
                "outputs": [],
                "properties": {},
                "widgets_values": [note["text"]],
                "title": note.get("title", "Note"),
            }
        )
        next_id += 1
    return {
        "last_node_id": next_id - 1,
        "last_link_id": link_id,
        "nodes": ui_nodes,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {"ds": dict(view or {"scale": 0.75, "offset": [0, 0]})},
        "version": 0.4,
    }


def api_links(prompt: dict) -> set[tuple[str, int, str, str]]:
    """(source id, slot, target id, input name) of every link in an API prompt."""
    out = set()
    for nid, node in prompt.items():
        for name, v in node["inputs"].items():
            if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str):
                out.add((v[0], v[1], nid, name))
    return out


def ui_links(ui: dict) -> set[tuple[str, int, str, str]]:
    """The same for a UI workflow (Reroutes not followed; the examples have none)."""
    nodes = {n["id"]: n for n in ui["nodes"]}
    out = set()
    for lk in ui["links"]:
        lid, src, slot, tgt, tslot, _ = (
            lk
            if isinstance(lk, list)
            else (lk["id"], lk["origin_id"], lk["origin_slot"], lk["target_id"], lk["target_slot"], None)
        )
        name = nodes[tgt]["inputs"][tslot]["name"]
        out.add((str(src), slot, str(tgt), name))
    return out


def sampler_settings(seed: int, steps: int, guidance: float, cfg: float = 1.0) -> dict:
    """Masked FLUX Sampler values the templates and tests share: Euler on the official schedule,
    hard mode with the official isolation blocks, one image."""
    return {
        "seed": seed,
        "steps": steps,
        "guidance": guidance,
        "cfg": cfg,
        "sampler_name": "euler",
        "scheduler": "seg2any (official)",
        "mode": "hard",
        "shape_strength": 1.0,
        "isolation_blocks": "auto",
        "batch_size": 1,
    }


EXAMPLE_NAMES = {
    "demo": "Seg2Any demo (CPU, tiny model)",
    "reading_nook": "Seg2Any reading nook (FLUX.1-dev)",
    "badge_grid": "Seg2Any 20 badges (FLUX.1-dev)",
    "mask_editor": "Seg2Any mask editor entities (FLUX.1-dev)",
    "layout_editor": "Seg2Any Layout Editor (FLUX.1-dev)",
}


def example_path(key: str) -> str:
    """example_workflows/<file> of an example by short key. The file names are what the template
    browser shows as title and description, so they are sentences, not identifiers."""
    import os

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.join(root, "example_workflows", EXAMPLE_NAMES[key] + ".json")
