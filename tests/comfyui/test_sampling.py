"""Through ComfyUI's real sampling code: cond/uncond batching with unequal text lengths (LCM
repetition), batch > 1, true CFG with a Seg2Any negative, interrupts, ControlNet residuals and
other block patches."""

import comfy.model_management
import comfy.patcher_extension
import pytest
import torch

from seg2any.adapters.comfyui import apply_seg2any, attach
from seg2any.adapters.comfyui_models import build_flux
from seg2any.conditioning.settings import Seg2AnyConditioning
from tests.support.comfy_run import denoise, direct
from tests.support.reference_forward import Reference
from tests.support.tiny_flux import comfy_to_diffusers, random_lora


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def conditioning(info, ctx, y):
    return attach([[ctx, {"pooled_output": y, "guidance": 3.5}]], lambda i, t: info)


@pytest.mark.parametrize(
    "pos_lens, neg_lens, calls_expected", [((6, 2, 2, 2), (3, 3, 3, 3), [4]), ((7, 2, 2, 2), (3, 2, 2, 2), [2, 2])]
)
def test_true_cfg_batch_of_two_matches_reference(tiny, info_factory, ref_sample_factory, pos_lens, neg_lens, calls_expected):
    """Equal text lengths with different caption spans batch cond and uncond into one call (the
    masks then differ per row); unequal lengths run separately (FLUX text is a CONDRegular in
    ComfyUI; the LCM-repetition path is covered in test_runtime). Both must equal the reference."""
    p, sd = tiny
    base = build_flux(p, sd, dtype=torch.float32)
    lora = random_lora(p)
    patched = apply_seg2any(base, lora, backend="sdpa")
    size = (128, 96)
    drawn, _ = info_factory(11, size=size, n_entities=3)
    pos = Seg2AnyConditioning(drawn.layout, pos_lens, drawn.condition)
    # the official negative: same masks and condition, the negative prompt in every region
    neg = Seg2AnyConditioning(pos.layout, neg_lens, pos.condition, pos.mode, pos.isolation, pos.alpha)
    g = torch.Generator().manual_seed(5)
    ctx_p = torch.randn(1, sum(pos_lens), 32, generator=g)
    ctx_n = torch.randn(1, sum(neg_lens), 32, generator=g)
    y_p, y_n = torch.randn(1, 16, generator=g), torch.randn(1, 16, generator=g)

    calls = []

    def count(executor, x, *args, **kwargs):
        calls.append(x.shape[0])
        return executor(x, *args, **kwargs)

    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test-count", count)
    x = torch.randn(2, 16, size[0] // 8, size[1] // 8, generator=g)
    sigma, cfg = 0.7, 3.0
    out = denoise(patched, x, sigma, conditioning(pos, ctx_p, y_p), conditioning(neg, ctx_n, y_n), cfg=cfg)
    assert calls == calls_expected

    ref = Reference(comfy_to_diffusers(sd, p), p, lora)
    pi = base.model.latent_format.process_in
    for b in range(2):
        v_c = ref.forward(x[b], sigma, 3.5, ref_sample_factory(pos, ctx_p, y_p[0], pi))
        v_u = ref.forward(x[b], sigma, 3.5, ref_sample_factory(neg, ctx_n, y_n[0], pi))
        d_c, d_u = x[b].double() - sigma * v_c, x[b].double() - sigma * v_u
        want = d_u + cfg * (d_c - d_u)
        assert rel(out[b], want) < 2e-5


def test_plain_negative_runs_as_plain_flux_with_a_warning(tiny, info_factory, caplog):
    p, sd = tiny
    base = build_flux(p, sd, dtype=torch.float32)
    patched = apply_seg2any(base, random_lora(p), backend="sdpa")
    info, ctx = info_factory(12, size=(64, 64))
    x = torch.randn(1, 16, 8, 8)
    plain_neg = [[torch.randn(1, 5, 32), {"pooled_output": torch.randn(1, 16), "guidance": 3.5}]]
    with caplog.at_level("WARNING", logger="seg2any"):
        out = denoise(patched, x, 0.5, conditioning(info, ctx, torch.randn(1, 16)), plain_neg, cfg=2.0)
    assert torch.isfinite(out).all()
    assert any("negative conditioning has no Seg2Any layout" in r.message for r in caplog.records)


def test_interrupt_leaves_nothing_behind(tiny, info_factory):
    p, sd = tiny
    base = build_flux(p, sd, dtype=torch.float32)
    patched = apply_seg2any(base, random_lora(p), backend="sdpa")
    info, ctx = info_factory(13, size=(64, 64))
    x = torch.randn(1, 16, 8, 8)
    before = direct(base, x, torch.tensor([0.5]), ctx, torch.randn(1, 16), torch.tensor([3.5]))

    def interrupt(executor, *args, **kwargs):
        comfy.model_management.interrupt_current_processing(True)
        comfy.model_management.throw_exception_if_processing_interrupted()

    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test-interrupt", interrupt)
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        denoise(patched, x, 0.5, conditioning(info, ctx, torch.randn(1, 16)))
    comfy.model_management.interrupt_current_processing(False)
    flux = base.model.diffusion_model
    assert all(len(m._forward_hooks) == 0 for m in flux.modules())
    patch = patched.get_wrappers(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, "seg2any")[0].__self__
    assert not patch._kernels and not patch._deltas_dev
    again = direct(base, x, torch.tensor([0.5]), ctx, torch.randn(1, 16), torch.tensor([3.5]))
    assert again.shape == before.shape


def test_controlnet_residuals_reach_the_image_tokens(tiny, info_factory, ref_sample_factory):
    """ControlNet adds residuals to image tokens after each block; condition tokens sit after
    them, so the stock control path keeps working (tested against the reference)."""
    p, sd = tiny
    base = build_flux(p, sd, dtype=torch.float64)
    lora = random_lora(p)
    patched = apply_seg2any(base, lora, backend="sdpa")
    size = (64, 64)
    info, ctx = info_factory(14, size=size, dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 16, 8, 8, generator=g, dtype=torch.float64)
    y = torch.randn(1, 16, generator=g, dtype=torch.float64)
    n_img = 16
    control = {
        "input": [0.1 * torch.randn(1, n_img, 64, generator=g, dtype=torch.float64) for _ in range(2)],
        "output": [0.1 * torch.randn(1, n_img, 64, generator=g, dtype=torch.float64) for _ in range(2)],
    }
    out = direct(patched, x, torch.tensor([0.4]), ctx, y, torch.tensor([3.5]), [info], control=control)

    class ControlReference(Reference):
        def double(self, i, img, txt, cond, *a):
            img, txt, cond = super().double(i, img, txt, cond, *a)
            return img + control["input"][i][0], txt, cond

        def single(self, i, x_all, cond, *a):
            x_all, cond = super().single(i, x_all, cond, *a)
            t = x_all.shape[0] - n_img
            return torch.cat([x_all[:t], x_all[t:] + control["output"][i][0]]), cond

    ref = ControlReference(comfy_to_diffusers(sd, p), p, lora)
    want = ref.forward(x[0], 0.4, 3.5, ref_sample_factory(info, ctx, y[0], base.model.latent_format.process_in))
    assert rel(out[0], want) < 1e-5


def test_other_block_patches_are_chained(tiny, info_factory):
    p, sd = tiny
    base = build_flux(p, sd, dtype=torch.float32)
    patched = apply_seg2any(base, random_lora(p), backend="sdpa")
    info, ctx = info_factory(15, size=(64, 64))
    x, y = torch.randn(1, 16, 8, 8), torch.randn(1, 16)
    t, gd = torch.tensor([0.5]), torch.tensor([3.5])
    plain = direct(patched, x, t, ctx, y, gd, [info])
    seen = []

    def passthrough(args, extra):
        seen.append(args["img"].shape[1])
        return extra["original_block"](args)

    dit = {(kind, i): passthrough for kind in ("double_block", "single_block") for i in range(2)}
    chained = direct(patched, x, t, ctx, y, gd, [info], extra_options={"patches_replace": {"dit": dit}})
    assert len(seen) == 4
    assert torch.equal(chained, plain)
