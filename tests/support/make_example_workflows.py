"""Regenerate example_workflows/*.json (UI format) from the specs below.

    python -m tests.support.make_example_workflows        # needs COMFYUI_PATH
    python -m tests.support.make_example_workflows --thumbnails   # only the .jpg thumbnails

It starts a ComfyUI server with the pack to read /object_info, so widget order always matches
the nodes. The e2e tests convert the written files back to API prompts and run them.
"""

from __future__ import annotations

import json
import os
import tempfile

from tests.support.server import ROOT, ComfyServer
from tests.support.workflows import build_ui, sampler_settings

FLUX_LOADERS = [
    {"id": 1, "type": "UNETLoader", "pos": [0, 0], "widgets": {"unet_name": "flux1-dev.safetensors", "weight_dtype": "default"}},
    {
        "id": 2,
        "type": "DualCLIPLoader",
        "pos": [0, 150],
        "widgets": {"clip_name1": "clip_l.safetensors", "clip_name2": "t5xxl_fp16.safetensors", "type": "flux"},
    },
    {"id": 3, "type": "VAELoader", "pos": [0, 330], "widgets": {"vae_name": "ae.safetensors"}},
    {
        "id": 4,
        "type": "Seg2AnyLoadLoRA",
        "pos": [360, 0],
        "widgets": {
            "checkpoint": "sacap_1m/checkpoint-20000/",
            "strength_default": 1.0,
            "strength_cond": 1.0,
            "attention": "auto",
        },
        "links": {"model": (1, 0)},
    },
]

FLUX_NOTE = """## Seg2Any on FLUX.1-dev

Models (standard ComfyUI folders):
- `models/diffusion_models/flux1-dev.safetensors` (FLUX.1-dev; fp8 works too)
- `models/text_encoders/clip_l.safetensors`, `models/text_encoders/t5xxl_fp16.safetensors`
- `models/vae/ae.safetensors`
- `models/seg2any/sacap_1m/checkpoint-20000/` with `default/` and `cond/` (the official Seg2Any weights, hub repo `0xLDF/Seg2Any`)

Each entity's caption must stay within 50 T5 tokens (the builder reports counts). 1024 px with cond_scale_factor 2 matches the SACap model.
"""


def tail(first_id: int, layout_src, caption_prefix: str, seed: int):
    i = first_id
    return [
        {
            "id": i,
            "type": "Seg2AnyEntityContourEncoder",
            "pos": [760, 330],
            "widgets": {"cond_scale_factor": 2},
            "links": {"vae": (3, 0), "layout": layout_src},
        },
        {
            "id": i + 1,
            "type": "Seg2AnyMaskedFluxSampler",
            "pos": [1120, 0],
            "size": [340, 420],
            "widgets": sampler_settings(seed, 28, 3.5),
            "links": {"model": (4, 0), "layout": layout_src, "condition": (i, 0)},
        },
        {"id": i + 2, "type": "VAEDecode", "pos": [1500, 0], "links": {"samples": (i + 1, 0), "vae": (3, 0)}},
        {
            "id": i + 3,
            "type": "SaveImage",
            "pos": [1720, 0],
            "size": [420, 460],
            "widgets": {"filename_prefix": caption_prefix},
            "links": {"images": (i + 2, 0)},
        },
        {
            "id": i + 4,
            "type": "Seg2AnyLayoutPreview",
            "pos": [1720, 500],
            "size": [520, 420],
            "links": {"layout": layout_src, "image": (i + 2, 0)},
        },
        {"id": i + 5, "type": "PreviewImage", "pos": [1120, 480], "size": [300, 320], "links": {"images": (i, 1)}},
    ]


def colour_map_workflow(example: str, seed: int):
    nodes = FLUX_LOADERS + [
        {"id": 5, "type": "Seg2AnyLoadLayout", "pos": [360, 200], "widgets": {"layout_json": f"examples/{example}.json"}},
        {
            "id": 6,
            "type": "Seg2AnyRegionalPromptBuilder",
            "pos": [760, 0],
            "size": [340, 300],
            "widgets": {"global_prompt": "", "segments": "", "mask_prompts": "", "negative_prompt": ""},
            "links": {"clip": (2, 0), "segmentation": (5, 0), "segments": (5, 1)},
        },
    ]
    nodes += tail(7, (6, 0), f"seg2any_{example}", seed)
    return nodes, [{"pos": [0, 480], "text": FLUX_NOTE, "title": "Read me"}]


def mask_editor_workflow():
    nodes = list(FLUX_LOADERS)
    prompts = {
        "balloon": "A red and white striped hot air balloon with a wicker basket.",
        "mountain": "A snow-capped rocky mountain peak lit by the morning sun.",
        "cabin": "A small wooden log cabin with a glowing window and a stone chimney.",
    }
    prev = None
    nid = 20
    for k, (name, prompt) in enumerate(prompts.items()):
        nodes.append(
            {
                "id": nid,
                "type": "LoadImage",
                "pos": [360, 200 + 330 * k],
                "size": [300, 300],
                "widgets": {"image": f"seg2any_example_painted_{name}.png"},
            }
        )
        links = {"mask": (nid, 1)}
        if prev is not None:
            links["entities"] = (prev, 0)
        nodes.append(
            {"id": nid + 1, "type": "Seg2AnyEntity", "pos": [700, 200 + 330 * k], "widgets": {"prompt": prompt}, "links": links}
        )
        prev = nid + 1
        nid += 2
    nodes.append(
        {
            "id": 6,
            "type": "Seg2AnyRegionalPromptBuilder",
            "pos": [760, 0],
            "size": [340, 200],
            "widgets": {
                "global_prompt": "A hot air balloon drifting over a snowy mountain at sunrise, a wooden cabin in the valley below.",
                "segments": "",
                "mask_prompts": "",
                "negative_prompt": "",
            },
            "links": {"clip": (2, 0), "entities": (prev, 0)},
        }
    )
    nodes += tail(7, (6, 0), "seg2any_mask_editor", 77)
    note = FLUX_NOTE + (
        "\n\n### Painting your own masks\nRight-click a Load Image node -> *Open in MaskEditor*, paint one entity, save. "
        "Each Load Image + Seg2Any Entity pair is one entity; add more pairs for more entities. All masks must share one size."
    )
    return nodes, [{"pos": [0, 480], "text": note, "title": "Read me"}]


def demo_workflow():
    nodes = [
        {"id": 1, "type": "Seg2AnyDemoModelLoader", "pos": [0, 0]},
        {
            "id": 4,
            "type": "Seg2AnyLoadLoRA",
            "pos": [360, 0],
            "widgets": {"checkpoint": "seg2any_demo_lora/", "strength_default": 1.0, "strength_cond": 1.0, "attention": "auto"},
            "links": {"model": (1, 0)},
        },
        {"id": 5, "type": "Seg2AnyLoadLayout", "pos": [360, 200], "widgets": {"layout_json": "examples/demo_shapes.json"}},
        {
            "id": 6,
            "type": "Seg2AnyRegionalPromptBuilder",
            "pos": [760, 0],
            "size": [340, 300],
            "widgets": {"global_prompt": "", "segments": "", "mask_prompts": "", "negative_prompt": ""},
            "links": {"clip": (1, 1), "segmentation": (5, 0), "segments": (5, 1)},
        },
        {
            "id": 7,
            "type": "Seg2AnyEntityContourEncoder",
            "pos": [760, 330],
            "widgets": {"cond_scale_factor": 1},
            "links": {"vae": (1, 2), "layout": (6, 0)},
        },
        {
            "id": 8,
            "type": "Seg2AnyMaskedFluxSampler",
            "pos": [1120, 0],
            "size": [340, 420],
            "widgets": sampler_settings(3, 20, 1.0),
            "links": {"model": (4, 0), "layout": (6, 0), "condition": (7, 0)},
        },
        {"id": 9, "type": "VAEDecode", "pos": [1500, 0], "links": {"samples": (8, 0), "vae": (1, 2)}},
        {
            "id": 10,
            "type": "SaveImage",
            "pos": [1720, 0],
            "size": [420, 460],
            "widgets": {"filename_prefix": "seg2any_demo"},
            "links": {"images": (9, 0)},
        },
        {
            "id": 11,
            "type": "Seg2AnyLayoutPreview",
            "pos": [1720, 500],
            "size": [520, 420],
            "links": {"layout": (6, 0), "image": (9, 0)},
        },
    ]
    note = (
        "## Seg2Any demo (runs on CPU, no downloads)\n\nA small FLUX-architecture model trained in this repository on "
        "synthetic coloured shapes, with its own small T5 and VAE. Change the colours, shapes or textures in the "
        "layout's JSON (or paint masks) and the shapes follow the masks. For real images, open the FLUX.1-dev examples."
    )
    return nodes, [{"pos": [0, 200], "text": note, "title": "Read me"}]


WORKFLOWS = {
    "seg2any_reading_nook": lambda: colour_map_workflow("reading_nook", 1234),
    "seg2any_badge_grid": lambda: colour_map_workflow("badge_grid", 42),
    "seg2any_mask_editor": mask_editor_workflow,
    "seg2any_demo": demo_workflow,
}


def _layout_sheet(layout, scale: int = 2):
    """Layout preview beside its Entity Contour Map: what the FLUX templates do, without FLUX."""
    import numpy as np

    from seg2any.contour import entity_contour_map, generation_size
    from seg2any.preview import render_layout

    left = render_layout(layout, legend_width=0)
    h, w = generation_size(layout.height, layout.width, scale)
    contour = entity_contour_map(layout.masks, h, w, scale)
    from PIL import Image

    contour = np.array(Image.fromarray(contour).resize((left.shape[1], left.shape[0]), Image.NEAREST))
    return np.concatenate([left, np.full((left.shape[0], 8, 3), 255, np.uint8), contour], axis=1)


def thumbnails(out_dir: str) -> None:
    """example_workflows/<name>.jpg, shown by ComfyUI's template browser next to each template."""
    import numpy as np
    from PIL import Image

    from seg2any.example_layouts import mask_editor_inputs
    from seg2any.layout import layout_from_masks, layout_from_segmentation

    sheets = {}
    for name, ex in (("seg2any_reading_nook", "reading_nook"), ("seg2any_badge_grid", "badge_grid")):
        with open(os.path.join(out_dir, "layouts", ex + ".json"), encoding="utf-8") as f:
            spec = json.load(f)
        seg = np.array(Image.open(os.path.join(out_dir, "layouts", ex + ".png")).convert("RGB"))
        sheets[name] = _layout_sheet(layout_from_segmentation(seg, spec))
    painted = mask_editor_inputs()
    names = ["balloon", "mountain", "cabin"]
    masks = np.stack([np.array(painted[n])[..., 3] == 0 for n in names])
    sheets["seg2any_mask_editor"] = _layout_sheet(layout_from_masks("mask editor", masks, names))
    demo_json = os.path.join(out_dir, "layouts", "demo_shapes.json")
    if os.path.isfile(demo_json) and "seg2any_demo" in WORKFLOWS:
        from seg2any.__main__ import main as cli

        tmp = os.path.join(tempfile.mkdtemp(), "demo.png")
        cli(["generate", demo_json, "--out", tmp])
        with open(demo_json, encoding="utf-8") as f:
            spec = json.load(f)
        seg = np.array(Image.open(demo_json[:-5] + ".png").convert("RGB"))
        from seg2any.preview import render_layout

        left = render_layout(layout_from_segmentation(seg, spec), legend_width=0)
        right = np.array(Image.open(tmp).convert("RGB").resize((left.shape[1], left.shape[0])))
        sheets["seg2any_demo"] = np.concatenate([left, np.full((left.shape[0], 8, 3), 255, np.uint8), right], axis=1)
    for name, sheet in sheets.items():
        img = Image.fromarray(sheet)
        img.thumbnail((768, 768))
        img.save(os.path.join(out_dir, name + ".jpg"), quality=85)
        print("wrote", name + ".jpg")


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
    for name, make in WORKFLOWS.items():
        nodes, notes = make()
        ui = build_ui(nodes, info, notes)
        with open(os.path.join(out_dir, name + ".json"), "w", encoding="utf-8") as f:
            json.dump(ui, f, indent=1)
        print("wrote", name)
    thumbnails(out_dir)


if __name__ == "__main__":
    main()
