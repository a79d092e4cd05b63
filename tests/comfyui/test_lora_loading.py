"""Seg2Any checkpoints written the official way (PEFT adapters on a diffusers FLUX, saved through
``save_lora_weights``) load with every key used, and coexist with ordinary ComfyUI LoRAs."""

import os

import comfy.sd
import pytest
import torch

from seg2any.adapters.comfyui import apply_seg2any, cond_deltas, default_patches, flux_dims
from seg2any.adapters.comfyui_models import build_flux
from seg2any.adapters.diffusers_pipeline import flux_config_from_params
from seg2any.errors import LoraFormatError
from seg2any.flux.lora_format import FILE_NAME, cond_targets, default_targets, load_checkpoint
from tests.support.comfy_run import direct
from tests.support.reference_forward import Reference
from tests.support.tiny_flux import comfy_to_diffusers, random_lora

diffusers = pytest.importorskip("diffusers")
peft = pytest.importorskip("peft")


def official_checkpoint(tmp_path, p, rank=4):
    """What the official trainer's save hook writes, produced with the same libraries."""
    from diffusers import FluxPipeline, FluxTransformer2DModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(0)
    m = FluxTransformer2DModel(**flux_config_from_params(p))
    nd, ns = p["depth"], p["depth_single_blocks"]
    for name, targets in (("default", default_targets(nd, ns)), ("cond", cond_targets(nd, ns))):
        cfg = LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False, target_modules=targets)
        m.add_adapter(cfg, adapter_name=name)
    ck = tmp_path / "checkpoint-20000"
    for name in ("default", "cond"):
        sd = get_peft_model_state_dict(m, adapter_name=name)
        FluxPipeline.save_lora_weights(str(ck / name), transformer_lora_layers=sd)
    return str(ck)


def test_peft_saved_checkpoint_loads_with_every_key_used(tmp_path, tiny):
    p, sd = tiny
    ck = official_checkpoint(tmp_path, p)
    assert os.path.exists(os.path.join(ck, "default", FILE_NAME))
    lora = load_checkpoint(ck)
    nd, ns = p["depth"], p["depth_single_blocks"]
    assert set(lora.default) == set(default_targets(nd, ns))
    assert set(lora.cond) == set(cond_targets(nd, ns))
    base = build_flux(p, sd)
    dims = flux_dims(base.model.diffusion_model)
    patches = default_patches(base, lora, dims)
    assert len(patches) == len(lora.default)
    deltas = cond_deltas(lora, dims, 1.0, 1.0)
    covered = {dims.comfy_target(n)[0] for n in lora.cond}
    assert covered == set(deltas)
    apply_seg2any(base, lora)  # validates and installs without complaint


def test_checkpoint_for_another_model_is_refused(tmp_path, tiny):
    p, sd = tiny
    bigger = dict(p, depth=3)
    ck = official_checkpoint(tmp_path, bigger)
    with pytest.raises(LoraFormatError, match="transformer_blocks.2"):
        apply_seg2any(build_flux(p, sd), load_checkpoint(ck))


@pytest.mark.parametrize("order", ["ordinary-first", "seg2any-first"])
def test_ordinary_lora_applies_to_every_token(tiny, info_factory, ref_sample_factory, order):
    """An ordinary ComfyUI LoRA is merged into the weights for all tokens, on either side of the
    Seg2Any patch; the reference sees base weights + that delta."""
    p, sd = tiny
    g = torch.Generator().manual_seed(4)
    h = p["hidden_size"]
    deltas = {
        "double_blocks.0.img_attn.qkv": (
            torch.randn(2, h, generator=g, dtype=torch.float64),
            torch.randn(3 * h, 2, generator=g, dtype=torch.float64) * 0.1,
        ),
        "single_blocks.1.linear1": (
            torch.randn(2, h, generator=g, dtype=torch.float64),
            torch.randn(7 * h, 2, generator=g, dtype=torch.float64) * 0.1,
        ),
    }
    ordinary = {}
    for k, (down, up) in deltas.items():
        key = "lora_unet_" + k.replace(".", "_")
        ordinary[f"{key}.lora_down.weight"] = down
        ordinary[f"{key}.lora_up.weight"] = up
    base = build_flux(p, sd, dtype=torch.float64)
    lora = random_lora(p)
    if order == "ordinary-first":
        m, _ = comfy.sd.load_lora_for_models(base, None, ordinary, 0.7, 0)
        m = apply_seg2any(m, lora, backend="sdpa")
    else:
        m, _ = comfy.sd.load_lora_for_models(apply_seg2any(base, lora, backend="sdpa"), None, ordinary, 0.7, 0)
    size = (64, 64)
    info, ctx = info_factory(31, size=size, dtype=torch.float64)
    x = torch.randn(1, 16, 8, 8, generator=g, dtype=torch.float64)
    y = torch.randn(1, 16, generator=g, dtype=torch.float64)
    out = direct(m, x, torch.tensor([0.3]), ctx, y, torch.tensor([3.5]), [info])
    merged = dict(sd)
    for k, (down, up) in deltas.items():
        merged[k + ".weight"] = sd[k + ".weight"].double() + 0.7 * up @ down
    ref = Reference(comfy_to_diffusers(merged, p), p, lora)
    want = ref.forward(x[0], 0.3, 3.5, ref_sample_factory(info, ctx, y[0], base.model.latent_format.process_in))
    assert ((out[0] - want).norm() / want.norm()).item() < 1e-5
