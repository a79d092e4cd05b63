"""A FLUX.1-dev folder in diffusers layout, tiny and random, for the loaders of the CLI and trainer.

Same classes, file names and configs as the real download (transformer/, vae/, text_encoder/ (CLIP),
text_encoder_2/ (T5), tokenizer/, tokenizer_2/, model_index.json); the tokenizers are ComfyUI's own
copies of the CLIP-L and T5 tokenizers, so token ids are the real ones.
"""

from __future__ import annotations

import json
import os
import shutil

import torch

from training.models import TINY_FLUX, TINY_VAE, new_t5, new_transformer

CLIP_HIDDEN = 32
FLUX_DEV_LIKE = dict(TINY_FLUX, guidance_embed=True, vec_in_dim=CLIP_HIDDEN, depth=1, depth_single_blocks=1)


def write_fake_flux_dev(root: str, comfyui_path: str, seed: int = 0) -> dict:
    """Writes the folder; returns the BFL/ComfyUI FluxParams of its transformer."""
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    t = new_transformer(FLUX_DEV_LIKE, seed)
    with torch.no_grad():  # diffusers zero-inits some output layers; make every weight matter
        for p in t.parameters():
            p.add_(0.02 * torch.randn_like(p))
    t.save_pretrained(os.path.join(root, "transformer"))
    from diffusers import AutoencoderKL

    # FLUX.1-dev's VAE config carries its latent shift/scale; the loader must read them from there
    AutoencoderKL(**dict(TINY_VAE, shift_factor=0.1159, scaling_factor=0.3611)).save_pretrained(os.path.join(root, "vae"))
    new_t5(seed).save_pretrained(os.path.join(root, "text_encoder_2"))
    clip = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=CLIP_HIDDEN,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=77,
            eos_token_id=49407,
        )
    )
    clip.save_pretrained(os.path.join(root, "text_encoder"))
    shutil.copytree(os.path.join(comfyui_path, "comfy", "sd1_tokenizer"), os.path.join(root, "tokenizer"))
    shutil.copytree(os.path.join(comfyui_path, "comfy", "text_encoders", "t5_tokenizer"), os.path.join(root, "tokenizer_2"))
    with open(os.path.join(root, "model_index.json"), "w") as f:
        json.dump({"_class_name": "FluxPipeline", "_diffusers_version": "0.32.0"}, f)
    return FLUX_DEV_LIKE
