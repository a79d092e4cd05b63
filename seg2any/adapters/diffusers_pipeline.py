"""Generation with diffusers/transformers models: the CLI, validation images and the experiment.

Loads either the shipped demo model (``seg2any/demo``) or a diffusers-format FLUX.1-dev folder
(transformer/, vae/, text_encoder/, text_encoder_2/, tokenizer/, tokenizer_2/) plus a Seg2Any
checkpoint, then samples a layout with the official schedule (FlowMatch Euler, FLUX dynamic
shift) through :class:`~seg2any.adapters.diffusers.Seg2AnyFlux`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from ..attention.kernels import resolve_backend
from ..conditioning.batching import condition_inputs, kernel_for, layer_rules, pad_text, plan_rows
from ..conditioning.condition_tokens import ConditionTokens, keep_mask_from_contour, pack_latents, unpack_latents
from ..conditioning.contour import entity_contour_map, generation_size
from ..conditioning.settings import EncodedText, Seg2AnyConditioning
from ..conditioning.t5_tokens import budget_report, enforce_budget, fit_to_length
from ..flux import spec
from ..flux.lora_format import Seg2AnyLora
from ..layout.layout import Layout
from ..sampling.noise import initial_noise
from ..sampling.schedule import official_sigmas
from ..sampling.trained_size import DEMO_RESOLUTION, Fit, fit_layout, scale_uint8
from .diffusers import Seg2AnyFlux, load_lora_into

DEMO_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "demo")
FLUX_SHIFT, FLUX_SCALE = 0.1159, 0.3611


@dataclass(eq=False)
class Models:
    """Everything generation needs. ``clip`` None means a zero pooled vector (the demo model)."""

    transformer: object
    vae: object
    t5: object
    t5_ids: object  # text -> token ids ending with </s>
    clip: object | None = None
    clip_tokenizer: object | None = None
    shift: float = FLUX_SHIFT
    scale: float = FLUX_SCALE
    guidance_default: float = 3.5
    trained_resolution: int | None = None  # set for a model that only works near one size (the demo)
    _text_cache: dict = field(default_factory=dict)

    @property
    def device(self):
        return next(self.transformer.parameters()).device

    @property
    def dtype(self):
        return next(self.transformer.parameters()).dtype

    def process_in(self, z):
        return (z - self.shift) * self.scale

    def process_out(self, z):
        return z / self.scale + self.shift

    # -- text -------------------------------------------------------------------------------
    @torch.no_grad()
    def t5_encode(self, text: str, max_len: int) -> torch.Tensor:
        """(n_real, D) features: padded to max_len, encoded without a mask, pads stripped."""
        key = (text, max_len)
        hit = self._text_cache.get(key)
        if hit is None:
            ids, n = fit_to_length(self.t5_ids(text), max_len)
            dev = next(self.t5.parameters()).device
            out = self.t5(input_ids=torch.tensor([ids], device=dev)).last_hidden_state[0, :n]
            hit = out.float().cpu()
            self._text_cache[key] = hit
        return hit

    @torch.no_grad()
    def pooled(self, text: str) -> torch.Tensor | None:
        if self.clip is None:
            return None
        tok = self.clip_tokenizer(text, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
        dev = next(self.clip.parameters()).device
        return self.clip(input_ids=tok.input_ids.to(dev)).pooler_output.float().cpu()

    def encode(self, global_prompt: str, entity_prompts: list[str], labels: list[str] | None = None) -> EncodedText:
        labels = labels or [f"entity {i + 1}" for i in range(len(entity_prompts))]
        enforce_budget(budget_report(lambda s: len(self.t5_ids(s)), global_prompt, entity_prompts, labels))
        return EncodedText.assemble(global_prompt, entity_prompts, self.t5_encode, self.pooled)

    # -- condition --------------------------------------------------------------------------
    @torch.no_grad()
    def condition(self, layout: Layout, scale: int, size: tuple[int, int] | None = None) -> ConditionTokens:
        h, w = size or generation_size(layout.height, layout.width, scale)
        contour = entity_contour_map(layout.masks, h, w, scale)
        x = torch.from_numpy(contour.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]
        vdev = next(self.vae.parameters()).device
        vdt = next(self.vae.parameters()).dtype
        z = self.vae.encode(x.to(vdev, vdt)).latent_dist.mean.float().cpu()
        return ConditionTokens(z, keep_mask_from_contour(contour), scale, (h, w))

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> list[np.ndarray]:
        vdev = next(self.vae.parameters()).device
        vdt = next(self.vae.parameters()).dtype
        img = self.vae.decode(self.process_out(z).to(vdev, vdt)).sample.float().cpu()
        img = ((img.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
        return list(img)


@torch.no_grad()
def generate(
    models: Models,
    layout: Layout,
    *,
    steps: int = 28,
    seed: int = 0,
    guidance: float | None = None,
    mode: str = "hard",
    alpha: float = 1.0,
    isolation: str = "auto",
    cond_scale_factor: int = 2,
    use_condition: bool = True,
    use_entities: bool = True,
    strengths: dict | None = None,
    batch: int = 1,
    backend: str = "auto",
    progress: bool = False,
    noise: str = "comfy",
) -> list[np.ndarray]:
    """Sample ``batch`` images of ``layout``; returns uint8 (H, W, 3) arrays.

    ``use_entities=False`` runs the global caption alone (no masks, no condition tokens);
    ``use_condition=False`` keeps the masks and drops the condition tokens. ``noise``: 'comfy'
    (one CPU generator for the batch, as ComfyUI) or 'official' (infer.py: image i from a
    generator on the model's device seeded with seed + i, in the model's dtype).
    """
    device, dtype = models.device, models.dtype
    h, w = generation_size(layout.height, layout.width, cond_scale_factor)
    lay = layout if use_entities else Layout(layout.global_prompt, (), layout.height, layout.width)
    enc = models.encode(lay.global_prompt, lay.prompts, [e.label for e in lay.entities])
    cond = models.condition(lay, cond_scale_factor, (h, w)) if (use_condition and use_entities) else None
    info = Seg2AnyConditioning(lay, enc.text_lens, cond, mode, isolation, alpha)
    net = Seg2AnyFlux(models.transformer, strengths)
    grid = spec.token_grid(h, w)
    be = resolve_backend(backend, device)
    infos = [info] * batch
    plan, trivial = plan_rows(infos, grid, be, reorder_ok=True)
    kernel = kernel_for(plan, trivial, be, device)
    rules = layer_rules(infos, net.dims.n_double, net.dims.n_single)
    tokens, ids = condition_inputs(infos, plan, net.dims.in_channels, device, dtype, models.process_in)
    text = pad_text([enc.cond[0].to(device)] * batch, plan.text_len).to(dtype)
    pooled = None if enc.pooled is None else enc.pooled.to(device, dtype).expand(batch, -1)
    perm = torch.stack([torch.from_numpy(p) for p in plan.perm]).to(device) if plan.reordered else None
    x = initial_noise(noise, seed, spec.latent_shape(batch, h, w), device, dtype)
    sig = official_sigmas(steps, grid[0] * grid[1]).to(device)
    gvec = torch.full((batch,), float(models.guidance_default if guidance is None else guidance), device=device)
    it = range(steps)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="sampling")
    for i in it:
        t = sig[i].expand(batch)
        v = net(pack_latents(x).to(dtype), t, text, pooled, gvec, grid, kernel, rules, tokens, ids, perm)
        x = x + (sig[i + 1] - sig[i]) * unpack_latents(v.float(), x.shape[-2], x.shape[-1])
    return models.decode(x)


def render(models: Models, layout: Layout, *, on_fit=None, **kwargs) -> tuple[list[np.ndarray], Fit | None]:
    """:func:`generate` at the model's trained resolution when it has one, scaled back to the
    layout's size; also returns the :class:`~seg2any.sampling.trained_size.Fit` (None: rendered as is).
    ``on_fit(fit)`` is called before sampling, so a user hears about the resize before waiting."""
    fit = fit_layout(layout, models.trained_resolution, "the demo model") if models.trained_resolution else None
    if fit is None:
        return generate(models, layout, **kwargs), None
    if on_fit is not None:
        on_fit(fit)
    return scale_uint8(generate(models, fit.layout, **kwargs), *fit.size), fit


# ----------------------------------------------------------------------------------------------
# loading


def _read(path: str, key: str):
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
        return {k: f.get_tensor(k) for k in f.keys()}, json.loads(meta[key])


def flux_config_from_params(fp: dict) -> dict:
    """diffusers FluxTransformer2DModel kwargs for BFL/ComfyUI FluxParams."""
    return {
        "patch_size": 1,
        "in_channels": fp["in_channels"] * 4,
        "num_layers": fp["depth"],
        "num_single_layers": fp["depth_single_blocks"],
        "attention_head_dim": fp["hidden_size"] // fp["num_heads"],
        "num_attention_heads": fp["num_heads"],
        "joint_attention_dim": fp["context_in_dim"],
        "pooled_projection_dim": fp["vec_in_dim"],
        "guidance_embeds": fp["guidance_embed"],
        "axes_dims_rope": tuple(fp["axes_dim"]),
    }


def load_demo(demo_dir: str = DEMO_DIR, lora: Seg2AnyLora | None = None, device="cpu") -> Models:
    """The shipped demo model in diffusers/transformers form (the same files ComfyUI loads)."""
    from diffusers import AutoencoderKL, FluxTransformer2DModel
    from transformers import T5Config, T5EncoderModel

    from ..conditioning.t5_tokens import T5Tokenizer
    from ..flux.keys import comfy_to_diffusers
    from ..flux.lora_format import load_checkpoint
    from .diffusers import flux_dims

    sd, fp = _read(os.path.join(demo_dir, "flux.safetensors"), "flux_params")
    transformer = FluxTransformer2DModel(**flux_config_from_params(fp))
    transformer.load_state_dict(comfy_to_diffusers(sd, flux_dims(transformer)), strict=True)
    lora = lora if lora is not None else load_checkpoint(os.path.join(demo_dir, "seg2any_demo_lora"))
    load_lora_into(transformer, lora)
    t5_sd, t5_cfg = _read(os.path.join(demo_dir, "t5.safetensors"), "t5_config")
    t5 = T5EncoderModel(T5Config(**t5_cfg))
    t5_sd = dict(t5_sd)
    t5_sd.setdefault("encoder.embed_tokens.weight", t5_sd["shared.weight"])
    t5.load_state_dict(t5_sd, strict=True)
    vae_sd, vcfg = _read(os.path.join(demo_dir, "vae.safetensors"), "vae_config")
    vae = AutoencoderKL(**vcfg["diffusers"])
    vae.load_state_dict(vae_sd, strict=True)
    tok = T5Tokenizer(os.path.join(demo_dir, "spiece.model"))
    return Models(
        transformer.to(device).eval(),
        vae.to(device).eval(),
        t5.to(device).eval(),
        tok.ids,
        guidance_default=1.0,
        trained_resolution=DEMO_RESOLUTION,
    )


def load_flux_dev_base(flux_dir: str, device="cuda", dtype=torch.bfloat16) -> Models:
    """FLUX.1-dev in diffusers layout (transformer/, vae/, text_encoder*/, tokenizer*/), no adapters."""
    from diffusers import FluxTransformer2DModel

    models = load_flux_dev_encoders(flux_dir, device, dtype)
    transformer = FluxTransformer2DModel.from_pretrained(flux_dir, subfolder="transformer", torch_dtype=dtype)
    models.transformer = transformer.to(device).eval()
    return models


def load_flux_dev_encoders(flux_dir: str, device="cuda", dtype=torch.bfloat16) -> Models:
    """FLUX.1-dev's frozen VAE, T5, CLIP and tokenizers without the 24 GB transformer (transformer None):
    what encoding training features needs."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextModel, CLIPTokenizer, T5EncoderModel, T5TokenizerFast

    vae = AutoencoderKL.from_pretrained(flux_dir, subfolder="vae", torch_dtype=torch.float32)
    t5 = T5EncoderModel.from_pretrained(flux_dir, subfolder="text_encoder_2", torch_dtype=dtype)
    t5_tok = T5TokenizerFast.from_pretrained(flux_dir, subfolder="tokenizer_2")
    clip = CLIPTextModel.from_pretrained(flux_dir, subfolder="text_encoder", torch_dtype=dtype)
    clip_tok = CLIPTokenizer.from_pretrained(flux_dir, subfolder="tokenizer")
    shift = getattr(vae.config, "shift_factor", None)
    scale = getattr(vae.config, "scaling_factor", None)

    def ids(text):
        return list(t5_tok(text)["input_ids"])

    return Models(
        None,
        vae.to(device).eval(),
        t5.to(device).eval(),
        ids,
        clip.to(device).eval(),
        clip_tok,
        FLUX_SHIFT if shift is None else float(shift),
        FLUX_SCALE if scale is None else float(scale),
        3.5,
    )


def load_flux_dev(flux_dir: str, lora_path: str, device="cuda", dtype=torch.bfloat16) -> Models:
    """FLUX.1-dev in diffusers layout + an official Seg2Any checkpoint."""
    from ..flux.lora_format import load_checkpoint, validate
    from .diffusers import flux_dims

    lora = load_checkpoint(lora_path)  # read (and refuse) before the big load
    models = load_flux_dev_base(flux_dir, device, dtype)
    validate(lora, flux_dims(models.transformer))
    load_lora_into(models.transformer, lora)
    models.transformer.to(device)
    return models
