"""The demo model in a real ComfyUI draws a layout of another size: the loader's MODEL and VAE say
they were trained at 128 px, the contour encoder and the sampler render the layout there (one log
line, naming the entity that vanishes), Scale Image to Layout restores the layout's size, and the
image is the one the command line (diffusers path) draws."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from seg2any.layout.layout import layout_from_segmentation
from tests.conftest import COMFYUI_PATH, ROOT
from tests.support.random_layouts import random_layout
from tests.support.server import ComfyServer, clean
from tests.support.workflows import sampler_settings
from training.metrics import segment_labels, variance_explained

STEPS = 8
CASE = (31, 640, 480, 4)  # rng seed, width, height, entities (+ a tiny one that vanishes)


@pytest.fixture(scope="module")
def layout_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("layout")
    img, spec = random_layout(CASE[0], CASE[1], CASE[2], CASE[3], tiny=True)
    Image.fromarray(img).save(d / "wide_demo.png")
    (d / "wide_demo.json").write_text(json.dumps(spec))
    return d, img, spec


@pytest.fixture(scope="module")
def server(tmp_path_factory, layout_files):
    base = str(tmp_path_factory.mktemp("comfy-demo"))
    os.makedirs(os.path.join(base, "input"), exist_ok=True)
    for ext in ("png", "json"):
        src = layout_files[0] / f"wide_demo.{ext}"
        with open(src, "rb") as f, open(os.path.join(base, "input", src.name), "wb") as g:
            g.write(f.read())
    s = ComfyServer(COMFYUI_PATH, base).start()
    yield s
    s.stop()
    clean(base)


def demo_graph(seed: int) -> dict:
    return {
        "1": {"class_type": "Seg2AnyDemoModelLoader", "inputs": {}},
        "2": {
            "class_type": "Seg2AnyLoadLoRA",
            "inputs": {"model": ["1", 0], "checkpoint": "seg2any_demo_lora/", "strength_default": 1.0, "strength_cond": 1.0},
        },
        "3": {"class_type": "Seg2AnyLoadLayout", "inputs": {"layout_json": "wide_demo.json"}},
        "4": {
            "class_type": "Seg2AnyRegionalPromptBuilder",
            "inputs": {"clip": ["1", 1], "global_prompt": "", "segmentation": ["3", 0], "segments": ["3", 1]},
        },
        "5": {
            "class_type": "Seg2AnyEntityContourEncoder",
            "inputs": {"vae": ["1", 2], "layout": ["4", 0], "cond_scale_factor": 1},
        },
        "6": {
            "class_type": "Seg2AnyMaskedFluxSampler",
            "inputs": {"model": ["2", 0], "layout": ["4", 0], "condition": ["5", 0], **sampler_settings(seed, STEPS, 1.0)},
        },
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["1", 2]}},
        "8": {"class_type": "Seg2AnyScaleToLayout", "inputs": {"image": ["7", 0], "layout": ["4", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "wide_demo"}},
        "10": {"class_type": "PreviewImage", "inputs": {"images": ["5", 1]}},
    }


def test_demo_nodes_render_at_the_trained_size_and_match_the_cli(server, layout_files, tmp_path):
    d, img, spec = layout_files
    result = server.run(demo_graph(spec["seed"]))
    assert result["status"] == "success", (result["errors"], server.tail())
    saved = [server.output_path(i) for i in result["outputs"]["9"]["images"]]
    contour = result["outputs"]["10"]["images"][0]
    with Image.open(saved[0]) as im:
        comfy = np.asarray(im.convert("RGB"))
    with Image.open(os.path.join(server.base, "temp", contour["subfolder"], contour["filename"])) as im:
        assert im.size == (144, 112)  # 640x480 at about 128x128 px, multiples of 16
    assert comfy.shape == (480, 640, 3)
    lines = [ln for ln in server.tail(400).splitlines() if "trained at 128x128 px" in ln]
    assert len(lines) == 1, server.tail()
    assert "the 640x480 layout is rendered at 144x112 and the image scaled back to 640x480" in lines[0]
    assert "'a plain red dot'" in lines[0] and "vanishes" in lines[0]
    lay = layout_from_segmentation(img, spec)
    assert variance_explained(comfy, segment_labels(lay)) >= 0.3
    r = subprocess.run(
        [sys.executable, "-m", "seg2any", "generate", str(d / "wide_demo.json"), "--out", str(tmp_path / "cli.png"),
         "--steps", str(STEPS), "--seed", str(spec["seed"])],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    cli = np.asarray(Image.open(tmp_path / "cli.png").convert("RGB"), np.float64)
    # same weights, noise, resized layout, schedule and scaling; ComfyUI truncates to uint8 where we round
    assert np.abs(comfy - cli).mean() < 1.5, np.abs(comfy - cli).mean()


def test_flux_models_are_not_resized(server):
    """A real FLUX (here the tiny test model, no trained resolution) keeps the layout's size."""
    g = {
        "1": {"class_type": "Seg2AnyTestTinyFlux", "inputs": {"seed": 0}},
        "2": {"class_type": "Seg2AnyTestTinyClip", "inputs": {"seed": 0}},
        "3": {"class_type": "Seg2AnyTestTinyVae", "inputs": {"seed": 0}},
        "4": {"class_type": "Seg2AnyLoadLayout", "inputs": {"layout_json": "wide_demo.json"}},
        "5": {
            "class_type": "Seg2AnyRegionalPromptBuilder",
            "inputs": {"clip": ["2", 0], "global_prompt": "", "segmentation": ["4", 0], "segments": ["4", 1]},
        },
        "6": {"class_type": "Seg2AnyEntityContourEncoder", "inputs": {"vae": ["3", 0], "layout": ["5", 0], "cond_scale_factor": 2}},
        "7": {"class_type": "Seg2AnyLoadLoRA", "inputs": {"model": ["1", 0], "checkpoint": "(none: Seg2Any attention without adapters)", "strength_default": 1.0, "strength_cond": 1.0}},
        "8": {
            "class_type": "Seg2AnyMaskedFluxSampler",
            "inputs": {"model": ["7", 0], "layout": ["5", 0], "condition": ["6", 0], **sampler_settings(0, 1, 3.5)},
        },
        "9": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["3", 0]}},
        "10": {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": "flux_wide"}},
        "11": {"class_type": "Seg2AnyScaleToLayout", "inputs": {"image": ["9", 0], "layout": ["5", 0]}},
        "12": {"class_type": "SaveImage", "inputs": {"images": ["11", 0], "filename_prefix": "flux_wide_scaled"}},
    }  # fmt: skip
    before = server.tail(100000).count("trained at")
    result = server.run(g)
    assert result["status"] == "success", (result["errors"], server.tail())
    with Image.open(server.output_path(result["outputs"]["10"]["images"][0])) as im:
        assert im.size == (640, 480)  # multiples of 32 already: rendered at the layout's own size
    with Image.open(server.output_path(result["outputs"]["12"]["images"][0])) as im:
        assert im.size == (640, 480)
    assert server.tail(100000).count("trained at") == before


def _ksampler_graph(seed: int, with_condition: bool) -> dict:
    """The stock route: Seg2Any Conditioning's latent (the layout's size without a condition, the
    condition's size with one) into KSampler with the demo model."""
    g = {k: v for k, v in demo_graph(seed).items() if k in ("1", "2", "3", "4", "5")}
    g["6"] = {
        "class_type": "Seg2AnyConditioning",
        "inputs": {"layout": ["4", 0], "mode": "hard", "shape_strength": 1.0, "isolation_blocks": "auto", "guidance": 1.0, "batch_size": 1},
    }  # fmt: skip
    if with_condition:
        g["6"]["inputs"]["condition"] = ["5", 0]
    else:
        del g["5"]
    g["7"] = {
        "class_type": "KSampler",
        "inputs": {"model": ["2", 0], "seed": seed, "steps": 2, "cfg": 1.0, "sampler_name": "euler", "scheduler": "simple",
                   "positive": ["6", 0], "negative": ["6", 1], "latent_image": ["6", 2], "denoise": 1.0},
    }  # fmt: skip
    g["8"] = {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["1", 2]}}
    g["9"] = {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "ksampler_demo"}}
    return g


def test_ksampler_route_refuses_a_latent_far_from_the_trained_size(server, layout_files):
    """Without a condition the conditioning's latent has the layout's 640x480 px, where the demo
    draws noise: the run stops with the size to use instead of drawing it."""
    result = server.run(_ksampler_graph(3, with_condition=False))
    assert result["status"] == "error", result
    msg = result["errors"][0]["exception_message"]
    assert "trained at 128x128 px" in msg and "the latent is 640x480 px" in msg, msg
    assert "Empty Latent Image of 144x112" in msg and "Masked FLUX Sampler" in msg, msg

    # with the demo VAE's condition, the latent is already at the trained size: the stock route runs
    result = server.run(_ksampler_graph(3, with_condition=True))
    assert result["status"] == "success", (result["errors"], server.tail())
    with Image.open(server.output_path(result["outputs"]["9"]["images"][0])) as im:
        assert im.size == (144, 112)
