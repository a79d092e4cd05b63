"""The per-generation plan/mask cache of a patched model must never serve one conditioning's masks
to another. It used to be keyed on ``id()`` of the conditionings: once one was freed, a new one
could get the same id and silently reuse the old masks (an isolation layout computed as if it had
none, off by 1e-2)."""

import dataclasses
import gc
import weakref

import torch

import seg2any.adapters.comfyui as adapter
from seg2any.adapters.comfyui import apply_seg2any
from seg2any.adapters.comfyui_models import build_flux
from tests.comfyui.test_runtime import inputs, rel
from tests.support.comfy_run import direct
from tests.support.reference_forward import Reference
from tests.support.tiny_flux import comfy_to_diffusers, random_lora

SIZE = (128, 96)


def _patch_state(patched):
    return patched.get_wrappers("outer_sample", adapter.KEY)[0].__self__


def _pair(info_factory):
    """The same layout, text and condition without and with attribute isolation (tiny FLUX: block 2)."""
    a, ctx = info_factory(5, size=SIZE, n_entities=3, dtype=torch.float64)
    plain = dataclasses.replace(a, isolation="none")
    isolated = dataclasses.replace(a, isolation="2-3")
    return plain, isolated, ctx


def test_every_id_reused_still_gives_each_conditioning_its_own_masks(tiny, info_factory, monkeypatch):
    """Worst case of id reuse, forced deterministically: every object gets the same id() inside
    the adapter. The second conditioning must still compute its own result, equal to a fresh model's."""
    p, sd = tiny
    base = build_flux(p, sd, dtype=torch.float64)
    lora = random_lora(p)
    plain, isolated, ctx = _pair(info_factory)
    x, y, t, g = inputs(1, SIZE, torch.float64)
    fresh_plain = direct(apply_seg2any(base, lora, backend="sdpa"), x, t, ctx, y, g, [plain])
    fresh_iso = direct(apply_seg2any(base, lora, backend="sdpa"), x, t, ctx, y, g, [isolated])
    assert rel(fresh_iso, fresh_plain) > 1e-4  # isolation matters here, so a stale mask would show

    monkeypatch.setattr(adapter, "id", lambda obj: 0, raising=False)
    patched = apply_seg2any(base, lora, backend="sdpa")
    assert torch.equal(direct(patched, x, t, ctx, y, g, [plain]), fresh_plain)
    assert torch.equal(direct(patched, x, t, ctx, y, g, [isolated]), fresh_iso)


def test_freed_conditioning_cannot_hand_its_id_to_a_new_one(tiny, info_factory, ref_sample_factory):
    """The real sequence: run A (no isolation), drop every reference to it, make B (isolation),
    run B on the same patched model. A stays alive while its entry is cached (so its id cannot be
    reused), B matches the float64 reference, and release() frees A."""
    p, sd = tiny
    base = build_flux(p, sd, dtype=torch.float64)
    lora = random_lora(p)
    patched = apply_seg2any(base, lora, backend="sdpa")
    state = _patch_state(patched)
    x, y, t, g = inputs(1, SIZE, torch.float64)

    def run_plain():
        plain, _, ctx = _pair(info_factory)
        direct(patched, x, t, ctx, y, g, [plain])
        return weakref.ref(plain)

    gone = run_plain()
    gc.collect()
    assert gone() is not None  # held by the cache key: its id is still taken
    _, isolated, ctx = _pair(info_factory)
    out = direct(patched, x, t, ctx, y, g, [isolated])
    ref = Reference(comfy_to_diffusers(sd, p), p, lora)
    want = ref.forward(x[0], t.item(), g.item(), ref_sample_factory(isolated, ctx, y[0], base.model.latent_format.process_in))
    assert rel(out[0], want) < 1e-5
    assert len(state._kernels) == 2
    state.release()
    gc.collect()
    assert gone() is None and not state._kernels


def test_cache_is_bounded_without_outer_sample(tiny, info_factory):
    """Callers that never reach OUTER_SAMPLE (direct model calls) keep at most KERNEL_CACHE batches."""
    p, sd = tiny
    base = build_flux(p, sd, dtype=torch.float32)
    patched = apply_seg2any(base, None, backend="sdpa")
    state = _patch_state(patched)
    x, y, t, g = inputs(1, (64, 64), torch.float32)
    for seed in range(adapter.KERNEL_CACHE + 2):
        info, ctx = info_factory(seed, size=(64, 64), n_entities=1)
        direct(patched, x, t, ctx, y, g, [info])
    assert len(state._kernels) == adapter.KERNEL_CACHE
