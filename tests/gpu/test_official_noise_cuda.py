"""GPU tier: --noise official draws on CUDA exactly what infer.py's pipeline draws (diffusers'
randn_tensor from CUDA generators seeded with seed + i, bf16, then _pack_latents), bit for bit."""

from __future__ import annotations

import pytest
import torch

from seg2any.conditioning.condition_tokens import pack_latents
from seg2any.sampling.noise import initial_noise, official_noise
from tests.core.test_noise import official_reference

SHAPE = (2, 16, 128, 96)  # two images of a 1024x768 layout


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_official_noise_on_cuda_is_bit_identical_to_the_official_pipeline(dtype):
    ours = pack_latents(official_noise(1234, SHAPE, "cuda", dtype))
    assert ours.device.type == "cuda"
    assert torch.equal(ours, official_reference(1234, SHAPE, "cuda", dtype))
    wide = initial_noise("official", 1234, SHAPE, "cuda", dtype)  # what the sampler starts from
    assert wide.dtype == torch.float32 and torch.equal(wide.to(dtype), official_noise(1234, SHAPE, "cuda", dtype))
    # and it is not the CPU draw: the official seeds give other images than a CPU generator
    assert not torch.equal(official_noise(1234, SHAPE, "cpu", dtype), official_noise(1234, SHAPE, "cuda", dtype).cpu())
