"""FLUX.1's architecture, stated once: geometry, sizes, block and module names.

Every other module reads these names instead of spelling a number or a module path itself, so a
FLUX variant, or a module diffusers or ComfyUI renames, is one edit here. The sizes are FLUX.1-dev's
(BFL ``FluxParams``, diffusers ``FluxTransformer2DModel`` config). Smaller models of the same
architecture (the shipped demo, the test models) keep the geometry and the module names and report
their own depth and widths through :class:`~seg2any.flux.lora_format.ModelDims`.
"""

from __future__ import annotations

# ----------------------------------------------------------------------------------------------
# geometry: pixels -> VAE latent -> packed image tokens

VAE_FACTOR = 8  # pixels per latent cell along each side (the FLUX VAE downsamples 8x)
PATCH = 2  # latent cells per image token along each side (2x2 packing)
PIXELS_PER_TOKEN = VAE_FACTOR * PATCH  # 16: one image token covers a 16x16 pixel patch
LATENT_CHANNELS = 16
PACKED_CHANNELS = LATENT_CHANNELS * PATCH * PATCH  # 64: what x_embedder / img_in take per token


def token_grid(height: int, width: int) -> tuple[int, int]:
    """(rows, cols) of whole image tokens in a ``height x width`` pixel image (a remainder is cut)."""
    return height // PIXELS_PER_TOKEN, width // PIXELS_PER_TOKEN


def image_tokens(height: int, width: int) -> int:
    """How many image tokens a ``height x width`` image has (what the FLUX shift schedule reads)."""
    rows, cols = token_grid(height, width)
    return rows * cols


def latent_shape(batch: int, height: int, width: int) -> tuple[int, int, int, int]:
    """(B, C, h, w) of the VAE latent of ``batch`` images of ``height x width`` pixels."""
    return batch, LATENT_CHANNELS, height // VAE_FACTOR, width // VAE_FACTOR


# ----------------------------------------------------------------------------------------------
# FLUX.1-dev sizes

DOUBLE_BLOCKS = 19  # joint blocks with separate text and image weights
SINGLE_BLOCKS = 38  # joint blocks with shared weights; numbered after the double blocks (19..56)
HIDDEN = 3072
HEADS = 24
MLP_RATIO = 4.0
CONTEXT_DIM = 4096  # T5-XXL features
VEC_IN_DIM = 768  # CLIP-L pooled vector
AXES_DIM = (16, 56, 56)  # RoPE dims of the (index, row, column) position ids
ROPE_THETA = 10000
# The official attribute isolation: joint blocks 19..37, the first half of the single blocks
# (what :func:`seg2any.attention.rules.isolation_layers` gives for "auto" at this depth).
ISOLATION_BLOCKS = (19, 37)

# ----------------------------------------------------------------------------------------------
# module names: diffusers (what LoRA checkpoints and the trainer use) and BFL/ComfyUI

DIFFUSERS_DOUBLE = "transformer_blocks"
DIFFUSERS_SINGLE = "single_transformer_blocks"
COMFY_DOUBLE = "double_blocks"
COMFY_SINGLE = "single_blocks"
X_EMBEDDER = ("x_embedder", "img_in")  # (diffusers, ComfyUI) image-token input Linear

# Every Linear of a double block: diffusers name -> (ComfyUI module, slot). ComfyUI fuses q/k/v
# into one Linear; ``slot`` is the position of this module's rows in it (None: not fused).
DOUBLE_LINEARS: dict[str, tuple[str, int | None]] = {
    "norm1.linear": ("img_mod.lin", None),
    "norm1_context.linear": ("txt_mod.lin", None),
    "attn.to_q": ("img_attn.qkv", 0),
    "attn.to_k": ("img_attn.qkv", 1),
    "attn.to_v": ("img_attn.qkv", 2),
    "attn.add_q_proj": ("txt_attn.qkv", 0),
    "attn.add_k_proj": ("txt_attn.qkv", 1),
    "attn.add_v_proj": ("txt_attn.qkv", 2),
    "attn.to_out.0": ("img_attn.proj", None),
    "attn.to_add_out": ("txt_attn.proj", None),
    "ff.net.0.proj": ("img_mlp.0", None),
    "ff.net.2": ("img_mlp.2", None),
    "ff_context.net.0.proj": ("txt_mlp.0", None),
    "ff_context.net.2": ("txt_mlp.2", None),
}
# Every Linear of a single block; ComfyUI fuses q/k/v and the MLP input into ``linear1``.
SINGLE_LINEARS: dict[str, tuple[str, int | None]] = {
    "norm.linear": ("modulation.lin", None),
    "proj_mlp": ("linear1", 3),
    "proj_out": ("linear2", None),
    "attn.to_q": ("linear1", 0),
    "attn.to_k": ("linear1", 1),
    "attn.to_v": ("linear1", 2),
}
# The double-block Linears condition tokens pass through (the image branch); in single blocks they
# pass through every Linear. These are the official ``cond`` adapter's targets (plus x_embedder).
COND_DOUBLE_LINEARS = ("norm1.linear", "attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0", "ff.net.0.proj", "ff.net.2")
