"""The smallest FLUX ComfyUI's stock UNETLoader accepts (3072 wide, 24 heads, one double and one
single block, random weights), saved as bf16 and as ComfyUI's scaled fp8, plus a random FLUX VAE
(ae.safetensors): the real loading paths with the Seg2Any patch on top."""

from __future__ import annotations

import math
import os

import comfy.sd
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from seg2any.adapters.comfyui import apply_seg2any
from seg2any.adapters.comfyui_models import build_flux, flux_params
from seg2any.flux.lora_format import Seg2AnyLora, write_checkpoint
from tests.conftest import COMFYUI_PATH
from tests.support.comfy_run import direct
from tests.support.server import ComfyServer, clean
from tests.support.tiny_flux import checkpoint_shapes, random_lora
from tests.support.workflows import sampler_settings

WIDE = dict(depth=1, depth_single_blocks=1)


def _random(shape, g):
    fan_in = shape[1] if len(shape) > 1 else 1
    return torch.randn(shape, generator=g) / math.sqrt(fan_in)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("wide-flux"))
    p = flux_params(**WIDE)
    shapes = checkpoint_shapes(build_flux(p, dtype=torch.bfloat16))
    g = torch.Generator().manual_seed(0)
    bf16, fp8 = {}, {}
    for k, shape in shapes.items():
        if k.endswith(".scale"):
            t = 1.0 + 0.1 * torch.randn(shape, generator=g)
        elif k.endswith(".bias"):
            t = 0.02 * torch.randn(shape, generator=g)
        else:
            t = _random(shape, g)
        bf16[k] = t.to(torch.bfloat16)
        if t.ndim == 2:
            scale = t.abs().max() / 448.0
            fp8[k] = (t / scale).to(torch.float8_e4m3fn)
            fp8[k[: -len(".weight")] + ".scale_weight"] = scale.float().reshape(1)
        else:
            fp8[k] = t.to(torch.bfloat16)
    fp8["scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    dm = os.path.join(base, "models", "diffusion_models")
    os.makedirs(dm)
    save_file(bf16, os.path.join(dm, "flux1-dev.safetensors"))
    save_file(fp8, os.path.join(dm, "flux1-dev-scaled-fp8.safetensors"))
    # the FLUX VAE architecture, random weights, with the keys ComfyUI detects as a FLUX ae
    from comfy.ldm.models.autoencoder import AutoencodingEngine

    ddconfig = {
        "double_z": True,
        "z_channels": 16,
        "resolution": 256,
        "in_channels": 3,
        "out_ch": 3,
        "ch": 128,
        "ch_mult": [1, 2, 4, 4],
        "num_res_blocks": 2,
        "attn_resolutions": [],
        "dropout": 0.0,
    }
    ae = AutoencodingEngine(
        regularizer_config={"target": "comfy.ldm.models.autoencoder.DiagonalGaussianRegularizer"},
        encoder_config={"target": "comfy.ldm.modules.diffusionmodules.model.Encoder", "params": ddconfig},
        decoder_config={"target": "comfy.ldm.modules.diffusionmodules.model.Decoder", "params": ddconfig},
    )
    vae_sd = {
        k: (_random(v.shape, g) if v.ndim > 1 else 0.02 * torch.randn(v.shape, generator=g)).to(torch.float16)
        for k, v in ae.state_dict().items()
    }
    for k in vae_sd:
        if "norm" in k and k.endswith("weight"):
            vae_sd[k] = torch.ones_like(vae_sd[k])
    os.makedirs(os.path.join(base, "models", "vae"))
    save_file(vae_sd, os.path.join(base, "models", "vae", "ae.safetensors"))
    lora = random_lora(dict(p, in_channels=16), rank=4, scale_b=0.02)
    write_checkpoint(os.path.join(base, "models", "seg2any", "wide_lora"), lora)
    yield {"base": base, "params": p, "bf16": bf16, "fp8": fp8, "lora": lora}
    clean(base)


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(1, 16, 8, 8, generator=g),
        torch.tensor([0.6]),
        torch.randn(1, 9, 4096, generator=g),
        torch.randn(1, 768, generator=g),
        torch.tensor([3.5]),
    )


def _info(size=(64, 64)):
    from seg2any.conditioning.condition_tokens import ConditionTokens, keep_mask_from_contour
    from seg2any.conditioning.contour import entity_contour_map
    from seg2any.conditioning.settings import Seg2AnyConditioning
    from seg2any.layout.layout import layout_from_masks

    m = np.zeros((2, *size), bool)
    m[0, 8:40, 8:56] = True
    m[1, 36:60, 20:44] = True
    lay = layout_from_masks("g", list(m), ["a", "b"])
    keep = keep_mask_from_contour(entity_contour_map(m, *size, 1))
    cond = ConditionTokens(
        torch.randn(1, 16, size[0] // 8, size[1] // 8, generator=torch.Generator().manual_seed(3)), keep, 1, size
    )
    return Seg2AnyConditioning(lay, (5, 2, 2), cond)


def test_scaled_fp8_weights_keep_seg2any_exact_up_to_fp8_rounding(files):
    """Seg2Any on scaled-fp8 weights loaded by ComfyUI's own loader: no more deviation from the
    bf16 model than stock FLUX shows, and the cond adapter still routes."""
    with torch.inference_mode():  # as ComfyUI's executor loads models
        m16 = comfy.sd.load_diffusion_model_state_dict(dict(files["bf16"]))
        m8 = comfy.sd.load_diffusion_model_state_dict(dict(files["fp8"]))
    w = m8.model.diffusion_model.double_blocks[0].img_attn.qkv.weight
    # stored as fp8: a plain float8 tensor (ComfyUI 0.3) or a QuantizedTensor with an fp8 layout (0.8)
    assert w.dtype == torch.float8_e4m3fn or "FP8" in repr(w)
    x, t, ctx, y, g = _inputs()
    info = _info()
    rel = lambda a, b: ((a.float() - b.float()).norm() / b.float().norm()).item()  # noqa: E731
    stock = rel(direct(m8, x, t, ctx, y, g), direct(m16, x, t, ctx, y, g))
    lora = files["lora"]
    s16 = direct(apply_seg2any(m16, lora, backend="sdpa"), x, t, ctx, y, g, [info])
    s8 = direct(apply_seg2any(m8, lora, backend="sdpa"), x, t, ctx, y, g, [info])
    ours = rel(s8, s16)
    assert ours < 1.5 * stock + 1e-3, (ours, stock)
    other = random_lora(dict(files["params"], in_channels=16), rank=4, seed=5, scale_b=0.02)
    swapped = direct(apply_seg2any(m8, Seg2AnyLora(lora.default, other.cond), backend="sdpa"), x, t, ctx, y, g, [info])
    assert rel(swapped, s8) > 1e-3  # the cond adapter acts on the condition tokens of the fp8 model


def seg2any_graph(loader: dict, prefix: str) -> dict:
    """The user's graph on the wide model: ``loader`` -> Load Seg2Any LoRA -> Regional Prompt Builder
    -> Entity Contour Encoder -> Masked FLUX Sampler (batch 2, true CFG) -> VAE Decode -> Save Image."""
    return {
        "1": loader,
        "2": {"class_type": "Seg2AnyTestWideClip", "inputs": {"seed": 0}},
        "3": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
        "4": {
            "class_type": "Seg2AnyLoadLoRA",
            "inputs": {
                "model": ["1", 0],
                "checkpoint": "wide_lora/",
                "strength_default": 1.0,
                "strength_cond": 1.0,
                "attention": "auto",
            },
        },
        "m": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 64, "height": 64}},
        "e": {"class_type": "Seg2AnyEntity", "inputs": {"mask": ["m", 0], "prompt": "a red square"}},
        "5": {
            "class_type": "Seg2AnyRegionalPromptBuilder",
            "inputs": {"clip": ["2", 0], "global_prompt": "a test", "entities": ["e", 0]},
        },
        "6": {
            "class_type": "Seg2AnyEntityContourEncoder",
            "inputs": {"vae": ["3", 0], "layout": ["5", 0], "cond_scale_factor": 1},
        },
        "7": {
            "class_type": "Seg2AnyMaskedFluxSampler",
            "inputs": {
                "model": ["4", 0],
                "layout": ["5", 0],
                "condition": ["6", 0],
                **sampler_settings(0, 1, 3.5, cfg=2.0),
                "batch_size": 2,
            },
        },
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["3", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": prefix}},
    }


@pytest.mark.parametrize("unet", ["flux1-dev.safetensors", "flux1-dev-scaled-fp8.safetensors"])
def test_stock_loaders_run_a_seg2any_graph(files, unet):
    server = ComfyServer(COMFYUI_PATH, files["base"]).start()
    try:
        graph = seg2any_graph({"class_type": "UNETLoader", "inputs": {"unet_name": unet, "weight_dtype": "default"}}, "wide")
        result = server.run(graph, timeout=1200)
        assert result["status"] == "success", (result["errors"], server.tail())
        imgs = [server.output_path(i) for o in result["outputs"].values() for i in o.get("images", [])]
        assert len(imgs) == 2  # batch of two, true CFG with the layout's negative
        for p in imgs:
            with Image.open(p) as im:
                assert im.size == (64, 64)
    finally:
        server.stop()
