"""Layout nodes: build a Seg2Any layout from a colour map, masks or entity chains, and preview it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import torch
from comfy_api.latest import io, ui

from seg2any.adapters.comfyui_demo import trained_resolution
from seg2any.adapters.comfyui_text import encode_captions, encode_negative
from seg2any.conditioning.problems import layout_problems
from seg2any.conditioning.settings import EncodedLayout
from seg2any.errors import LayoutError
from seg2any.flux import spec
from seg2any.layout.layout import Entity, Layout, entity_label, layout_from_masks, layout_from_segmentation
from seg2any.layout.preview import render_layout

from .common import EXAMPLE_LAYOUTS, log
from .types import CATEGORY, Entities
from .types import Layout as LayoutType


@dataclass(frozen=True, eq=False)
class EntityList:
    """Masks with prompts collected by chained 'Seg2Any Entity' nodes, in chain order."""

    items: tuple[tuple[np.ndarray, str], ...]


def _mask_batch(mask: torch.Tensor) -> list[np.ndarray]:
    m = mask.detach().cpu()
    if m.ndim == 2:
        m = m[None]
    return [x.numpy() > 0.5 for x in m]


def _prompt_lines(text: str) -> list[str]:
    return [ln.strip() for ln in (text or "").splitlines() if ln.strip()]


def collect_layout(global_prompt, segmentation=None, segments="", masks=None, mask_prompts="", entities=None) -> Layout:
    """All entity sources of the builder merged into one layout (colour map, mask batch, chain)."""
    parts: list[Layout] = []
    caption = (global_prompt or "").strip()
    if segmentation is not None:
        if segmentation.shape[0] != 1:
            raise LayoutError(f"one segmentation image expected, got a batch of {segmentation.shape[0]}")
        if not (segments or "").strip():
            raise LayoutError(
                "a segmentation image is connected but 'segments' is empty: paste its colour -> prompt table "
                "(the official JSON, or one '#rrggbb: prompt' per line)"
            )
        seg_layout = layout_from_segmentation(segmentation[0], segments, global_prompt=caption)
        caption = caption or seg_layout.global_prompt
        parts.append(seg_layout)
    elif (segments or "").strip():
        raise LayoutError("'segments' is filled in but no segmentation image is connected")
    if masks is not None:
        prompts = _prompt_lines(mask_prompts)
        parts.append(layout_from_masks(caption, _mask_batch(masks), prompts))
    elif _prompt_lines(mask_prompts):
        raise LayoutError("'mask_prompts' is filled in but no masks are connected")
    if entities is not None and entities.items:
        parts.append(layout_from_masks(caption, [m for m, _ in entities.items], [p for _, p in entities.items]))
    if not parts:
        raise LayoutError(
            "no entities: connect a segmentation image with its colour table, masks with prompts, or Seg2Any Entity nodes"
        )
    h, w = parts[0].height, parts[0].width
    ents: list[Entity] = []
    notes: list[str] = []
    offset = 0  # each source's entities are numbered after the previous source's, in their own list order
    for part in parts:
        if (part.height, part.width) != (h, w):
            raise LayoutError(f"entity sources disagree on size: {part.width}x{part.height} vs {w}x{h}")
        for k, e in enumerate(part.entities):
            i = offset + e.place(k)
            ents.append(Entity(e.prompt, e.mask, e.color, entity_label(i, e.prompt, e.color), order=i))
        offset += len(part.entities)
        notes += list(part.notes)
    seed = parts[0].seed
    return Layout(caption, tuple(ents), h, w, seed, tuple(notes))


class RegionalPromptBuilder(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Seg2AnyRegionalPromptBuilder",
            display_name="Regional Prompt Builder (Seg2Any)",
            category=CATEGORY,
            description=(
                "Global prompt + one prompt per entity. Entities come from a colour-coded segmentation image with its "
                "colour -> prompt table (official JSON or '#rrggbb: prompt' lines), a MASK batch with one prompt per "
                "line, and/or chained Seg2Any Entity nodes. Each caption is T5-encoded on its own, as Seg2Any was "
                "trained; entity captions over 50 T5 tokens are refused."
            ),
            inputs=[
                io.Clip.Input("clip"),
                io.String.Input("global_prompt", multiline=True, default="", tooltip="Empty: use the JSON 'caption'"),
                io.Image.Input("segmentation", optional=True, tooltip="Colour-coded segmentation map (RGB)"),
                io.String.Input(
                    "segments", multiline=True, default="", optional=True, tooltip="Official JSON or '#rrggbb: prompt' lines"
                ),
                io.Mask.Input("masks", optional=True, tooltip="A batch of masks, one entity each"),
                io.String.Input(
                    "mask_prompts", multiline=True, default="", optional=True, tooltip="One prompt per line, in mask order"
                ),
                Entities.Input("entities", optional=True),
                io.String.Input(
                    "negative_prompt", multiline=True, default="", optional=True, tooltip="Used in every region when CFG > 1"
                ),
            ],
            outputs=[LayoutType.Output(display_name="layout"), io.String.Output(display_name="report")],
        )

    @classmethod
    def execute(
        cls, clip, global_prompt, segmentation=None, segments="", masks=None, mask_prompts="", entities=None, negative_prompt=""
    ):
        layout = collect_layout(global_prompt, segmentation, segments, masks, mask_prompts, entities)
        labels = [e.label for e in layout.entities]
        positive, budget = encode_captions(clip, layout.global_prompt, layout.prompts, labels)
        negative = encode_negative(clip, negative_prompt or "", len(layout.entities))
        notes = list(layout.notes)
        for p in layout_problems(layout, trained_resolution=trained_resolution(clip)):
            log.warning("Seg2Any: %s", p.message)
            notes.append("WARNING: " + p.message)
        layout = Layout(layout.global_prompt, layout.entities, layout.height, layout.width, layout.seed, tuple(notes))
        enc = EncodedLayout(layout, positive, negative, tuple(budget))
        report = enc.report()
        return io.NodeOutput(enc, report, ui=ui.PreviewText(report))


class EntityNode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Seg2AnyEntity",
            display_name="Seg2Any Entity",
            category=CATEGORY,
            description="One entity (a mask and its prompt). Chain several into the Regional Prompt Builder.",
            inputs=[
                io.Mask.Input("mask"),
                io.String.Input("prompt", multiline=True, default=""),
                Entities.Input("entities", optional=True, tooltip="Entities before this one"),
            ],
            outputs=[Entities.Output(display_name="entities")],
        )

    @classmethod
    def execute(cls, mask, prompt, entities=None):
        items = tuple(entities.items) if entities is not None else ()
        ms = _mask_batch(mask)
        if len(ms) != 1:
            raise LayoutError(
                f"Seg2Any Entity takes one mask, got a batch of {len(ms)} (use the builder's 'masks' input for batches)"
            )
        if not (prompt or "").strip():
            raise LayoutError(f"entity {len(items) + 1}: the prompt is empty")
        if not ms[0].any():
            raise LayoutError(f"entity {len(items) + 1} ('{prompt.strip()[:40]}'): the mask is empty")
        return io.NodeOutput(EntityList(items + ((ms[0], prompt.strip()),)))


EXAMPLES_DIR = EXAMPLE_LAYOUTS
EXAMPLE_PREFIX = "examples/"


def layout_files() -> list[str]:
    """X.json files with a matching X.png: the pack's examples, then the input folder."""
    import folder_paths

    out = []
    for root, prefix in ((EXAMPLES_DIR, EXAMPLE_PREFIX), (folder_paths.get_input_directory(), "")):
        if os.path.isdir(root):
            for f in sorted(os.listdir(root)):
                if f.lower().endswith(".json") and os.path.isfile(os.path.join(root, f[:-5] + ".png")):
                    out.append(prefix + f)
    return out


def layout_path(entry: str) -> str:
    import folder_paths

    if entry.startswith(EXAMPLE_PREFIX):
        return os.path.join(EXAMPLES_DIR, entry[len(EXAMPLE_PREFIX) :])
    return os.path.join(folder_paths.get_input_directory(), entry)


class LayoutFromFiles(io.ComfyNode):
    """The official example format: X.png + X.json from the input folder (or the pack's examples)."""

    @classmethod
    def define_schema(cls):
        files = layout_files()
        return io.Schema(
            node_id="Seg2AnyLoadLayout",
            display_name="Load Seg2Any Layout (PNG + JSON)",
            category=CATEGORY,
            description="Loads a colour-coded PNG and its official-format JSON (same name) from the input folder, or one of the pack's examples.",
            inputs=[io.Combo.Input("layout_json", options=files or ["(put X.png + X.json into the input folder)"])],
            outputs=[
                io.Image.Output(display_name="segmentation"),
                io.String.Output(display_name="segments"),
                io.String.Output(display_name="caption"),
            ],
        )

    @classmethod
    def execute(cls, layout_json):
        from PIL import Image

        path = layout_path(layout_json)
        png = os.path.splitext(path)[0] + ".png"
        if not os.path.isfile(path) or not os.path.isfile(png):
            raise LayoutError(f"need both {os.path.basename(png)} and {layout_json} in the input folder")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        try:
            caption = json.loads(text).get("caption", "") or ""
        except (ValueError, AttributeError) as exc:
            raise LayoutError(f"{layout_json} is not valid JSON: {exc}") from exc
        img = np.array(Image.open(png).convert("RGBA" if Image.open(png).mode == "RGBA" else "RGB"))
        tensor = torch.from_numpy(img.astype(np.float32) / 255.0)[None]
        return io.NodeOutput(tensor, text, caption)

    @classmethod
    def fingerprint_inputs(cls, layout_json):
        p = layout_path(layout_json)
        return tuple(os.path.getmtime(x) if os.path.exists(x) else 0 for x in (p, os.path.splitext(p)[0] + ".png"))


class LayoutPreview(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Seg2AnyLayoutPreview",
            display_name="Seg2Any Layout Preview",
            category=CATEGORY,
            description="Entities tinted and numbered with a legend of their prompts; overlaps hatched; vanishing entities flagged.",
            inputs=[
                LayoutType.Input("layout"),
                io.Image.Input("image", optional=True, tooltip="Drawn underneath, e.g. a generated image"),
            ],
            outputs=[io.Image.Output(display_name="preview")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, layout, image=None):
        lay = layout.layout
        base = None
        if image is not None:
            base = (image[0].detach().cpu().numpy()[..., :3] * 255.0).round().clip(0, 255).astype(np.uint8)
        pic = render_layout(lay, base, grid=spec.token_grid(lay.height, lay.width))
        tensor = torch.from_numpy(pic.astype(np.float32) / 255.0)[None]
        return io.NodeOutput(tensor, ui=ui.PreviewImage(tensor, cls=cls))


def _box_inputs() -> list:
    """The bounding-box inputs, where the running ComfyUI has the core BOUNDING_BOX type (0.33+);
    older ComfyUI has no node that makes boxes, so the node there takes masks only."""
    box = getattr(io, "BoundingBox", None)
    if box is None:
        return []
    return [
        box.Input(
            "bboxes",
            optional=True,
            force_input=True,
            tooltip="Bounding boxes in pixels (e.g. core Create Bounding Boxes), one entity each, after the masks",
        ),
        io.String.Input(
            "box_prompts", multiline=True, default="", optional=True, tooltip="One prompt per line, in the order of the boxes"
        ),
        io.Int.Input("width", default=1024, min=16, max=16384, optional=True, tooltip="Image width when no masks are connected"),
        io.Int.Input(
            "height", default=1024, min=16, max=16384, optional=True, tooltip="Image height when no masks are connected"
        ),
    ]


class LayoutFromMasks(io.ComfyNode):
    """A MASK batch (e.g. core SAM3_Detect's individual masks) and/or core bounding boxes, each with
    one prompt per line, as the segmentation + segments pair every layout source gives (one node,
    not one Entity node per mask)."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Seg2AnyLayoutFromMasks",
            display_name="Layout from Masks (Seg2Any)",
            category=CATEGORY,
            description=(
                "Turns a batch of masks (for example SAM3 Detect with individual masks) and a list of prompts, one per "
                "line in the masks' order, into a colour-coded segmentation and its official JSON, the same outputs as "
                "'Load Seg2Any Layout' and the Layout Editor. On ComfyUI with bounding boxes (Create Bounding Boxes), "
                "boxes with their own prompt lines become rectangular entities after the masks. Where entities overlap "
                "the smaller one wins."
            ),
            inputs=[
                io.Mask.Input("masks", optional=True, tooltip="A batch of masks (N, H, W), one entity each; > 0.5 is inside"),
                io.String.Input("prompts", multiline=True, default="", tooltip="One prompt per line, in the order of the masks"),
                io.String.Input("caption", multiline=True, default="", tooltip="The global caption of the whole picture"),
                *_box_inputs(),
            ],
            outputs=[
                io.Image.Output(display_name="segmentation"),
                io.String.Output(display_name="segments"),
                io.String.Output(display_name="caption"),
            ],
        )

    @classmethod
    def execute(cls, prompts, caption="", masks=None, bboxes=None, box_prompts="", width=1024, height=1024):
        from seg2any.layout.masks_to_layout import box_list, colour_map_from_masks, prompt_lines

        rgb, spec = colour_map_from_masks(
            None if masks is None else masks.detach().cpu().float().numpy(),
            prompt_lines(prompts),
            caption,
            boxes=box_list(bboxes),
            box_prompts=prompt_lines(box_prompts),
            size=(height, width),
        )
        tensor = torch.from_numpy(rgb.astype(np.float32) / 255.0)[None]
        return io.NodeOutput(tensor, json.dumps(spec, ensure_ascii=False), spec["caption"])
