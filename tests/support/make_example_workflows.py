"""Regenerate example_workflows/*.json (UI format) from the specs below.

    python -m tests.support.make_example_workflows        # needs COMFYUI_PATH
    python -m tests.support.make_example_workflows --thumbnails   # only the .jpg thumbnails
    python -m tests.support.make_example_workflows --json-only    # only the workflows

It starts a ComfyUI server with the pack to read /object_info, so widget order always matches
the nodes. The e2e tests convert the written files back to API prompts and run them.
"""

from __future__ import annotations

import json
import os
import tempfile

from tests.support.server import ROOT, ComfyServer
from tests.support.workflows import EXAMPLE_NAMES, build_ui, sampler_settings

# Room each node gets (width, body height without the title bar): at least what both frontends
# (1.27.10, 1.35.9) give a freshly added node, measured in the browser tier, more where text or an
# image must be readable. Nodes 2.0 (Vue nodes, setting Comfy.VueNodes.Enabled in 1.35) scales a
# classic workflow's positions and sizes by 1.2 on opening (ensureCorrectLayoutScale), then grows
# a node whose drawn content needs more: these heights also hold that content, (drawn height -
# title) / 1.2 measured in 1.35.9, so the gaps between nodes stay gaps in both modes. Image nodes
# (previews, Save Image) are kept small: they are empty until a run, and a click enlarges them.
SIZES = {
    "UNETLoader": (320, 98),
    "DualCLIPLoader": (320, 156),
    "VAELoader": (320, 70),
    "Seg2AnyDemoModelLoader": (320, 80),
    "Seg2AnyLoadLoRA": (360, 151),
    "Seg2AnyLoadLayout": (360, 110),
    "Seg2AnyLayoutEditor": (
        560,
        860,
    ),  # the editor's minimum is 480 x 700 (web/js/seg2any_layout_editor.js); its three inputs and a canvas of half the node on top
    "LoadImage": (280, 370),  # Nodes 2.0 on 1.35 draws the square example image below the widgets: 1.2 x 280 wide
    "Seg2AnyEntity": (360, 170),
    "Seg2AnyRegionalPromptBuilder": (400, 600),
    "PreviewAny": (360, 180),
    "Seg2AnyEntityContourEncoder": (340, 130),
    "PreviewImage": (300, 240),
    "Seg2AnyMaskedFluxSampler": (340, 350),
    "VAEDecode": (200, 60),
    "Seg2AnyScaleToLayout": (300, 80),
    "SaveImage": (340, 300),
    "Seg2AnyLayoutPreview": (400, 270),  # picture + legend panel (about 1.5:1)
    "note": (420, 330),
}
# A Markdown note drawn as a Vue node grows to show all its text (the classic note scrolls): the
# longer notes get the body height their text needs there, (drawn height - title) / 1.2 measured
# in 1.35.9 at width 420 (545 px drawn for the FLUX note + one more section), plus some room.
LONG_NOTE = (420, 470)
TITLE_H = 30  # LiteGraph.NODE_TITLE_HEIGHT in both frontends: the title bar sits above pos
GAP_X, GAP_Y = 40, 40  # room for links, slot labels and the node-source badge above a title

# The opening view (extra.ds): every node inside the part of a 1600 x 1000 window (viewport 1600 x
# 857 in headless Chromium) where the canvas shows unobstructed, in every frontend and both node
# modes, at the largest scale that allows. Measured in the browser tier (1.35.9, 1.49.6):
# the canvas element fills the viewport, the tab bar and breadcrumb end at y=94, the side bar at
# x=63, and the minimap (253 x 200, from x=1343, y=599) with the canvas toolbar below it covers the
# bottom-right corner. 1.27.10 puts its canvas element at (64, 78), 1600 - 64 wide: classic boxes
# are 1/1.2 the size of the Vue ones this fits, so they fit there too.
WINDOW_AREA = (63, 94, 1600, 853)  # left, top, right, bottom of the unobstructed canvas area
CORNER = (1330, 590)  # the minimap + toolbar corner: nothing right of x and below y
MARGIN = 16
VUE_SCALE = 1.2  # 1.35's ensureCorrectLayoutScale (1.49 draws Vue nodes at the classic size)
MIN_SCALE = 0.6  # classic LiteGraph draws no text below 8 px / 14 px = 0.571 (MinFontSizeForLOD)


class Sheet:
    """Nodes placed column by column: each column a stack (GAP_Y apart), columns GAP_X apart."""

    def __init__(self):
        self.nodes: list[dict] = []
        self.notes: list[dict] = []

    def columns(self, columns: list[list[dict]], x: float = 0, y: float = 0) -> tuple[float, float]:
        """Place ``columns`` from (x, y) (top-left of the first title bar); returns (right, bottom)
        of what was placed. A node may say ``"align": other_id`` to start level with another node."""
        placed: dict = {}
        right, bottom = x, y
        for col in columns:
            top, width = y, 0
            for n in col:
                kind = "note" if n.get("note") else n["type"]
                n.setdefault("size", list(SIZES[kind]))
                if "align" in n:
                    top = max(top, placed[n.pop("align")])
                n["pos"] = [x, top + TITLE_H]
                if "id" in n:
                    placed[n["id"]] = top
                top += TITLE_H + n["size"][1]
                bottom = max(bottom, top)
                top += GAP_Y
                width = max(width, n["size"][0])
                (self.notes if n.get("note") else self.nodes).append(n)
            right = x + width
            x += width + GAP_X
        return right, bottom

    def done(self) -> tuple[list[dict], list[dict]]:
        return self.nodes, self.notes


def boxes(nodes: list[dict]) -> list[list[float]]:
    """Each node's box [x, y, w, h], title bar included, in canvas units."""
    return [[n["pos"][0], n["pos"][1] - TITLE_H, n["size"][0], n["size"][1] + TITLE_H] for n in nodes]


def vue_boxes(nodes: list[dict]) -> list[list[float]]:
    """The boxes 1.35's Nodes 2.0 draws for a classic workflow: positions scaled by VUE_SCALE from the
    top-left of all nodes, widths and body heights scaled, the title bar added."""
    bs = boxes(nodes)
    x0, y0 = min(b[0] for b in bs), min(b[1] for b in bs)
    k = VUE_SCALE
    return [[x0 + (b[0] - x0) * k, y0 + (b[1] - y0) * k, b[2] * k, (b[3] - TITLE_H) * k + TITLE_H] for b in bs]


def view_for(nodes: list[dict], min_scale: float = MIN_SCALE) -> dict:
    """extra.ds: the top-left node at the area's corner (plus MARGIN), and the largest scale (in
    steps of 0.01) at which every node, as either mode draws it, stays inside WINDOW_AREA and out
    of the minimap corner."""
    left, top, right, bottom = WINDOW_AREA
    drawn = boxes(nodes) + vue_boxes(nodes)
    x0, y0 = min(b[0] for b in drawn), min(b[1] for b in drawn)

    def fits(s: float) -> bool:
        for b in drawn:
            sx, sy = left + MARGIN + (b[0] - x0) * s, top + MARGIN + (b[1] - y0) * s
            ex, ey = sx + b[2] * s, sy + b[3] * s
            if ex > right - MARGIN or ey > bottom - MARGIN or (ex > CORNER[0] - MARGIN and ey > CORNER[1] - MARGIN):
                return False
        return True

    scale = next(s / 100 for s in range(100, 20, -1) if fits(s / 100))
    if scale < min_scale:
        raise ValueError(f"the nodes need scale {scale} to fit the window; below {min_scale} the canvas is unreadable")
    return {"scale": scale, "offset": [(left + MARGIN) / scale - x0, (top + MARGIN) / scale - y0]}


# Where each model a FLUX.1-dev template needs comes from, declared on its loader node the way
# ComfyUI's own templates do (properties.models: name, url, directory), so the frontend's
# missing-models dialog tells the user what to download and where to put it.
HF = "https://huggingface.co"
FLUX_MODELS = {
    "flux1-dev.safetensors": (f"{HF}/Comfy-Org/flux1-dev/resolve/main/flux1-dev.safetensors", "diffusion_models"),
    "clip_l.safetensors": (f"{HF}/comfyanonymous/flux_text_encoders/resolve/main/clip_l.safetensors", "text_encoders"),
    "t5xxl_fp16.safetensors": (f"{HF}/comfyanonymous/flux_text_encoders/resolve/main/t5xxl_fp16.safetensors", "text_encoders"),
    "ae.safetensors": (f"{HF}/Comfy-Org/Lumina_Image_2.0_Repackaged/resolve/main/split_files/vae/ae.safetensors", "vae"),
}
SEG2ANY_REPO = f"{HF}/0xLDF/Seg2Any/resolve/main"


def models(*names: str) -> list[dict]:
    return [{"name": n, "url": FLUX_MODELS[n][0], "directory": FLUX_MODELS[n][1]} for n in names]


def seg2any_models(checkpoint: str) -> list[dict]:
    """The official checkpoint folder's two adapter files (the hub keeps them under <dataset>/seg2any/)."""
    dataset, step = checkpoint.strip("/").split("/")
    return [
        {
            "name": f"{checkpoint}{adapter}/pytorch_lora_weights.safetensors",
            "url": f"{SEG2ANY_REPO}/{dataset}/seg2any/{step}/{adapter}/pytorch_lora_weights.safetensors",
            "directory": "seg2any",
        }
        for adapter in ("default", "cond")
    ]


def flux_loaders():
    return [
        {
            "id": 1,
            "type": "UNETLoader",
            "widgets": {"unet_name": "flux1-dev.safetensors", "weight_dtype": "default"},
            "models": models("flux1-dev.safetensors"),
        },
        {
            "id": 2,
            "type": "DualCLIPLoader",
            "widgets": {"clip_name1": "clip_l.safetensors", "clip_name2": "t5xxl_fp16.safetensors", "type": "flux"},
            "models": models("clip_l.safetensors", "t5xxl_fp16.safetensors"),
        },
        {"id": 3, "type": "VAELoader", "widgets": {"vae_name": "ae.safetensors"}, "models": models("ae.safetensors")},
    ]


def lora(model_src, checkpoint="sacap_1m/checkpoint-20000/"):
    node = {
        "id": 4,
        "type": "Seg2AnyLoadLoRA",
        "widgets": {"checkpoint": checkpoint, "strength_default": 1.0, "strength_cond": 1.0, "attention": "auto"},
        "links": {"model": model_src},
    }
    if checkpoint.startswith("sacap_1m/"):  # the shipped demo LoRA needs no download
        node["models"] = seg2any_models(checkpoint)
    return node


FLUX_NOTE = """## Seg2Any on FLUX.1-dev (needs a GPU)

Models (standard ComfyUI folders):
- `models/diffusion_models/flux1-dev.safetensors` (FLUX.1-dev; fp8 works too)
- `models/text_encoders/clip_l.safetensors`, `models/text_encoders/t5xxl_fp16.safetensors`
- `models/vae/ae.safetensors`
- `models/seg2any/sacap_1m/checkpoint-20000/` with `default/` and `cond/` (the official Seg2Any weights, hub repo `0xLDF/Seg2Any`)

Each entity's caption must stay within 50 T5 tokens: the **Builder report** node shows every count after a run. 1024 px with cond_scale_factor 2 matches the SACap model.
"""


def builder(clip_src, links: dict, global_prompt: str = ""):
    return {
        "id": 6,
        "type": "Seg2AnyRegionalPromptBuilder",
        "widgets": {"global_prompt": global_prompt, "segments": "", "mask_prompts": "", "negative_prompt": ""},
        "links": {"clip": clip_src, **links},
    }


def report():
    """The builder's per-entity report (token counts, warnings) shown on the canvas."""
    return {"id": 13, "type": "PreviewAny", "title": "Builder report", "links": {"source": (6, 1)}}


def back_half(vae_src, model_src, caption_prefix: str, settings: dict, scale: int, scale_back: bool = False) -> dict:
    """Encoder + contour preview, sampler + decode (+ scale back to the layout's size: the demo
    renders at its trained 128 px), save + layout preview, by role for the caller to place."""
    image = (14, 0) if scale_back else (9, 0)
    nodes = {
        "encoder": {
            "id": 7,
            "type": "Seg2AnyEntityContourEncoder",
            "widgets": {"cond_scale_factor": scale},
            "links": {"vae": vae_src, "layout": (6, 0)},
        },
        "contour": {"id": 12, "type": "PreviewImage", "title": "Entity contour map", "links": {"images": (7, 1)}},
        "sampler": {
            "id": 8,
            "type": "Seg2AnyMaskedFluxSampler",
            "widgets": settings,
            "links": {"model": model_src, "layout": (6, 0), "condition": (7, 0)},
        },
        "decode": {"id": 9, "type": "VAEDecode", "links": {"samples": (8, 0), "vae": vae_src}},
        "save": {"id": 10, "type": "SaveImage", "widgets": {"filename_prefix": caption_prefix}, "links": {"images": image}},
        "preview": {"id": 11, "type": "Seg2AnyLayoutPreview", "links": {"layout": (6, 0), "image": image}},
    }
    if scale_back:
        nodes["rescale"] = {"id": 14, "type": "Seg2AnyScaleToLayout", "links": {"image": (9, 0), "layout": (6, 0)}}
    return nodes


def read_me(text: str, size=SIZES["note"]) -> dict:
    return {"note": True, "title": "Read me", "text": text, "size": list(size)}


def place_back(sheet: Sheet, x: float, first: list[dict], mid: list[dict], back: dict) -> None:
    """From x: the given column ``first`` (the LoRA and the layout's source), the builder with the
    layout preview below it, the encoder with the contour map and Save Image below, and last the
    sampler + decode, kept short so the minimap corner stays clear."""
    sheet.columns(
        [
            first,
            mid,
            [back["encoder"], back["contour"], back["save"]],
            [back["sampler"], back["decode"]],
        ],
        x,
    )


def flux_workflow(
    layout_node: dict, builder_links: dict, prefix: str, seed: int, note: str, global_prompt="", note_size=SIZES["note"]
):
    sheet = Sheet()
    right, _ = sheet.columns([[read_me(note, note_size), *flux_loaders()]])
    back = back_half((3, 0), (4, 0), prefix, sampler_settings(seed, 28, 3.5), 2)
    place_back(
        sheet,
        right + GAP_X,
        [lora((1, 0)), layout_node, report()],
        [builder((2, 0), builder_links, global_prompt), back["preview"]],
        back,
    )
    return sheet.done()


def colour_map_workflow(example: str, seed: int):
    load = {"id": 5, "type": "Seg2AnyLoadLayout", "widgets": {"layout_json": f"examples/{example}.json"}}
    return flux_workflow(load, {"segmentation": (5, 0), "segments": (5, 1)}, f"seg2any_{example}", seed, FLUX_NOTE)


PAINTED = {
    "balloon": "A red and white striped hot air balloon with a wicker basket.",
    "mountain": "A snow-capped rocky mountain peak lit by the morning sun.",
    "cabin": "A small wooden log cabin with a glowing window and a stone chimney.",
}
PAINTED_CAPTION = "A hot air balloon drifting over a snowy mountain at sunrise, a wooden cabin in the valley below."


def mask_editor_workflow():
    images, entities = [], []
    prev = None
    for k, (name, prompt) in enumerate(PAINTED.items()):
        img, ent = 20 + 2 * k, 21 + 2 * k
        images.append({"id": img, "type": "LoadImage", "widgets": {"image": f"seg2any_example_painted_{name}.png"}})
        links = {"mask": (img, 1), **({"entities": (prev, 0)} if prev else {})}
        entities.append({"id": ent, "type": "Seg2AnyEntity", "widgets": {"prompt": prompt}, "links": links})
        prev = ent
    note = FLUX_NOTE + (
        "\n### Painting your own masks\nRight-click a Load Image node -> *Open in MaskEditor*, paint one entity, save. "
        "Each Load Image + Seg2Any Entity pair is one entity; add more pairs for more entities. All masks must share "
        "one size. For many entities the **Layout Editor (Seg2Any)** node is quicker."
    )
    sheet = Sheet()
    right, _ = sheet.columns([[read_me(note, LONG_NOTE), *flux_loaders()]])
    x = right + GAP_X
    # the three Load Image + Entity pairs side by side, the LoRA and the report below them
    right, bottom = sheet.columns([[i, e] for i, e in zip(images, entities)], x)
    sheet.columns([[lora((1, 0))], [report()]], x, bottom + GAP_Y)
    back = back_half((3, 0), (4, 0), "seg2any_mask_editor", sampler_settings(77, 28, 3.5), 2)
    sheet.columns(
        [
            [builder((2, 0), {"entities": (prev, 0)}, PAINTED_CAPTION), back["preview"]],
            [back["encoder"], back["contour"], back["save"]],
            [back["sampler"], back["decode"]],
        ],
        right + GAP_X,
    )
    return sheet.done()


def painted_document() -> str:
    """The mask-editor example's three entities as a Layout Editor document (colour map + prompts)."""
    import numpy as np

    from seg2any.layout.editor_document import document_from_official, encode_document
    from seg2any.layout.examples import mask_editor_inputs

    painted = mask_editor_inputs()
    colours = {"balloon": (230, 57, 70), "mountain": (69, 123, 157), "cabin": (244, 162, 97)}
    size = painted["base"].size[::-1]
    rgb = np.zeros((*size, 3), np.uint8)
    for name, c in colours.items():
        rgb[np.array(painted[name])[..., 3] == 0] = c
    spec = {
        "caption": PAINTED_CAPTION,
        "segments_info": [{"color": list(colours[n]), "text": PAINTED[n]} for n in PAINTED],
    }
    return encode_document(document_from_official(rgb, json.dumps(spec)))


def layout_editor_workflow():
    editor = {"id": 5, "type": "Seg2AnyLayoutEditor", "widgets": {"layout": painted_document()}}
    note = FLUX_NOTE + (
        "\n### Paint your own layout\nIn the **Layout Editor** node: pick an entity row (or add one), paint with brush, "
        "fill, rectangle, ellipse or polygon, type its prompt (the token count updates as you type). Import an official "
        "PNG + JSON pair by file or drag and drop; export the same. The layout is saved inside this workflow."
    )
    sheet = Sheet()
    right, _ = sheet.columns([[read_me(note, LONG_NOTE), *flux_loaders()], [editor, lora((1, 0))]])
    back = back_half((3, 0), (4, 0), "seg2any_layout_editor", sampler_settings(7, 28, 3.5), 2)
    sheet.columns(
        [
            [builder((2, 0), {"segmentation": (5, 0), "segments": (5, 1)}), report()],
            [back["encoder"], back["contour"], back["decode"]],
            [back["sampler"], back["save"]],
        ],
        right + GAP_X,
    )
    return sheet.done()


DEMO_NOTE = (
    "## Seg2Any demo (runs on a CPU, no downloads)\n\nA small FLUX-architecture model trained in this repository on "
    "synthetic coloured shapes, with its own small T5 and VAE. Change the colours, shapes or textures in the "
    "layout's JSON (or paint your own in a **Layout Editor (Seg2Any)** node) and the shapes follow the masks. "
    "Any layout size works: the demo renders at its trained 128 px and **Scale Image to Layout** gives the image "
    "the layout's size. For real images, open the FLUX.1-dev examples."
)


def demo_workflow():
    load = {"id": 5, "type": "Seg2AnyLoadLayout", "widgets": {"layout_json": "examples/demo_shapes.json"}}
    back = back_half((1, 2), (4, 0), "seg2any_demo", sampler_settings(3, 20, 1.0), 1, scale_back=True)
    sheet = Sheet()
    right, _ = sheet.columns([[read_me(DEMO_NOTE, (420, 260)), {"id": 1, "type": "Seg2AnyDemoModelLoader"}, back["rescale"]]])
    first = [lora((1, 0), "seg2any_demo_lora/"), load, report()]
    place_back(
        sheet, right + GAP_X, first, [builder((1, 1), {"segmentation": (5, 0), "segments": (5, 1)}), back["preview"]], back
    )
    return sheet.done()


# Templates with more nodes than fit the window at MIN_SCALE in 1.35's Nodes 2.0 (which draws every
# node 1.2 times larger): they open with the whole graph in view at the scale given here, below
# the classic canvas's text threshold (0.571), until they are made smaller (issue 17, item 5).
SMALL_VIEW = {"mask_editor": 0.4, "layout_editor": 0.45}

WORKFLOWS = {
    "reading_nook": lambda: colour_map_workflow("reading_nook", 1234),
    "badge_grid": lambda: colour_map_workflow("badge_grid", 42),
    "mask_editor": mask_editor_workflow,
    "layout_editor": layout_editor_workflow,
    "demo": demo_workflow,
}


def _layout_sheet(layout, scale: int = 2):
    """Layout preview beside its Entity Contour Map: what the FLUX templates do, without FLUX."""
    import numpy as np

    from seg2any.conditioning.contour import entity_contour_map, generation_size
    from seg2any.layout.preview import render_layout

    left = render_layout(layout, legend=False)
    h, w = generation_size(layout.height, layout.width, scale)
    contour = entity_contour_map(layout.masks, h, w, scale)
    from PIL import Image

    contour = np.array(Image.fromarray(contour).resize((left.shape[1], left.shape[0]), Image.NEAREST))
    return np.concatenate([left, np.full((left.shape[0], 8, 3), 255, np.uint8), contour], axis=1)


def thumbnails(out_dir: str) -> None:
    """example_workflows/<name>.jpg, shown by ComfyUI's template browser next to each template."""
    import numpy as np
    from PIL import Image

    from seg2any.layout.examples import mask_editor_inputs
    from seg2any.layout.layout import layout_from_masks, layout_from_segmentation

    sheets = {}
    for key in ("reading_nook", "badge_grid"):
        with open(os.path.join(out_dir, "layouts", key + ".json"), encoding="utf-8") as f:
            spec = json.load(f)
        seg = np.array(Image.open(os.path.join(out_dir, "layouts", key + ".png")).convert("RGB"))
        sheets[key] = _layout_sheet(layout_from_segmentation(seg, spec))
    painted = mask_editor_inputs()
    names = list(PAINTED)
    masks = np.stack([np.array(painted[n])[..., 3] == 0 for n in names])
    sheets["mask_editor"] = _layout_sheet(layout_from_masks("mask editor", masks, names))
    from seg2any.layout.editor_document import official_outputs, parse_document

    rgb, segments, _ = official_outputs(parse_document(painted_document()))
    sheets["layout_editor"] = _layout_sheet(layout_from_segmentation(rgb, segments))
    demo_json = os.path.join(out_dir, "layouts", "demo_shapes.json")
    if os.path.isfile(demo_json):
        from seg2any.__main__ import main as cli

        tmp = os.path.join(tempfile.mkdtemp(), "demo.png")
        cli(["generate", demo_json, "--out", tmp])
        with open(demo_json, encoding="utf-8") as f:
            spec = json.load(f)
        seg = np.array(Image.open(demo_json[:-5] + ".png").convert("RGB"))
        from seg2any.layout.preview import render_layout

        left = render_layout(layout_from_segmentation(seg, spec), legend=False)
        right = np.array(Image.open(tmp).convert("RGB").resize((left.shape[1], left.shape[0])))
        sheets["demo"] = np.concatenate([left, np.full((left.shape[0], 8, 3), 255, np.uint8), right], axis=1)
    for name, sheet in sheets.items():
        img = Image.fromarray(sheet)
        img.thumbnail((768, 768))
        img.save(os.path.join(out_dir, EXAMPLE_NAMES[name] + ".jpg"), quality=85)
        print("wrote", EXAMPLE_NAMES[name] + ".jpg")


def main():
    import sys

    if "--thumbnails" in sys.argv:
        thumbnails(os.path.join(ROOT, "example_workflows"))
        return
    base = tempfile.mkdtemp(prefix="seg2any-wf-")
    server = ComfyServer(os.environ.get("COMFYUI_PATH", "/opt/ComfyUI"), base).start()
    try:
        info = server.object_info()
    finally:
        server.stop()
    out_dir = os.path.join(ROOT, "example_workflows")
    for key, make in WORKFLOWS.items():
        nodes, notes = make()
        ui = build_ui(nodes, info, notes, view_for(nodes + notes, SMALL_VIEW.get(key, MIN_SCALE)))
        with open(os.path.join(out_dir, EXAMPLE_NAMES[key] + ".json"), "w", encoding="utf-8") as f:
            json.dump(ui, f, indent=1)
        print("wrote", EXAMPLE_NAMES[key])
    if "--json-only" not in sys.argv:
        thumbnails(out_dir)


if __name__ == "__main__":
    main()
