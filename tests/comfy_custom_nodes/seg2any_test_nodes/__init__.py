"""Test-only nodes (never shipped): tiny random FLUX, T5 text encoder and VAE built with ComfyUI's
own classes, swapped into the example graphs in place of the stock loaders."""

import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from seg2any.adapters.comfyui_demo import demo_clip  # noqa: E402
from seg2any.adapters.comfyui_models import build_flux, build_vae, flux_params  # noqa: E402
from tests.support.tiny_flux import TINY, checkpoint_shapes, random_flux_sd  # noqa: E402
from tests.support.tiny_models import TINY_VAE, tiny_t5_config, tiny_t5_state_dict, tiny_vae_state_dict  # noqa: E402


class TinyFlux:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0})}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "load"
    CATEGORY = "Seg2Any/test"

    def load(self, seed):
        p = flux_params(**TINY)
        shapes = checkpoint_shapes(build_flux(p))
        return (build_flux(p, random_flux_sd(shapes, seed=seed)),)


class TinyClip:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0})}}

    RETURN_TYPES = ("CLIP",)
    FUNCTION = "load"
    CATEGORY = "Seg2Any/test"

    def load(self, seed):
        cfg = tiny_t5_config(TINY["context_in_dim"])
        return (demo_clip(tiny_t5_state_dict(cfg, seed), cfg),)


class TinyVae:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0})}}

    RETURN_TYPES = ("VAE",)
    FUNCTION = "load"
    CATEGORY = "Seg2Any/test"

    def load(self, seed):
        return (build_vae(tiny_vae_state_dict(seed), TINY_VAE, 16),)


class WideClip(TinyClip):
    """A tiny T5 whose features are projected to 4096 wide, for FLUX models that need T5-XXL width."""

    def load(self, seed):
        (clip,) = TinyClip.load(self, seed)
        proj = torch.randn(TINY["context_in_dim"], 4096, generator=torch.Generator().manual_seed(seed)) / 6.0
        inner = clip.cond_stage_model
        original = inner.encode_token_weights

        def encode(token_weight_pairs):
            out, pooled = original(token_weight_pairs)[:2]
            return out @ proj.to(out), pooled

        inner.encode_token_weights = encode
        return (clip,)


NODE_CLASS_MAPPINGS = {
    "Seg2AnyTestTinyFlux": TinyFlux,
    "Seg2AnyTestTinyClip": TinyClip,
    "Seg2AnyTestWideClip": WideClip,
    "Seg2AnyTestTinyVae": TinyVae,
}
