"""The FLUX spec against diffusers' own FluxTransformer2DModel (the independent statement of the
architecture): default sizes, and the Linear modules of a double and a single block."""

import inspect

import pytest
import torch

from seg2any.attention.rules import isolation_layers
from seg2any.flux import spec

diffusers = pytest.importorskip("diffusers")


def test_sizes_are_diffusers_flux_defaults():
    p = inspect.signature(diffusers.FluxTransformer2DModel.__init__).parameters
    assert p["in_channels"].default == spec.PACKED_CHANNELS == 64
    assert p["patch_size"].default == 1  # diffusers takes tokens already packed 2x2 (spec.PATCH)
    assert p["num_layers"].default == spec.DOUBLE_BLOCKS
    assert p["num_single_layers"].default == spec.SINGLE_BLOCKS
    assert p["num_attention_heads"].default == spec.HEADS
    assert p["num_attention_heads"].default * p["attention_head_dim"].default == spec.HIDDEN
    assert p["joint_attention_dim"].default == spec.CONTEXT_DIM
    assert p["pooled_projection_dim"].default == spec.VEC_IN_DIM
    assert tuple(p["axes_dims_rope"].default) == spec.AXES_DIM
    assert spec.PIXELS_PER_TOKEN == 16 and spec.latent_shape(2, 1024, 768) == (2, 16, 128, 96)
    assert spec.token_grid(1024, 760) == (64, 47) and spec.image_tokens(1024, 768) == 3072


def test_isolation_range_is_the_auto_rule_at_flux_depth():
    assert isolation_layers("auto", spec.DOUBLE_BLOCKS, spec.SINGLE_BLOCKS) == spec.ISOLATION_BLOCKS == (19, 37)


def test_block_linears_are_the_models():
    model = diffusers.FluxTransformer2DModel(
        num_layers=1, num_single_layers=1, attention_head_dim=8, num_attention_heads=2,
        joint_attention_dim=16, pooled_projection_dim=8, axes_dims_rope=(2, 2, 4),
    )  # fmt: skip

    def linears(prefix):
        return {n[len(prefix) :] for n, m in model.named_modules() if n.startswith(prefix) and isinstance(m, torch.nn.Linear)}

    assert linears(f"{spec.DIFFUSERS_DOUBLE}.0.") == set(spec.DOUBLE_LINEARS)
    assert linears(f"{spec.DIFFUSERS_SINGLE}.0.") == set(spec.SINGLE_LINEARS)
    assert set(spec.COND_DOUBLE_LINEARS) < set(spec.DOUBLE_LINEARS)
    assert isinstance(model.get_submodule(spec.X_EMBEDDER[0]), torch.nn.Linear)
