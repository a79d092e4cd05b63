"""End to end through a real ComfyUI server: the shipped example workflows (converted from their UI
JSON), bad inputs that must come back as node errors naming the problem, and a server that keeps
serving afterwards."""

from __future__ import annotations

import glob
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from seg2any.flux.lora_format import write_checkpoint
from tests.conftest import COMFYUI_PATH, ROOT
from tests.support.server import ComfyServer, clean
from tests.support.tiny_flux import TINY, random_lora
from tests.support.workflows import api_links, sampler_settings, ui_links, ui_to_api

EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "example_workflows", "*.json")))
SWAP = {
    "UNETLoader": ("Seg2AnyTestTinyFlux", {"seed": 0}),
    "DualCLIPLoader": ("Seg2AnyTestTinyClip", {"seed": 0}),
    "VAELoader": ("Seg2AnyTestTinyVae", {"seed": 0}),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("comfy-e2e"))
    lora_dir = os.path.join(base, "models", "seg2any", "test_lora")
    from seg2any.adapters.comfyui_models import flux_params

    write_checkpoint(lora_dir, random_lora(flux_params(**TINY), rank=4))
    os.makedirs(os.path.join(base, "models", "seg2any"), exist_ok=True)
    with open(os.path.join(base, "models", "seg2any", "corrupt_seg2any.safetensors"), "wb") as f:
        f.write(b"\x00\x01not a safetensors file at all")
    # the loader's list: a combined Seg2Any file is offered, model weights and an ordinary LoRA are not
    from safetensors.torch import save_file

    from seg2any.flux.lora_format import write_combined

    write_combined(os.path.join(base, "models", "seg2any", "combined.safetensors"), random_lora(flux_params(**TINY), rank=4))
    os.makedirs(os.path.join(base, "models", "loras"), exist_ok=True)
    save_file(
        {"double_blocks.0.img_attn.qkv.weight": torch.zeros(2)},
        os.path.join(base, "models", "seg2any", "flux_weights.safetensors"),
    )
    save_file(
        {"transformer.transformer_blocks.0.attn.to_q.lora_A.weight": torch.zeros(2, 2)},
        os.path.join(base, "models", "loras", "seg2any_style_lora.safetensors"),
    )
    s = ComfyServer(COMFYUI_PATH, base).start()
    yield s
    s.stop()
    clean(base)


@pytest.fixture(scope="module")
def object_info(server):
    return server.object_info()


def test_nodes_are_registered_under_seg2any(object_info):
    ours = {k: v for k, v in object_info.items() if k.startswith("Seg2Any") and not k.startswith("Seg2AnyTest")}
    names = {v["display_name"] for v in ours.values()}
    for required in (
        "Load Seg2Any LoRA",
        "Regional Prompt Builder (Seg2Any)",
        "Entity Contour Encoder (Seg2Any)",
        "Masked FLUX Sampler (Seg2Any)",
    ):
        assert required in names
    assert all(v["category"] == "Seg2Any" for v in ours.values())
    assert "seg2any (official)" in object_info["Seg2AnyMaskedFluxSampler"]["input"]["required"]["scheduler"][1]["options"]


def test_lora_list_offers_only_seg2any_checkpoints(object_info):
    """Header check: the demo's FLUX/T5/VAE weights and an ordinary LoRA (even one named seg2any)
    are not offered; official folders, combined files and an unreadable file (so its error shows) are."""
    options = object_info["Seg2AnyLoadLoRA"]["input"]["required"]["checkpoint"][1]["options"]
    for listed in ("test_lora/", "seg2any_demo_lora/", "combined.safetensors", "corrupt_seg2any.safetensors"):
        assert listed in options, options
    for hidden in (
        "flux.safetensors",
        "t5.safetensors",
        "vae.safetensors",
        "flux_weights.safetensors",
        "seg2any_style_lora.safetensors",
    ):
        assert hidden not in options, options


def test_example_workflows_are_listed_as_templates(server):
    templates = server.get("/workflow_templates")
    listed = set(templates.get("seg2any-nodes", []))
    assert listed == {os.path.splitext(os.path.basename(p))[0] for p in EXAMPLES}
    from urllib import parse, request

    for name in sorted(listed):  # the thumbnail the template browser asks for is served
        with request.urlopen(f"{server.url}/api/workflow_templates/seg2any-nodes/{parse.quote(name)}.jpg", timeout=30) as r:
            assert r.status == 200 and r.read(3) == b"\xff\xd8\xff", name


def test_every_node_has_a_help_page(object_info):
    """web/docs/<NodeClass>.md is what the frontend shows as the node's documentation."""
    ours = [k for k, v in object_info.items() if v.get("python_module", "").endswith("seg2any-nodes")]
    assert len(ours) >= 9
    docs = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "web", "docs")
    for node in ours:
        path = os.path.join(docs, node + ".md")
        assert os.path.isfile(path), f"no help page for {node}"
        with open(path, encoding="utf-8") as f:
            assert f.readline().startswith("# "), node


@pytest.mark.parametrize("path", EXAMPLES, ids=[os.path.basename(p) for p in EXAMPLES])
def test_example_ui_json_converts_to_the_same_graph(path, object_info):
    with open(path) as f:
        ui = json.load(f)
    api = ui_to_api(ui, object_info)
    real = {str(n["id"]) for n in ui["nodes"] if n["type"] not in ("MarkdownNote", "Note")}
    assert set(api) == real
    assert api_links(api) == ui_links(ui)
    for node in api.values():  # every widget of every node got a value
        declared = object_info[node["class_type"]]["input"].get("required", {})
        missing = [k for k in declared if k not in node["inputs"]]
        assert not missing, (node["class_type"], missing)


def swapped(api: dict, steps: int = 2) -> dict:
    """The example graph with test-size models in place of the stock FLUX loaders."""
    out = json.loads(json.dumps(api))
    for node in out.values():
        if node["class_type"] in SWAP:
            node["class_type"], node["inputs"] = SWAP[node["class_type"]][0], dict(SWAP[node["class_type"]][1])
        elif node["class_type"] == "Seg2AnyLoadLoRA":
            node["inputs"]["checkpoint"] = "test_lora/"
        elif node["class_type"] == "Seg2AnyMaskedFluxSampler":
            node["inputs"]["steps"] = steps
    return out


def saved_images(server, result) -> list[str]:
    paths = []
    for out in result["outputs"].values():
        for img in out.get("images", []):
            if img.get("type") == "output":
                paths.append(server.output_path(img))
    return paths


def layout_size(api: dict) -> tuple[int, int]:
    for node in api.values():
        if node["class_type"] == "Seg2AnyLoadLayout":
            with Image.open(
                os.path.join(ROOT, "example_workflows", "layouts", node["inputs"]["layout_json"].split("/", 1)[1][:-5] + ".png")
            ) as im:
                return im.size
        if node["class_type"] == "Seg2AnyLayoutEditor":
            doc = json.loads(node["inputs"]["layout"])
            return doc["width"], doc["height"]
        if node["class_type"] == "LoadImage":
            with Image.open(os.path.join(ROOT, "example_workflows", "layouts", node["inputs"]["image"])) as im:
                return im.size
    raise AssertionError("no layout source in the graph")


@pytest.mark.parametrize("path", [p for p in EXAMPLES if "demo" not in os.path.basename(p)], ids=lambda p: os.path.basename(p))
def test_flux_example_runs_with_test_models(path, server, object_info):
    with open(path) as f:
        api = ui_to_api(json.load(f), object_info)
    prompt = swapped(api)
    result = server.run(prompt)
    assert result["status"] == "success", (result["errors"], server.tail())
    images = saved_images(server, result)
    assert images, result["outputs"]
    w, h = layout_size(api)
    step = 32
    with Image.open(images[0]) as im:
        assert im.size == (w // step * step, h // step * step)
        assert np.asarray(im).std() > 0


@pytest.mark.parametrize("path", [p for p in EXAMPLES if "demo" in os.path.basename(p)], ids=lambda p: os.path.basename(p))
def test_demo_example_runs_as_shipped(path, server, object_info, tmp_path):
    """The demo workflow, untouched, in ComfyUI gives the image the CLI (diffusers path) gives."""
    import subprocess
    import sys

    with open(path) as f:
        api = ui_to_api(json.load(f), object_info)
    result = server.run(api)
    assert result["status"] == "success", (result["errors"], server.tail())
    images = saved_images(server, result)
    assert images
    sampler = next(n["inputs"] for n in api.values() if n["class_type"] == "Seg2AnyMaskedFluxSampler")
    layout = next(n["inputs"]["layout_json"] for n in api.values() if n["class_type"] == "Seg2AnyLoadLayout")
    cli_png = tmp_path / "cli.png"
    r = subprocess.run(
        [sys.executable, "-m", "seg2any", "generate", os.path.join(ROOT, "example_workflows", "layouts", layout.split("/", 1)[1]),
         "--out", str(cli_png), "--steps", str(sampler["steps"]), "--seed", str(sampler["seed"])],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    with Image.open(images[0]) as a, Image.open(cli_png) as b:
        comfy, cli = np.asarray(a.convert("RGB"), np.float64), np.asarray(b.convert("RGB"), np.float64)
    assert comfy.shape == cli.shape
    # same weights, noise, schedule and Euler steps; ComfyUI truncates to uint8 where we round
    assert np.abs(comfy - cli).mean() < 1.5, np.abs(comfy - cli).mean()


# ----------------------------------------------------------------------------------------------
# bad inputs come back as node errors naming the problem; the server keeps serving


def small_graph(entities: list[tuple[int, int, str]], lora="test_lora/", segments_override=None):
    """SolidMask entities (w, h, prompt) -> builder -> encoder -> sampler -> decode -> save."""
    g = {
        "1": {"class_type": "Seg2AnyTestTinyFlux", "inputs": {"seed": 0}},
        "2": {"class_type": "Seg2AnyTestTinyClip", "inputs": {"seed": 0}},
        "3": {"class_type": "Seg2AnyTestTinyVae", "inputs": {"seed": 0}},
        "4": {
            "class_type": "Seg2AnyLoadLoRA",
            "inputs": {"model": ["1", 0], "checkpoint": lora, "strength_default": 1.0, "strength_cond": 1.0, "attention": "auto"},
        },
    }
    prev = None
    for k, (w, h, prompt) in enumerate(entities):
        g[f"m{k}"] = {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": w, "height": h}}
        inputs = {"mask": [f"m{k}", 0], "prompt": prompt}
        if prev:
            inputs["entities"] = [prev, 0]
        g[f"e{k}"] = {"class_type": "Seg2AnyEntity", "inputs": inputs}
        prev = f"e{k}"
    builder = {"clip": ["2", 0], "global_prompt": "a test scene", "entities": [prev, 0]}
    if segments_override is not None:
        g["img"] = {"class_type": "Seg2AnyLoadLayout", "inputs": {"layout_json": "examples/reading_nook.json"}}
        builder = {"clip": ["2", 0], "global_prompt": "", "segmentation": ["img", 0], "segments": segments_override}
    g["5"] = {"class_type": "Seg2AnyRegionalPromptBuilder", "inputs": builder}
    g["6"] = {
        "class_type": "Seg2AnyEntityContourEncoder",
        "inputs": {"vae": ["3", 0], "layout": ["5", 0], "cond_scale_factor": 1},
    }
    g["7"] = {
        "class_type": "Seg2AnyMaskedFluxSampler",
        "inputs": {
            "model": ["4", 0],
            "layout": ["5", 0],
            "condition": ["6", 0],
            **sampler_settings(1, 1, 3.5),
        },
    }
    g["8"] = {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["3", 0]}}
    g["9"] = {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "seg2any_small"}}
    return g


LONG = "an extremely ornate and intricately detailed " * 9

BAD = {
    "mask-size-mismatch": (small_graph([(64, 64, "a cat"), (96, 64, "a dog")]), "mask is 96x64 but entity 1 'a cat' is 64x64"),
    "unknown-colour": (
        small_graph([], segments_override='{"segments_info": [{"color": [1, 2, 3], "text": "a ghost"}]}'),
        "colour [1, 2, 3]",
    ),
    "60-token-entity": (small_graph([(64, 64, LONG)]), "exceed 50 T5 tokens"),
    "corrupt-lora": (small_graph([(64, 64, "a cat")], lora="corrupt_seg2any.safetensors"), "cannot read"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_is_a_node_error_and_the_server_keeps_serving(name, server):
    graph, fragment = BAD[name]
    result = server.run(graph)
    assert result["status"] == "error"
    messages = [e.get("exception_message", "") for e in result["errors"]]
    assert any(fragment in m for m in messages), messages
    ok = server.run(small_graph([(64, 64, "a red square"), (64, 64, "a blue circle")]))
    assert ok["status"] == "success", ok["errors"]
    with Image.open(saved_images(server, ok)[0]) as im:
        assert im.size == (64, 64)
