"""The trainer's exported LoRA through the node's loader: adapters trained on the demo model load
into ComfyUI's Flux with every key used and hold the adapters as trained (the trainer's own state
file is the reference)."""

from __future__ import annotations

import json
import os

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("peft")
pytest.importorskip("accelerate")

from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from seg2any.adapters.comfyui import apply_seg2any, cond_deltas, default_patches, flux_dims  # noqa: E402
from seg2any.adapters.comfyui_models import build_flux, flux_params  # noqa: E402
from seg2any.flux.lora_format import load_checkpoint  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "seg2any", "demo")


def test_trained_adapters_load_through_the_node_loader(tmp_path):
    from training.train import main as train_main

    ckpt = train_main(
        ["--stage", "seg2any", "--dataset", "synthetic", "--synthetic-size", "4", "--resolution", "64", "--batch-size", "2",
         "--rank", "4", "--lr", "1e-3", "--steps", "2", "--save-every", "2", "--val-every", "1000", "--val-steps", "1",
         "--report-to", "none", "--base", os.path.join(DEMO, "flux.safetensors"), "--vae", os.path.join(DEMO, "vae.safetensors"),
         "--t5", os.path.join(DEMO, "t5.safetensors"), "--out", str(tmp_path / "run")]
    )  # fmt: skip
    with safe_open(os.path.join(DEMO, "flux.safetensors"), framework="pt") as f:
        params = json.loads(f.metadata()["flux_params"])
        sd = {k: f.get_tensor(k).float() for k in f.keys()}
    base = build_flux(flux_params(**params), sd)  # the running ComfyUI's FluxParams fields, as load_demo reads them
    lora = load_checkpoint(ckpt)
    dims = flux_dims(base.model.diffusion_model)
    assert len(default_patches(base, lora, dims)) == len(lora.default)
    assert {dims.comfy_target(n)[0] for n in lora.cond} == set(cond_deltas(lora, dims, 1.0, 1.0))
    apply_seg2any(base, lora)  # validates against the model and installs

    # the node's factors are the trainer's files tensor for tensor (read here raw, by key), and those
    # files are the trained state itself (what --resume continues from exactly: test_trainer_checkpoints)
    for a in ("default", "cond"):
        raw = load_file(os.path.join(ckpt, a, "pytorch_lora_weights.safetensors"))
        assert len(raw) == 2 * len(lora.adapter(a))
        for name, fac in lora.adapter(a).items():
            assert torch.equal(fac.down.float(), raw[f"transformer.{name}.lora_A.weight"].float()), name
            assert torch.equal((fac.up * fac.scale).float(), raw[f"transformer.{name}.lora_B.weight"].float()), name
        # trained, not freshly initialised: peft starts every up-projection at zero
        assert sum(int(bool(f.up.abs().max() > 0)) for f in lora.adapter(a).values()) > len(lora.adapter(a)) // 2, a
