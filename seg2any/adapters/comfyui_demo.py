"""The shipped demo model as ComfyUI objects (MODEL, CLIP, VAE), built with ComfyUI's own classes.

The demo is a small FLUX-architecture model trained here on synthetic shapes, with a small T5
encoder (the real T5 tokenizer; no pooled CLIP vector, FLUX then sees zeros there) and a small
AutoencoderKL. Files (see ``seg2any/demo/README.md``): ``flux.safetensors``, ``t5.safetensors``,
``vae.safetensors``, each with its configuration in the safetensors metadata.

The demo was trained at one small size and draws noise far from it, so its MODEL and VAE declare
that size (:func:`trained_resolution`); the rule that follows from it (render the layout there,
refuse a latent far from it) lives here, and models that declare nothing (FLUX) never meet it.
"""

from __future__ import annotations

import json
import os

import comfy.sd
import comfy.sd1_clip
import comfy.text_encoders.sd3_clip
import comfy.text_encoders.t5
import torch
from safetensors import safe_open

from ..conditioning.settings import EncodedLayout
from ..errors import ModelMismatchError
from ..sampling.trained_size import DEMO_RESOLUTION, Fit, fit_layout, trained_size
from .comfyui_models import build_flux, build_vae, flux_params

# Where a MODEL / VAE says it only works near one resolution: a model_options key (copied by every
# ModelPatcher clone, so it survives Load Seg2Any LoRA) and an attribute of the VAE object.
TRAINED_RESOLUTION = "seg2any_trained_resolution"


def trained_resolution(obj) -> int | None:
    """The resolution a MODEL (ModelPatcher), CLIP or VAE of a model declares it was trained at; None for FLUX."""
    opts = getattr(obj, "model_options", None)
    if isinstance(opts, dict) and opts.get(TRAINED_RESOLUTION):
        return int(opts[TRAINED_RESOLUTION])
    value = getattr(obj, TRAINED_RESOLUTION, None)
    return int(value) if value else None


def fitted(layout: EncodedLayout, model_or_vae) -> tuple[EncodedLayout, Fit | None]:
    """The layout as a model that declares a trained resolution (the demo) renders it: resized
    there; unchanged for FLUX. The contour encoder and the sampler both call this, so they agree."""
    res = trained_resolution(model_or_vae)
    fit = fit_layout(layout.layout, res, "this model") if res else None
    if fit is None:
        return layout, None
    return EncodedLayout(fit.layout, layout.positive, layout.negative, layout.budget), fit


def check_trained_size(resolution: int | None, h: int, w: int) -> None:
    """A model trained at one size (the demo: variance explained ~0.01 at 512 px) draws noise far
    from it: a stock KSampler with a latent of the layout's size must say so rather than draw it."""
    if not resolution or resolution * resolution / 2 <= h * w <= 2 * resolution * resolution:
        return
    th, tw = trained_size(h, w, resolution)
    raise ModelMismatchError(
        f"this model was trained at {resolution}x{resolution} px and draws only noise far from that size, but the "
        f"latent is {w}x{h} px: use an Empty Latent Image of {tw}x{th} (the same aspect at the trained size), or the "
        "Seg2Any Masked FLUX Sampler, which renders any layout at the trained size; 'Scale Image to Layout' after VAE "
        "Decode brings the image back to the layout's size"
    )


def read_with_config(path: str, key: str) -> tuple[dict, dict]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"demo model file missing: {path}")
    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
        sd = {k: f.get_tensor(k) for k in f.keys()}
    if key not in meta:
        raise ValueError(f"{path} has no '{key}' configuration in its metadata")
    return sd, json.loads(meta[key])


def demo_clip(t5_sd: dict, t5_config: dict):
    """A ComfyUI CLIP whose only encoder is the small T5 (tokenised with ComfyUI's T5 tokenizer)."""

    class DemoT5(comfy.sd1_clip.SDClipModel):
        def __init__(self, device="cpu", layer="last", layer_idx=None, dtype=None, model_options={}):
            super().__init__(
                device=device,
                layer=layer,
                layer_idx=layer_idx,
                textmodel_json_config=dict(t5_config),
                dtype=dtype,
                special_tokens={"end": 1, "pad": 0},
                model_class=comfy.text_encoders.t5.T5,
                enable_attention_masks=False,
                zero_out_masked=False,
                model_options=model_options,
            )

    class DemoClipModel(comfy.sd1_clip.SD1ClipModel):
        def __init__(self, device="cpu", dtype=None, model_options={}, **kwargs):
            super().__init__(
                device=device, dtype=dtype, model_options=model_options, clip_name="t5xxl", clip_model=DemoT5, **kwargs
            )

    class DemoTokenizer(comfy.sd1_clip.SD1Tokenizer):
        def __init__(self, embedding_directory=None, tokenizer_data={}):
            super().__init__(
                embedding_directory=embedding_directory,
                tokenizer_data=tokenizer_data,
                clip_name="t5xxl",
                tokenizer=comfy.text_encoders.sd3_clip.T5XXLTokenizer,
            )

    class Target:
        params = {}
        clip = DemoClipModel
        tokenizer = DemoTokenizer

    clip = comfy.sd.CLIP(Target(), parameters=sum(t.numel() for t in t5_sd.values()), model_options={"dtype": torch.float32})
    missing, unexpected = clip.load_sd(t5_sd)
    if unexpected or [m for m in missing if not m.endswith("logit_scale")]:
        raise ValueError(f"demo T5 weights do not fit: missing {missing[:4]}, unexpected {unexpected[:4]}")
    return clip


def load_demo(demo_dir: str):
    """(MODEL, CLIP, VAE) of the demo model in ``demo_dir``."""
    flux_sd, fp = read_with_config(os.path.join(demo_dir, "flux.safetensors"), "flux_params")
    model = build_flux(flux_params(**fp), flux_sd, dtype=torch.float32)
    t5_sd, t5_cfg = read_with_config(os.path.join(demo_dir, "t5.safetensors"), "t5_config")
    clip = demo_clip(t5_sd, t5_cfg)
    vae_sd, vcfg = read_with_config(os.path.join(demo_dir, "vae.safetensors"), "vae_config")
    vae = build_vae(vae_sd, vcfg["ddconfig"], int(vcfg["embed_dim"]))
    model.model_options[TRAINED_RESOLUTION] = DEMO_RESOLUTION
    setattr(vae, TRAINED_RESOLUTION, DEMO_RESOLUTION)
    setattr(clip, TRAINED_RESOLUTION, DEMO_RESOLUTION)  # the builder checks the layout at the size the run renders
    return model, clip, vae
