"""FLUX.1-dev in diffusers layout: the CLI's and the trainer's loaders on a tiny random folder that
has the real file layout and the real CLIP-L / T5 tokenizers (ComfyUI's copies)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from seg2any.conditioning.contour import generation_size
from seg2any.conditioning.t5_tokens import T5Tokenizer
from seg2any.flux.lora_format import ADAPTERS, cond_targets, default_targets, load_checkpoint, write_checkpoint
from tests.conftest import COMFYUI_PATH
from tests.support.tiny_flux import TINY, random_lora

pytest.importorskip("diffusers")
pytest.importorskip("peft")

from seg2any.adapters.diffusers_pipeline import load_flux_dev  # noqa: E402
from tests.support.fake_flux_dev import write_fake_flux_dev  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOOK = os.path.join(ROOT, "example_workflows", "layouts", "reading_nook.json")
SPIECE = os.path.join(ROOT, "seg2any", "demo", "spiece.model")


@pytest.fixture(scope="module")
def flux_dev(tmp_path_factory):
    root = tmp_path_factory.mktemp("FLUX.1-dev")
    params = write_fake_flux_dev(str(root), COMFYUI_PATH)
    ckpt = root.parent / "seg2any_ckpt"
    write_checkpoint(str(ckpt), random_lora(params, rank=4))
    return str(root), params, str(ckpt)


def run_cli(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "seg2any", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, OMP_NUM_THREADS="2"),
    )


def test_loader_uses_the_folders_weights_tokenizers_and_vae_config(flux_dev):
    root, _, ckpt = flux_dev
    from safetensors.torch import load_file

    m = load_flux_dev(root, ckpt, device="cpu", dtype=torch.float32)
    on_disk = load_file(os.path.join(root, "transformer", "diffusion_pytorch_model.safetensors"))
    loaded = m.transformer.state_dict()
    for k in (
        "norm_out.linear.weight",
        "time_text_embed.guidance_embedder.linear_1.weight",
        "pos_embed" if False else "x_embedder.weight",
    ):
        got = loaded.get(k, loaded.get(k.replace(".weight", ".base_layer.weight")))
        assert torch.equal(got, on_disk[k]), k
    with open(os.path.join(root, "vae", "config.json")) as f:
        vcfg = json.load(f)
    assert (m.shift, m.scale) == (vcfg["shift_factor"], vcfg["scaling_factor"])
    # T5 ids from the folder's tokenizer.json == our SentencePiece path (the one the budget report uses)
    ours = T5Tokenizer(SPIECE).ids
    for text in ["a red striped triangle", "An old armchair, velvet; 3 cushions!", "snow-capped peaks at dawn"]:
        assert m.t5_ids(text) == ours(text), text
    assert m.pooled("a cat").shape == (1, 32)


def test_cli_generates_on_flux_dev_folder(flux_dev, tmp_path):
    root, _, ckpt = flux_dev
    out = tmp_path / "nook.png"
    r = run_cli("generate", NOOK, "--flux", root, "--lora", ckpt, "--device", "cpu", "--steps", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    src = Image.open(NOOK[:-5] + ".png")
    h, w = generation_size(src.height, src.width, 2)
    img = np.array(Image.open(out))
    assert img.shape == (h, w, 3)
    assert img.std() > 0


def test_cli_refuses_a_lora_for_another_model(flux_dev, tmp_path):
    root, _, _ = flux_dev
    wrong = tmp_path / "wrong"
    write_checkpoint(str(wrong), random_lora(dict(TINY, in_channels=16), rank=4))
    r = run_cli(
        "generate",
        NOOK,
        "--flux",
        root,
        "--lora",
        str(wrong),
        "--device",
        "cpu",
        "--steps",
        "1",
        "--out",
        str(tmp_path / "x.png"),
    )
    assert r.returncode != 0
    assert "expected A" in r.stderr or "targets in a" in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "x.png").exists()


def test_trainer_trains_adapters_on_flux_dev_folder(flux_dev, tmp_path):
    """Two steps of adapter training on the folder: the official checkpoint layout comes out and every
    adapter module through which the loss flows was updated (B starts at zero)."""
    from training.train import main as train_main

    root, params, _ = flux_dev
    out = tmp_path / "run"
    path = train_main(
        ["--stage", "seg2any", "--base", root, "--dataset", "synthetic", "--synthetic-size", "4", "--resolution", "64",
         "--steps", "2", "--batch-size", "2", "--rank", "4", "--lr", "1e-3", "--save-every", "2", "--val-every", "1000", "--gradient-checkpointing",
         "--val-steps", "1", "--out", str(out)]
    )  # fmt: skip
    assert os.path.basename(path) == "checkpoint-2"
    for a in ADAPTERS:
        assert os.path.isfile(os.path.join(path, a, "pytorch_lora_weights.safetensors"))
    lora = load_checkpoint(path)
    d, s = params["depth"], params["depth_single_blocks"]
    assert set(lora.default) == set(default_targets(d, s))
    assert set(lora.cond) == set(cond_targets(d, s))
    last = f"single_transformer_blocks.{s - 1}."
    for a in ADAPTERS:
        for name, f in lora.adapter(a).items():
            if a == "cond" and name.startswith(last) and name.endswith(("to_q", "proj_mlp", "proj_out")):
                # the last block's outputs on condition rows are discarded: only its keys and values
                # (and the modulation feeding them) reach the image tokens and the loss
                assert f.up.abs().max() == 0, f"{a}:{name}"
            else:
                assert f.up.abs().max() > 0, f"{a}:{name} was not trained"
