"""Initial noise: the official option draws what diffusers' FluxPipeline draws for infer.py
(per-image generators seeded with seed + i, then 2x2 packing), checked against diffusers' own
``randn_tensor`` and ``_pack_latents``; ComfyUI's noise keeps one generator for the batch."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from seg2any.conditioning.condition_tokens import pack_latents
from seg2any.sampling.noise import comfy_noise, initial_noise, official_noise

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHAPE = (3, 16, 8, 12)  # three images of a 64x96 latent


def official_reference(seed, shape, device, dtype):
    """What the official pipeline holds after prepare_latents: diffusers draws from the list of
    generators infer.py's seeds give, then packs."""
    pytest.importorskip("diffusers")
    from diffusers.pipelines.flux.pipeline_flux import FluxPipeline
    from diffusers.utils.torch_utils import randn_tensor

    gens = [torch.Generator(device).manual_seed(seed + i) for i in range(shape[0])]
    z = randn_tensor(shape, generator=gens, device=torch.device(device), dtype=dtype)
    return FluxPipeline._pack_latents(z, *shape)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_official_noise_is_what_the_official_pipeline_draws_on_the_cpu(dtype):
    ours = pack_latents(official_noise(7, SHAPE, "cpu", dtype))
    assert ours.dtype == dtype
    assert torch.equal(ours, official_reference(7, SHAPE, "cpu", dtype))
    # float32 for our sampler: an exact widening of the drawn values
    wide = initial_noise("official", 7, SHAPE, "cpu", dtype)
    assert wide.dtype == torch.float32 and torch.equal(wide.to(dtype), official_noise(7, SHAPE, "cpu", dtype))


def test_official_image_i_is_a_batch_one_draw_with_seed_plus_i_and_comfy_is_not():
    off = official_noise(5, SHAPE, "cpu", torch.float32)
    for i in range(SHAPE[0]):
        assert torch.equal(off[i : i + 1], official_noise(5 + i, (1, *SHAPE[1:]), "cpu", torch.float32))
    assert not torch.equal(off[0], off[1])
    com = comfy_noise(5, SHAPE)
    assert torch.equal(com[0], off[0])  # both start with generator seed 5 ...
    assert not torch.equal(com[1], off[1])  # ... but ComfyUI continues the same stream
    assert torch.equal(com, initial_noise("comfy", 5, SHAPE, "cpu", torch.bfloat16))
    with pytest.raises(ValueError, match="noise must be one of"):
        initial_noise("gpu", 5, SHAPE, "cpu", torch.float32)


def test_official_noise_batch_images_are_the_seed_plus_i_images():
    """generate(noise='official', batch=2): image 1 is the image of a batch-1 run with seed + 1."""
    pytest.importorskip("diffusers")
    import json

    from PIL import Image

    from seg2any.adapters.diffusers_pipeline import generate, load_demo
    from seg2any.layout.layout import layout_from_segmentation

    stem = os.path.join(ROOT, "example_workflows", "layouts", "demo_shapes")
    with open(stem + ".json") as f:
        layout = layout_from_segmentation(np.array(Image.open(stem + ".png")), json.load(f))
    models = load_demo()
    b0, b1 = (
        x.astype(np.int16) for x in generate(models, layout, steps=6, seed=40, batch=2, noise="official", cond_scale_factor=1)
    )
    (one,) = generate(models, layout, steps=6, seed=41, noise="official", cond_scale_factor=1)
    assert np.abs(b0 - b1).mean() > 5  # the two images of the batch differ
    # the same noise and layout; batching may change float rounding, not the picture
    d = np.abs(b1 - one.astype(np.int16))
    assert d.mean() < 0.5 and d.max() <= 8, (d.mean(), d.max())
