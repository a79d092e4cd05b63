"""Small FLUX-architecture model, T5 and VAE configurations for the experiment and the demo.

Same classes as FLUX.1-dev (diffusers FluxTransformer2DModel, T5EncoderModel, AutoencoderKL),
just narrow and shallow, so everything trained here loads through the real code paths in
ComfyUI and the CLI.
"""

from __future__ import annotations

import json
import os

import torch
from safetensors.torch import save_file

# BFL/ComfyUI FluxParams of the small model (hidden 128 = 2 heads x 64; 2 double + 4 single blocks)
TINY_FLUX = {
    "in_channels": 16,
    "out_channels": 16,
    "vec_in_dim": 16,
    "context_in_dim": 32,
    "hidden_size": 128,
    "mlp_ratio": 4.0,
    "num_heads": 2,
    "depth": 2,
    "depth_single_blocks": 4,
    "axes_dim": [8, 28, 28],
    "theta": 10000,
    "patch_size": 2,
    "qkv_bias": True,
    "guidance_embed": False,
    "txt_ids_dims": [],
}

TINY_T5 = {
    "d_ff": 64,
    "d_kv": 16,
    "d_model": 32,
    "dense_act_fn": "gelu_pytorch_tanh",
    "is_gated_act": True,
    "layer_norm_epsilon": 1e-6,
    "model_type": "t5",
    "num_heads": 2,
    "num_layers": 2,
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "vocab_size": 32128,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "decoder_start_token_id": 0,
}

TINY_VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [32, 64, 64, 64],
    "layers_per_block": 2,
    "latent_channels": 16,
    "norm_num_groups": 32,
    "sample_size": 128,
}
# the same network in the LDM/ComfyUI configuration vocabulary
TINY_VAE_LDM = {
    "double_z": True,
    "z_channels": 16,
    "resolution": 128,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 32,
    "ch_mult": [1, 2, 2, 2],
    "num_res_blocks": 2,
    "attn_resolutions": [],
    "dropout": 0.0,
}


def new_transformer(params: dict = TINY_FLUX, seed: int = 0):
    from diffusers import FluxTransformer2DModel

    from seg2any.adapters.diffusers_pipeline import flux_config_from_params

    torch.manual_seed(seed)
    return FluxTransformer2DModel(**flux_config_from_params(params))


def new_t5(seed: int = 0):
    """A frozen random T5 encoder: token identity and order are all the small model needs."""
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    return T5EncoderModel(T5Config(**TINY_T5)).eval().requires_grad_(False)


def new_vae(seed: int = 0):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(**TINY_VAE)


def save_flux(transformer, path: str, params: dict = TINY_FLUX) -> None:
    """BFL/ComfyUI key names, FluxParams in the metadata (what the demo loaders read)."""
    from seg2any.adapters.diffusers import flux_dims
    from seg2any.flux.keys import diffusers_to_comfy

    base = getattr(transformer, "get_base_model", lambda: transformer)()
    sd = {k: v for k, v in base.state_dict().items() if "lora_" not in k}
    sd = {k.replace(".base_layer.", "."): v for k, v in sd.items()}
    comfy = diffusers_to_comfy(sd, flux_dims(transformer))
    save_file(
        {k: v.detach().contiguous().to(torch.float16) for k, v in comfy.items()},
        path,
        metadata={"flux_params": json.dumps(params)},
    )


def save_t5(t5, path: str) -> None:
    sd = {k: v.detach().contiguous().to(torch.float16) for k, v in t5.state_dict().items() if k != "encoder.embed_tokens.weight"}
    save_file(sd, path, metadata={"t5_config": json.dumps(TINY_T5)})


def save_vae(vae, path: str) -> None:
    sd = {k: v.detach().contiguous().float() for k, v in vae.state_dict().items()}
    meta = {"vae_config": json.dumps({"diffusers": TINY_VAE, "ddconfig": TINY_VAE_LDM, "embed_dim": 16})}
    save_file(sd, path, metadata=meta)


def load_flux(path: str):
    from safetensors import safe_open

    from seg2any.adapters.diffusers import flux_dims
    from seg2any.flux.keys import comfy_to_diffusers

    with safe_open(path, framework="pt") as f:
        params = json.loads(f.metadata()["flux_params"])
        sd = {k: f.get_tensor(k).float() for k in f.keys()}
    t = new_transformer(params)
    t.load_state_dict(comfy_to_diffusers(sd, flux_dims(t)), strict=True)
    return t, params


def load_vae(path: str):
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        sd = {k: f.get_tensor(k) for k in f.keys()}
    vae = new_vae()
    vae.load_state_dict(sd, strict=True)
    return vae


def load_t5(path: str):
    from safetensors import safe_open

    t5 = new_t5()
    with safe_open(path, framework="pt") as f:
        sd = {k: f.get_tensor(k).float() for k in f.keys()}
    sd["encoder.embed_tokens.weight"] = sd["shared.weight"]
    t5.load_state_dict(sd, strict=True)
    return t5


def frozen_encoders(a, device, dtype=torch.float32):
    """The frozen VAE, T5 (+ CLIP) and tokenizer that training features come from, as a ``Models``
    without a transformer: FLUX.1-dev's when ``--base`` is a diffusers folder, else the small ones
    (``--vae``, ``--t5`` or a random T5 seeded with ``--seed``)."""
    from seg2any.adapters.diffusers_pipeline import Models
    from seg2any.conditioning.t5_tokens import T5Tokenizer

    if a.base and os.path.isdir(a.base):
        from seg2any.adapters.diffusers_pipeline import load_flux_dev_encoders

        models = load_flux_dev_encoders(a.base, device, dtype)
    else:
        vae = load_vae(a.vae).to(device).eval()
        t5 = (load_t5(a.t5) if a.t5 else new_t5(a.seed)).to(device).eval()
        models = Models(None, vae, t5, T5Tokenizer(spiece_path()).ids)
    for m in (models.vae, models.t5, models.clip):
        if m is not None:
            m.requires_grad_(False)
    return models


def spiece_path() -> str:
    """The T5 v1.1 SentencePiece model (Apache-2.0) shipped with the demo."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "seg2any", "demo", "spiece.model")
