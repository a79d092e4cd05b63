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
# title) / 1.2 measured in 1.35.9, so the gaps between nodes stay gaps in both modes.
SIZES = {
    "UNETLoader": (320, 98),
    "DualCLIPLoader": (320, 156),
    "VAELoader": (320, 70),
    "Seg2AnyDemoModelLoader": (320, 80),
    "Seg2AnyLoadLoRA": (360, 151),
    "Seg2AnyLoadLayout": (380, 110),
    "Seg2AnyLayoutEditor": (600, 900),
    "LoadImage": (320, 400),
    "Seg2AnyEntity": (400, 170),
    "Seg2AnyRegionalPromptBuilder": (440, 600),
    "PreviewAny": (440, 320),
    "Seg2AnyEntityContourEncoder": (360, 130),
    "PreviewImage": (360, 380),
    "Seg2AnyMaskedFluxSampler": (360, 350),
    "VAEDecode": (200, 60),
    "Seg2AnyScaleToLayout": (300, 80),
    "SaveImage": (480, 520),
    "Seg2AnyLayoutPreview": (780, 520),  # picture + legend panel (about 1.8:1) at a readable scale
    "note": (420, 330),
}
# A Markdown note drawn as a Vue node grows to show all its text (the classic note scrolls): the
# longer notes get the body height their text needs there, (drawn height - title) / 1.2 measured
# in 1.35.9 at width 420 (545 px drawn for the FLUX note + one more section), plus some room.
LONG_NOTE = (420, 470)
TITLE_H = 30  # LiteGraph.NODE_TITLE_HEIGHT in both frontends: the title bar sits above pos
GAP_X, GAP_Y = 70, 50  # room for links, slot labels and the node-source badge above a title
# Opening view: scale 0.75, and the first row/column clear of the tab bar (1.35: canvas area from
# y=90), the workflow-name breadcrumb and the side bar (x=63); 1.27 puts its canvas element at
# (64, 78), so it ends up further inside.
VIEW = {"scale": 0.75, "offset": [120, 150]}


def arrange(columns: list[list[dict]]) -> tuple[list[dict], list[dict]]:
    """Place nodes column by column, each below the last with GAP_Y, columns GAP_X apart.

    A node may say ``"align": other_id`` to start level with another node (an entity beside its
    mask). Returns (nodes, notes) for ``build_ui``.
    """
    placed: dict = {}
    nodes, notes = [], []
    x = 0
    for col in columns:
        y, width = 0, 0
        for n in col:
            kind = "note" if n.get("note") else n["type"]
            n.setdefault("size", list(SIZES[kind]))
            if "align" in n:
                y = max(y, placed[n.pop("align")])
            n["pos"] = [x, y + TITLE_H]
            if "id" in n:
                placed[n["id"]] = y
            y += TITLE_H + n["size"][1] + GAP_Y
            width = max(width, n["size"][0])
            (notes if n.get("note") else nodes).append(n)
        x += width + GAP_X
    return nodes, notes


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


def back_half(vae_src, model_src, caption_prefix: str, settings: dict, scale: int, scale_back: bool = False):
    """Encoder + contour preview, sampler + decode (+ scale back to the layout's size: the demo
    renders at its trained 128 px), save + layout preview: three columns."""
    image = (14, 0) if scale_back else (9, 0)
    rescale = [{"id": 14, "type": "Seg2AnyScaleToLayout", "links": {"image": (9, 0), "layout": (6, 0)}}] if scale_back else []
    return [
        [
            {
                "id": 7,
                "type": "Seg2AnyEntityContourEncoder",
                "widgets": {"cond_scale_factor": scale},
                "links": {"vae": vae_src, "layout": (6, 0)},
            },
            {"id": 12, "type": "PreviewImage", "title": "Entity contour map", "links": {"images": (7, 1)}},
        ],
        [
            {
                "id": 8,
                "type": "Seg2AnyMaskedFluxSampler",
                "widgets": settings,
                "links": {"model": model_src, "layout": (6, 0), "condition": (7, 0)},
            },
            {"id": 9, "type": "VAEDecode", "links": {"samples": (8, 0), "vae": vae_src}},
            *rescale,
        ],
        [
            {"id": 10, "type": "SaveImage", "widgets": {"filename_prefix": caption_prefix}, "links": {"images": image}},
            {"id": 11, "type": "Seg2AnyLayoutPreview", "links": {"layout": (6, 0), "image": image}},
        ],
    ]


def read_me(text: str, size=SIZES["note"]) -> dict:
    return {"note": True, "title": "Read me", "text": text, "size": list(size)}


def flux_workflow(
    layout_column: list[dict], builder_links: dict, prefix: str, seed: int, note: str, global_prompt="", note_size=SIZES["note"]
):
    cols = [
        [read_me(note, note_size), *flux_loaders()],
        [lora((1, 0)), *layout_column],
        [builder((2, 0), builder_links, global_prompt), report()],
        *back_half((3, 0), (4, 0), prefix, sampler_settings(seed, 28, 3.5), 2),
    ]
    return arrange(cols)


def colour_map_workflow(example: str, seed: int):
    load = {"id": 5, "type": "Seg2AnyLoadLayout", "widgets": {"layout_json": f"examples/{example}.json"}}
    return flux_workflow([load], {"segmentation": (5, 0), "segments": (5, 1)}, f"seg2any_{example}", seed, FLUX_NOTE)


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
        entities.append({"id": ent, "type": "Seg2AnyEntity", "align": img, "widgets": {"prompt": prompt}, "links": links})
        prev = ent
    note = FLUX_NOTE + (
        "\n### Painting your own masks\nRight-click a Load Image node -> *Open in MaskEditor*, paint one entity, save. "
        "Each Load Image + Seg2Any Entity pair is one entity; add more pairs for more entities. All masks must share "
        "one size. For many entities the **Layout Editor (Seg2Any)** node is quicker."
    )
    cols = [
        [read_me(note, LONG_NOTE), *flux_loaders(), lora((1, 0))],
        images,
        entities,
        [builder((2, 0), {"entities": (prev, 0)}, PAINTED_CAPTION), report()],
        *back_half((3, 0), (4, 0), "seg2any_mask_editor", sampler_settings(77, 28, 3.5), 2),
    ]
    return arrange(cols)


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
    return flux_workflow(
        [editor], {"segmentation": (5, 0), "segments": (5, 1)}, "seg2any_layout_editor", 7, note, note_size=LONG_NOTE
    )


DEMO_NOTE = (
    "## Seg2Any demo (runs on a CPU, no downloads)\n\nA small FLUX-architecture model trained in this repository on "
    "synthetic coloured shapes, with its own small T5 and VAE. Change the colours, shapes or textures in the "
    "layout's JSON (or paint your own in a **Layout Editor (Seg2Any)** node) and the shapes follow the masks. "
    "Any layout size works: the demo renders at its trained 128 px and **Scale Image to Layout** gives the image "
    "the layout's size. For real images, open the FLUX.1-dev examples."
)


def demo_workflow():
    load = {"id": 5, "type": "Seg2AnyLoadLayout", "widgets": {"layout_json": "examples/demo_shapes.json"}}
    cols = [
        [read_me(DEMO_NOTE, (420, 260)), {"id": 1, "type": "Seg2AnyDemoModelLoader"}],
        [lora((1, 0), "seg2any_demo_lora/"), load],
        [builder((1, 1), {"segmentation": (5, 0), "segments": (5, 1)}), report()],
        *back_half((1, 2), (4, 0), "seg2any_demo", sampler_settings(3, 20, 1.0), 1, scale_back=True),
    ]
    return arrange(cols)


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
        ui = build_ui(nodes, info, notes, VIEW)
        with open(os.path.join(out_dir, EXAMPLE_NAMES[key] + ".json"), "w", encoding="utf-8") as f:
            json.dump(ui, f, indent=1)
        print("wrote", EXAMPLE_NAMES[key])
    if "--json-only" not in sys.argv:
        thumbnails(out_dir)


if __name__ == "__main__":
    main()
