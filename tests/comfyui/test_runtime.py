"""The Seg2Any forward on ComfyUI's real FLUX classes, against an independent float64 reference."""

import comfy.ldm.flux.model
import numpy as np
import pytest
import torch

from seg2any.adapters.comfyui import COND_KEY, Seg2AnyBatch, apply_seg2any, flux_vec
from seg2any.adapters.comfyui_models import build_flux
from seg2any.conditioning.settings import Seg2AnyConditioning
from seg2any.errors import ModelMismatchError
from seg2any.flux.lora_format import LoraFactor, Seg2AnyLora
from seg2any.layout.layout import layout_from_masks
from tests.support.comfy_run import direct
from tests.support.reference_forward import Reference
from tests.support.tiny_flux import comfy_to_diffusers, random_lora


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def inputs(batch, size, dtype, seed=0, context_dim=32):
    g = torch.Generator().manual_seed(100 + seed)
    x = torch.randn(batch, 16, size[0] // 8, size[1] // 8, generator=g, dtype=dtype)
    y = torch.randn(batch, 16, generator=g, dtype=dtype)
    t = torch.rand(batch, generator=g, dtype=dtype) * 0.9 + 0.05
    guidance = torch.full((batch,), 3.5, dtype=dtype)
    return x, y, t, guidance


def zero_b(lora: Seg2AnyLora) -> Seg2AnyLora:
    z = {k: LoraFactor(f.down, f.up * 0, f.scale) for k, f in lora.default.items()}
    return Seg2AnyLora(z, {k: LoraFactor(f.down, f.up * 0, f.scale) for k, f in lora.cond.items()})


# ----------------------------------------------------------------------------------------------
# drift guards: these fail as soon as a ComfyUI update changes what our hooks rely on


def test_patched_model_equals_stock_without_entities_or_condition(tiny):
    """No entities, no condition tokens, adapters at PEFT init (B = 0): max abs diff 0 in float32."""
    p, sd = tiny
    base = build_flux(p, sd, dtype=torch.float32)
    x, y, t, g = inputs(2, (128, 96), torch.float32)
    lay = layout_from_masks("g", [], [], image_size=(128, 96))
    info = Seg2AnyConditioning(lay, (11,), None)
    ctx = torch.randn(2, 11, 32)
    stock = direct(base, x, t, ctx, y, g)
    for lora in (None, zero_b(random_lora(p))):
        patched = apply_seg2any(base, lora, backend="sdpa")
        out = direct(patched, x, t, ctx, y, g, [info])
        assert (out - stock).abs().max().item() == 0.0
    assert torch.equal(direct(base, x, t, ctx, y, g), stock)


def test_modulation_vector_matches_stock(tiny):
    """flux_vec must reproduce the vec forward_orig hands to its blocks (we evaluate it at t = 0)."""
    p, sd = tiny
    base = build_flux(p, sd, dtype=torch.float32)
    x, y, t, g = inputs(2, (64, 64), torch.float32)
    seen = {}

    def spy(args, extra):
        seen["vec"] = args["vec"]
        return extra["original_block"](args)

    opts = {"patches_replace": {"dit": {("double_block", 0): spy}}}
    direct(base, x, t, torch.randn(2, 4, 32), y, g, extra_options=opts)
    flux = base.model.diffusion_model
    assert torch.equal(flux_vec(flux, t, g, y, torch.float32), seen["vec"])


def test_hooked_block_signatures_exist():
    """The keyword arguments we pass to stock blocks must still exist."""
    import inspect

    from comfy.ldm.flux.layers import DoubleStreamBlock, SingleStreamBlock

    d = inspect.signature(DoubleStreamBlock.forward).parameters
    s = inspect.signature(SingleStreamBlock.forward).parameters
    assert {"modulation_dims_img", "modulation_dims_txt", "attn_mask", "transformer_options"} <= set(d)
    assert {"modulation_dims", "attn_mask", "transformer_options"} <= set(s)
    assert "post_input" in inspect.getsource(comfy.ldm.flux.model.Flux.forward_orig)


# ----------------------------------------------------------------------------------------------
# the whole forward against the float64 reference


CASES = [
    dict(mode="hard", alpha=1.0, n_entities=3, overlap=True),
    dict(mode="hard", alpha=0.5, n_entities=4, overlap=False, scale=1),
    dict(mode="base", alpha=0.8, n_entities=2, overlap=True),
    dict(mode="place", alpha=1.0, n_entities=3, overlap=True),
    dict(mode="hard", alpha=1.0, n_entities=2, with_cond=False),
    dict(mode="hard", alpha=1.0, n_entities=0, global_len=7),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c['mode']}-a{c['alpha']}-n{c['n_entities']}" for c in CASES])
def test_float64_equals_reference(tiny, info_factory, ref_sample_factory, case):
    p, sd = tiny
    base = build_flux(p, sd, dtype=torch.float64)
    lora = random_lora(p)
    patched = apply_seg2any(base, lora, 1.0, 0.8, backend="sdpa")
    size = (128, 96)
    info, ctx = info_factory(7, size=size, dtype=torch.float64, **case)
    x, y, t, g = inputs(1, size, torch.float64)
    out = direct(patched, x, t, ctx, y, g, [info])
    ref = Reference(comfy_to_diffusers(sd, p), p, lora, 1.0, 0.8)
    r = ref.forward(x[0], t.item(), g.item(), ref_sample_factory(info, ctx, y[0], base.model.latent_format.process_in))
    assert rel(out[0], r) < 1e-5


def test_batch_of_two_layouts_equals_each_alone(tiny, info_factory, ref_sample_factory):
    """Different text and condition lengths in one call: padding must not change any row."""
    p, sd = tiny
    base = build_flux(p, sd, dtype=torch.float64)
    lora = random_lora(p)
    patched = apply_seg2any(base, lora, backend="sdpa")
    size = (96, 128)
    a, ca = info_factory(1, size=size, n_entities=3, dtype=torch.float64)
    b, cb = info_factory(2, size=size, n_entities=2, global_len=9, dtype=torch.float64)
    assert a.n_text != b.n_text and a.condition.count != b.condition.count
    x, y, t, g = inputs(2, size, torch.float64)
    ctx = torch.zeros(2, max(a.n_text, b.n_text), 32, dtype=torch.float64)
    ctx[0, : a.n_text], ctx[1, : b.n_text] = ca[0], cb[0]
    # ComfyUI repeats shorter text up to the LCM; emulate that for the batched call
    import math

    lcm = math.lcm(a.n_text, b.n_text)
    ctx_lcm = torch.cat([ca.repeat(1, lcm // a.n_text, 1), cb.repeat(1, lcm // b.n_text, 1)])
    out = direct(patched, x, t, ctx_lcm, y, g, [a, b])
    ref = Reference(comfy_to_diffusers(sd, p), p, lora)
    pi = base.model.latent_format.process_in
    for r, (info, c) in enumerate([(a, ca), (b, cb)]):
        want = ref.forward(x[r], t[r].item(), g[r].item(), ref_sample_factory(info, c, y[r], pi))
        assert rel(out[r], want) < 1e-5


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_adds_no_error_beyond_stock_flux(tiny, info_factory, ref_sample_factory, dtype):
    """Half precision is judged against the float64 reference on the same rounded weights, next
    to stock ComfyUI FLUX in the same precision: bf16 activations alone cost ~6e-3 relative
    error on this model, so Seg2Any must stay within 1.5x of what stock FLUX gets."""
    p, sd = tiny
    sdh = {k: v.to(dtype) for k, v in sd.items()}
    base = build_flux(p, sdh, dtype=dtype)
    lora = random_lora(p)
    lora_h = Seg2AnyLora(
        {k: LoraFactor(f.down.to(dtype), f.up.to(dtype)) for k, f in lora.default.items()},
        {k: LoraFactor(f.down.to(dtype), f.up.to(dtype)) for k, f in lora.cond.items()},
    )
    patched = apply_seg2any(base, lora_h, backend="sdpa")
    size = (128, 96)
    info, ctx = info_factory(3, size=size)
    x, y, t, g = inputs(1, size, torch.float32)
    xh, ch, yh = x.to(dtype), ctx.to(dtype), y.to(dtype)
    ref = Reference(comfy_to_diffusers({k: v.double() for k, v in sdh.items()}, p), p, lora_h)
    s = ref_sample_factory(info, ch.double(), yh[0].double(), base.model.latent_format.process_in)
    s.cond_tokens = s.cond_tokens.to(dtype).double()
    err = rel(direct(patched, xh, t, ch, yh, g, [info])[0], ref.forward(xh[0].double(), t.item(), g.item(), s))

    plain = Reference(comfy_to_diffusers({k: v.double() for k, v in sdh.items()}, p), p, None)
    s0 = ref_sample_factory(
        Seg2AnyConditioning(layout_from_masks("g", [], [], image_size=size), (ctx.shape[1],)), ch.double(), yh[0].double(), None
    )
    stock_err = rel(direct(base, xh, t, ch, yh, g)[0], plain.forward(xh[0].double(), t.item(), g.item(), s0))
    print(f"{dtype}: seg2any rel err {err:.2e}, stock FLUX rel err {stock_err:.2e}")
    assert err < 1.5 * stock_err + 1e-4
    assert err < (1e-2 if dtype == torch.bfloat16 else 2e-3)


# ----------------------------------------------------------------------------------------------
# LoRA routing


def test_cond_adapter_is_inert_without_condition_tokens(tiny, info_factory):
    p, sd = tiny
    base = build_flux(p, sd, dtype=torch.float32)
    lora = random_lora(p, seed=1)
    other = random_lora(p, seed=9)
    swapped = Seg2AnyLora(lora.default, other.cond)
    size = (64, 64)
    info, ctx = info_factory(4, size=size, with_cond=False)
    x, y, t, g = inputs(1, size, torch.float32)
    a = direct(apply_seg2any(base, lora, backend="sdpa"), x, t, ctx, y, g, [info])
    b = direct(apply_seg2any(base, swapped, backend="sdpa"), x, t, ctx, y, g, [info])
    assert torch.equal(a, b)
    info_c, _ = info_factory(4, size=size, with_cond=True)
    a = direct(apply_seg2any(base, lora, backend="sdpa"), x, t, ctx, y, g, [info_c])
    b = direct(apply_seg2any(base, swapped, backend="sdpa"), x, t, ctx, y, g, [info_c])
    assert not torch.allclose(a, b)


def test_base_model_unchanged_after_patched_clone(tiny, info_factory):
    p, sd = tiny
    base = build_flux(p, sd, dtype=torch.float32)
    size = (64, 64)
    info, ctx = info_factory(5, size=size)
    x, y, t, g = inputs(1, size, torch.float32)
    before = direct(base, x, t, ctx, y, g)
    patched = apply_seg2any(base, random_lora(p), backend="sdpa")
    assert not torch.equal(direct(patched, x, t, ctx, y, g, [info]), before)
    del patched
    assert torch.equal(direct(base, x, t, ctx, y, g), before)
    assert all(len(m._forward_hooks) == 0 for m in base.model.diffusion_model.modules())


# ----------------------------------------------------------------------------------------------
# clear refusals


def test_wrong_latent_size_is_refused(tiny, info_factory):
    p, sd = tiny
    base = build_flux(p, sd, dtype=torch.float32)
    info, ctx = info_factory(6, size=(64, 64))
    x, y, t, g = inputs(1, (96, 64), torch.float32)
    with pytest.raises(ModelMismatchError, match="latent is 64x96 px but the Seg2Any condition was made for 64x64"):
        direct(apply_seg2any(base, None), x, t, ctx, y, g, [info])


def test_modified_text_is_refused(tiny, info_factory):
    p, sd = tiny
    base = build_flux(p, sd, dtype=torch.float32)
    info, ctx = info_factory(6, size=(64, 64))
    x, y, t, g = inputs(1, (64, 64), torch.float32)
    longer = torch.cat([ctx, torch.randn(1, 3, 32)], dim=1)
    with pytest.raises(ModelMismatchError, match="text tokens but its Seg2Any layout accounts for"):
        direct(apply_seg2any(base, None), x, t, longer, y, g, [info])


def test_double_application_is_refused(tiny):
    p, sd = tiny
    base = build_flux(p, sd, dtype=torch.float32)
    with pytest.raises(ModelMismatchError, match="already has a Seg2Any LoRA"):
        apply_seg2any(apply_seg2any(base, None), None)


def test_batch_transport_concatenates_layouts(info_factory):
    from seg2any.adapters.comfyui import Seg2AnyCond

    a, _ = info_factory(1, size=(64, 64))
    b, _ = info_factory(2, size=(64, 64))
    ca, cb = Seg2AnyCond(a), Seg2AnyCond(b)
    assert ca.can_concat(cb)
    batch = ca.concat([cb])
    assert isinstance(batch, Seg2AnyBatch) and batch.infos == [a, b]
    assert COND_KEY == "seg2any"
    assert np.array_equal(a.layout.masks, ca.process_cond(batch_size=4).cond.layout.masks)


@pytest.mark.parametrize("mode", ["hard", "place"])
def test_flex_backend_with_entity_reordering_equals_sdpa(tiny, info_factory, mode):
    """FlexAttention reorders image tokens so each entity is contiguous and restores the order
    before the final layer; on CPU the eager FlexAttention runs the same rules."""
    from seg2any.attention.kernels import flex_available

    if not flex_available():
        pytest.skip("no FlexAttention in this torch")
    p, sd = tiny
    base = build_flux(p, sd, dtype=torch.float32)
    lora = random_lora(p)
    size = (128, 96)
    a, ca = info_factory(21, size=size, n_entities=4, mode=mode, alpha=0.7)
    b, cb = info_factory(22, size=size, n_entities=2, mode=mode, alpha=0.7)
    import math

    lcm = math.lcm(a.n_text, b.n_text)
    ctx = torch.cat([ca.repeat(1, lcm // a.n_text, 1), cb.repeat(1, lcm // b.n_text, 1)])
    x, y, t, g = inputs(2, size, torch.float32)
    s = direct(apply_seg2any(base, lora, backend="sdpa"), x, t, ctx, y, g, [a, b])
    f = direct(apply_seg2any(base, lora, backend="flex"), x, t, ctx, y, g, [a, b])
    assert rel(f, s) < 1e-5
