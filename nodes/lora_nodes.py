"""Load Seg2Any LoRA: MODEL + checkpoint -> MODEL running the Seg2Any forward."""

from __future__ import annotations

import os

import folder_paths
from comfy_api.latest import io

from seg2any.adapters.comfyui import apply_seg2any
from seg2any.attention import backends
from seg2any.flux.lora_format import ADAPTERS, FILE_NAME, header_keys, is_seg2any_keys, load_checkpoint

from .common import DEMO_DIR, EXAMPLE_LAYOUTS, log
from .types import CATEGORY

FOLDER = "seg2any"
NONE = "(none: Seg2Any attention without adapters)"
EXAMPLE_INPUTS = EXAMPLE_LAYOUTS  # the painted pictures of the mask-editor example


def copy_example_inputs() -> None:
    """The mask-editor example loads painted images with the stock LoadImage, which only sees the
    input folder: put our 'seg2any_example_*' pictures there once (never overwriting)."""
    import shutil

    dst = folder_paths.get_input_directory()
    if not os.path.isdir(EXAMPLE_INPUTS) or not os.path.isdir(dst):
        return
    for f in os.listdir(EXAMPLE_INPUTS):
        if f.startswith("seg2any_example_") and not os.path.exists(os.path.join(dst, f)):
            shutil.copyfile(os.path.join(EXAMPLE_INPUTS, f), os.path.join(dst, f))


def register_folders() -> None:
    """models/seg2any (and the shipped demo) become a model folder; models/loras is searched too."""
    default = os.path.join(folder_paths.models_dir, FOLDER)
    folder_paths.add_model_folder_path(FOLDER, default, is_default=True)
    if os.path.isdir(DEMO_DIR):
        folder_paths.add_model_folder_path(FOLDER, DEMO_DIR)
    paths, exts = folder_paths.folder_names_and_paths[FOLDER]
    folder_paths.folder_names_and_paths[FOLDER] = (paths, set(exts) | {".safetensors"})
    try:
        copy_example_inputs()
    except OSError as exc:  # a read-only input folder must not break loading
        log.warning("Seg2Any: could not copy example inputs: %s", exc)


_KIND_CACHE: dict[tuple[str, str | None], tuple[tuple[float, int], str]] = {}


def file_kind(path: str, adapter: str | None = None) -> str:
    """'seg2any', 'other' (safetensors, but not a Seg2Any checkpoint) or 'unreadable', from the
    header alone, cached by mtime and size (the list is rebuilt on every /object_info)."""
    try:
        st = os.stat(path)
    except OSError:
        return "unreadable"
    stamp = (st.st_mtime, st.st_size)
    hit = _KIND_CACHE.get((path, adapter))
    if hit is not None and hit[0] == stamp:
        return hit[1]
    keys = header_keys(path)
    kind = "unreadable" if keys is None else ("seg2any" if is_seg2any_keys(keys, adapter) else "other")
    _KIND_CACHE[(path, adapter)] = (stamp, kind)
    return kind


def checkpoint_choices() -> list[str]:
    """Official checkpoint folders as 'dir/' entries (default/ + cond/ collapsed), then single files,
    judged by their safetensors header: Seg2Any LoRA keys only, so the FLUX, T5 and VAE weights of
    the demo and ordinary LoRAs in models/loras are not offered. A file in models/seg2any that is
    no safetensors at all stays listed, so the loader can say what is wrong with it."""
    seen, dirs, files = set(), [], []
    for folder in (FOLDER, "loras"):
        if folder not in folder_paths.folder_names_and_paths:
            continue
        for name in folder_paths.get_filename_list(folder):
            parts = name.replace("\\", "/").split("/")
            if not parts[-1].endswith(".safetensors") or name in seen:
                continue
            path = folder_paths.get_full_path(folder, name) or ""
            if len(parts) >= 2 and parts[-1] == FILE_NAME and parts[-2] in ADAPTERS:
                entry = "/".join(parts[:-2]) + "/"
                if entry not in seen and file_kind(path, parts[-2]) == "seg2any":
                    seen.add(entry)
                    dirs.append(entry)
                continue
            kind = file_kind(path)
            if kind == "seg2any" or (kind == "unreadable" and folder == FOLDER):
                seen.add(name)
                files.append(name)
    return sorted(dirs) + sorted(files)


def resolve_checkpoint(entry: str) -> str:
    for folder in (FOLDER, "loras"):
        if folder not in folder_paths.folder_names_and_paths:
            continue
        for root in folder_paths.get_folder_paths(folder):
            p = os.path.join(root, entry.rstrip("/"))
            if (entry.endswith("/") and os.path.isdir(p)) or os.path.isfile(p):
                return p
    raise FileNotFoundError(f"Seg2Any checkpoint '{entry}' not found in models/{FOLDER} or models/loras")


class LoadSeg2AnyLora(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Seg2AnyLoadLoRA",
            display_name="Load Seg2Any LoRA",
            category=CATEGORY,
            description=(
                "Applies a Seg2Any checkpoint (the official default/ + cond/ folders, either file, or one combined file) "
                "to a FLUX model. 'default' is merged for text and image tokens, 'cond' acts only on condition tokens."
            ),
            inputs=[
                io.Model.Input("model"),
                io.Combo.Input(
                    "checkpoint", options=[NONE] + checkpoint_choices(), tooltip="From models/seg2any or models/loras"
                ),
                io.Float.Input(
                    "strength_default", default=1.0, min=-4.0, max=4.0, step=0.05, tooltip="Strength of the text+image adapter"
                ),
                io.Float.Input(
                    "strength_cond", default=1.0, min=-4.0, max=4.0, step=0.05, tooltip="Strength of the condition-token adapter"
                ),
                io.Combo.Input(
                    "attention",
                    options=list(backends.BACKENDS),
                    default="auto",
                    optional=True,
                    tooltip=backends.tooltip(),
                ),
            ],
            outputs=[io.Model.Output()],
        )

    @classmethod
    def execute(cls, model, checkpoint, strength_default, strength_cond, attention="auto"):
        lora = None if checkpoint == NONE else load_checkpoint(resolve_checkpoint(checkpoint))
        if lora is not None:
            for note in lora.notes:
                log.info("Seg2Any: %s: %s", checkpoint, note)
        return io.NodeOutput(apply_seg2any(model, lora, strength_default, strength_cond, backend=attention))
