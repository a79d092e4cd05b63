"""Import the real ComfyUI in-process, CPU only, before any test module touches it."""

from __future__ import annotations

import os
import sys

from tests.conftest import COMFYUI_PATH, HAVE_COMFY

if HAVE_COMFY:
    if COMFYUI_PATH not in sys.path:
        sys.path.insert(0, COMFYUI_PATH)
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    import comfy.cli_args  # noqa: E402

    comfy.cli_args.args.cpu = True
    comfy.cli_args.args.use_pytorch_cross_attention = True
    import comfy.model_management  # noqa: E402,F401
else:

    def pytest_ignore_collect(collection_path, config):
        """Nothing here imports without ComfyUI: collect only test_tier_status.py, which reports the
        skip loudly (or fails in CI)."""
        return collection_path.name.startswith("test_") and collection_path.name != "test_tier_status.py"


if HAVE_COMFY:
    import numpy as np
    import pytest
    import torch

    from seg2any.adapters.comfyui_models import build_flux, flux_params
    from seg2any.attention.rules import isolation_layers
    from seg2any.conditioning.condition_tokens import ConditionTokens, keep_mask_from_contour
    from seg2any.conditioning.contour import entity_contour_map
    from seg2any.conditioning.settings import Seg2AnyConditioning
    from seg2any.layout.layout import layout_from_masks
    from tests.support.reference_forward import RefSample
    from tests.support.tiny_flux import TINY, checkpoint_shapes, random_flux_sd

    @pytest.fixture(scope="session")
    def tiny():
        """(params, comfy state dict) of a tiny random FLUX built from ComfyUI's own classes."""
        p = flux_params(**TINY)
        shapes = checkpoint_shapes(build_flux(p))
        return p, random_flux_sd(shapes, seed=0)

    def make_info(
        seed: int,
        size=(128, 96),
        n_entities=3,
        mode="hard",
        alpha=1.0,
        scale=2,
        with_cond=True,
        global_len=5,
        overlap=True,
        dtype=torch.float32,
        context_dim=32,
    ):
        """A random layout (rectangles, optionally overlapping), its text features and condition."""
        rng = np.random.default_rng(seed)
        h, w = size
        masks = np.zeros((n_entities, h, w), bool)
        for i in range(n_entities):
            y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
            masks[i, y0 : y0 + rng.integers(h // 4, h // 2 + 1), x0 : x0 + rng.integers(w // 4, w // 2 + 1)] = True
        if not overlap and n_entities:
            owner = np.argmax(masks * (1 + np.arange(n_entities))[:, None, None], axis=0)
            masks = masks & (owner[None] == np.arange(n_entities)[:, None, None])
        lay = layout_from_masks("g", list(masks), [f"e{i}" for i in range(n_entities)], image_size=size)
        text_lens = (global_len,) + tuple(int(rng.integers(1, 5)) for _ in range(n_entities))
        g = torch.Generator().manual_seed(seed)
        context = torch.randn(1, sum(text_lens), context_dim, generator=g, dtype=dtype)
        cond = None
        if with_cond:
            keep = keep_mask_from_contour(entity_contour_map(masks, h, w, scale))
            latent = torch.randn(1, 16, h // 8 // scale, w // 8 // scale, generator=g, dtype=dtype)
            cond = ConditionTokens(latent, keep, scale, size)
        info = Seg2AnyConditioning(lay, text_lens, cond, mode=mode, alpha=alpha)
        return info, context

    def ref_sample(info, context, y, process_in, n_double=2, n_single=2):
        c = info.condition
        return RefSample(
            context=context[0] if context.ndim == 3 else context,
            text_lens=list(info.text_lens),
            masks=info.layout.masks,
            y=y,
            cond_tokens=None if c is None else c.tokens(process_in).double(),
            cond_ids=None if c is None else c.positions(),
            mode=info.mode,
            alpha=info.alpha,
            hard_range=isolation_layers(info.isolation, n_double, n_single) if info.mode == "hard" else None,
        )

    @pytest.fixture
    def info_factory():
        return make_info

    @pytest.fixture
    def ref_sample_factory():
        return ref_sample

    @pytest.fixture(autouse=True)
    def float64_capable_rope(monkeypatch):
        """Newer ComfyUI applies RoPE through comfy-kitchen, whose kernels take no float64. Our
        float64 reference checks run the stock blocks in float64, so for float64 inputs only we use
        the formula ComfyUI itself falls back to without comfy-kitchen (same float32 rotation);
        every other dtype still goes through comfy-kitchen."""
        import comfy.ldm.flux.math as flux_math

        stock = flux_math.apply_rope

        def rope1(x, freqs_cis):
            x_ = x.to(dtype=freqs_cis.dtype).reshape(*x.shape[:-1], -1, 1, 2)
            out = freqs_cis[..., 0] * x_[..., 0] + freqs_cis[..., 1] * x_[..., 1]
            return out.reshape(*x.shape).type_as(x)

        def apply_rope(xq, xk, freqs_cis):
            if xq.dtype == torch.float64:
                return rope1(xq, freqs_cis), rope1(xk, freqs_cis)
            return stock(xq, xk, freqs_cis)

        monkeypatch.setattr(flux_math, "apply_rope", apply_rope)
