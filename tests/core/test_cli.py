"""The command line: the README's main command on the shipped demo model, and its helpers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from seg2any.conditioning.contour import generation_size
from seg2any.flux.lora_format import load_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "seg2any", "demo")
DEMO_LAYOUT = os.path.join(ROOT, "example_workflows", "layouts", "demo_shapes.json")
NOOK = os.path.join(ROOT, "example_workflows", "layouts", "reading_nook.json")

needs_demo = pytest.mark.skipif(
    not os.path.isfile(os.path.join(DEMO, "flux.safetensors")), reason="demo model not packaged (training/make_demo.py)"
)


def cli(*args):
    return subprocess.run([sys.executable, "-m", "seg2any", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


@needs_demo
def test_generate_on_the_demo_model_draws_the_layout(tmp_path):
    pytest.importorskip("diffusers")
    from training.metrics import shape_metrics

    out = tmp_path / "out.png"
    r = cli("generate", DEMO_LAYOUT, "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "wrote" in r.stdout
    assert "trained at" not in r.stdout  # the demo layout is already at the demo's size
    assert "peft_config" not in r.stderr  # peft's multi-adapter warning, once printed on every run
    img = np.asarray(Image.open(out).convert("RGB"))
    seg = np.asarray(Image.open(DEMO_LAYOUT[:-5] + ".png").convert("RGB"))
    assert img.shape == (*generation_size(*seg.shape[:2], 1), 3)
    # a second run with the same seed is the same image
    r2 = cli("generate", DEMO_LAYOUT, "--out", str(tmp_path / "again.png"))
    assert r2.returncode == 0
    assert np.array_equal(img, np.asarray(Image.open(tmp_path / "again.png").convert("RGB")))
    # the demo actually follows the layout: exact colour segmentation of the output against the
    # scene the layout was drawn from
    from training.make_demo import demo_sample

    sample, attrs, bg = demo_sample()
    assert np.array_equal(sample.layout.masks.any(axis=0), seg.any(axis=2))
    _, agg = shape_metrics(img, sample.layout, attrs, bg)
    assert agg["colour_acc"] >= 0.5, agg


def test_preview_and_missing_png_message(tmp_path):
    out = tmp_path / "p.png"
    r = cli("preview", NOOK, "--out", str(out))
    assert r.returncode == 0, r.stderr
    seg = Image.open(NOOK[:-5] + ".png")
    assert Image.open(out).height == seg.height
    lonely = tmp_path / "lonely.json"
    shutil.copyfile(NOOK, lonely)
    r = cli("preview", str(lonely), "--out", str(tmp_path / "q.png"))
    assert r.returncode != 0 and "no segmentation image" in r.stderr and "lonely.png" in r.stderr


@needs_demo
def test_pack_lora_round_trip(tmp_path):
    src = os.path.join(DEMO, "seg2any_demo_lora")
    out = tmp_path / "combined.safetensors"
    r = cli("pack-lora", src, str(out))
    assert r.returncode == 0, r.stderr
    a, b = load_checkpoint(src), load_checkpoint(str(out))
    for name in ("default", "cond"):
        fa, fb = a.adapter(name), b.adapter(name)
        assert fa.keys() == fb.keys()
        for k in fa:
            assert torch.equal(fa[k].down, fb[k].down) and torch.equal(fa[k].up, fb[k].up)
