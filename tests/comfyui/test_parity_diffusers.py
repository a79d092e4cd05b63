"""The diffusers adapter (training, CLI) and the ComfyUI adapter compute the same Seg2Any forward:
one tiny random FLUX in diffusers form and the same weights in ComfyUI form, the same LoRA,
layouts and condition tokens."""

import pytest
import torch

from seg2any.adapters.comfyui import apply_seg2any
from seg2any.adapters.comfyui_models import build_flux
from seg2any.adapters.diffusers import Seg2AnyFlux, add_seg2any_adapters, load_lora_into, lora_from_peft
from seg2any.adapters.diffusers_pipeline import flux_config_from_params
from seg2any.conditioning.batching import condition_inputs, kernel_for, layer_rules, pad_text, plan_rows
from seg2any.conditioning.condition_tokens import pack_latents, unpack_latents
from tests.support.comfy_run import direct
from tests.support.tiny_flux import comfy_to_diffusers, random_lora

diffusers = pytest.importorskip("diffusers")


def diffusers_flux(p, sd):
    from diffusers import FluxTransformer2DModel

    m = FluxTransformer2DModel(**flux_config_from_params(p))
    missing, unexpected = m.load_state_dict(comfy_to_diffusers(sd, p), strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    return m.eval()


def run_diffusers(model, infos, contexts, x, t, y, g, process_in, strengths=None, backend="sdpa"):
    grid = (x.shape[-2] // 2, x.shape[-1] // 2)
    dims = Seg2AnyFlux(model).dims
    plan, trivial = plan_rows(infos, grid, backend, reorder_ok=True)
    kernel = kernel_for(plan, trivial, backend, x.device)
    rules = layer_rules(infos, dims.n_double, dims.n_single)
    tokens, ids = condition_inputs(infos, plan, dims.in_channels, x.device, x.dtype, process_in)
    text = pad_text(contexts, plan.text_len)
    perm = torch.stack([torch.from_numpy(q) for q in plan.perm]) if plan.reordered else None
    with torch.no_grad():
        out = Seg2AnyFlux(model, strengths)(pack_latents(x), t, text, y, g, grid, kernel, rules, tokens, ids, perm)
    return unpack_latents(out, x.shape[-2], x.shape[-1])


@pytest.mark.parametrize("mode", ["hard", "base", "place"])
def test_diffusers_and_comfyui_adapters_agree(tiny, info_factory, mode):
    p, sd = tiny
    base = build_flux(p, sd, dtype=torch.float32)
    model = diffusers_flux(p, sd)
    lora = random_lora(p, rank=4)
    load_lora_into(model, lora)
    size = (128, 96)
    a, ca = info_factory(41, size=size, n_entities=3, mode=mode, alpha=0.6)
    b, cb = info_factory(42, size=size, n_entities=2, mode=mode, alpha=0.6, global_len=8)
    g = torch.Generator().manual_seed(9)
    x = torch.randn(2, 16, size[0] // 8, size[1] // 8, generator=g)
    y = torch.randn(2, 16, generator=g)
    t = torch.tensor([0.3, 0.8])
    gd = torch.tensor([3.5, 3.5])
    ours = run_diffusers(
        model, [a, b], [ca[0], cb[0]], x, t, y, gd, base.model.latent_format.process_in, {"default": 1.0, "cond": 0.7}
    )
    import math

    lcm = math.lcm(a.n_text, b.n_text)
    ctx = torch.cat([ca.repeat(1, lcm // a.n_text, 1), cb.repeat(1, lcm // b.n_text, 1)])
    comfy = direct(apply_seg2any(base, lora, 1.0, 0.7, backend="sdpa"), x, t, ctx, y, gd, [a, b])
    err = ((ours - comfy).norm() / comfy.norm()).item()
    assert err < 1e-5, err


def test_peft_adapters_round_trip_through_lora_factors(tiny):
    p, sd = tiny
    model = diffusers_flux(p, sd)
    add_seg2any_adapters(model, rank=4, init=False)
    lora = lora_from_peft(model)
    other = diffusers_flux(p, sd)
    load_lora_into(other, lora)
    back = lora_from_peft(other)
    for k, f in lora.cond.items():
        assert torch.allclose(back.cond[k].up @ back.cond[k].down, f.up @ f.down, atol=1e-6)


def test_full_weight_key_maps_match_comfyui(tiny):
    """Our diffusers<->ComfyUI key maps (used to export trained models) agree with ComfyUI's own."""
    from seg2any.adapters.comfyui import flux_dims
    from seg2any.flux.keys import comfy_to_diffusers as ours_c2d
    from seg2any.flux.keys import diffusers_to_comfy

    p, sd = tiny
    dims = flux_dims(build_flux(p, sd).model.diffusion_model)
    theirs = comfy_to_diffusers(sd, p)
    mine = ours_c2d(sd, dims)
    assert set(mine) == set(theirs), (
        f"ComfyUI's flux_to_diffusers moved: only ComfyUI maps {sorted(set(theirs) - set(mine))[:6]}, "
        f"only ours {sorted(set(mine) - set(theirs))[:6]}"
    )
    differ = [k for k in theirs if not torch.equal(mine[k], theirs[k])]
    assert not differ, f"ComfyUI maps these to other checkpoint tensors than ours: {differ[:6]}"
    back = diffusers_to_comfy(mine, dims)
    assert set(back) == set(sd) and all(torch.equal(back[k], sd[k]) for k in sd)
    # what ComfyUI itself saves (0.17 and later name QK-norms '.weight') maps the same way
    saved = build_flux(p, sd).model.diffusion_model.state_dict()
    assert set(ours_c2d(saved, dims)) == set(theirs)
