"""Drift tests: the parts of ComfyUI's FLUX code the patch relies on, run for real on this tree.

A ComfyUI that changes them must be refused before sampling with a message that names the
ComfyUI version and the part that moved, never fail later inside a block.
"""

from __future__ import annotations

import comfy.ldm.flux.layers as flux_layers
import pytest
import torch

from seg2any.adapters import comfyui_compat
from seg2any.adapters.comfyui import apply_seg2any
from seg2any.adapters.comfyui_models import build_flux
from seg2any.errors import ModelMismatchError


@pytest.fixture
def fresh_probe():
    comfyui_compat.flux_internals.cache_clear()
    yield
    comfyui_compat.flux_internals.cache_clear()


def test_this_comfyui_indexes_one_known_layout_and_blocks_agree(fresh_probe):
    internals = comfyui_compat.flux_internals()
    assert internals.version == comfyui_compat.comfyui_version() != "unknown"
    # hand-computed: token set 1 of every batch row is scaled by that row's second vector
    vec = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    vec0 = torch.tensor([[5.0, 6.0], [7.0, 8.0]])
    m = internals.two_vectors(vec, vec0)
    out = flux_layers.apply_mod(torch.ones(2, 3, 2), m, None, [(0, 2, 0), (2, 3, 1)])
    assert torch.equal(out[:, :2], vec[:, None].expand(2, 2, 2))
    assert torch.equal(out[:, 2:], vec0[:, None])
    assert comfyui_compat._block_problem(internals.layout) is None


def test_a_changed_apply_mod_is_refused_before_sampling(fresh_probe, monkeypatch, tiny):
    """As if a future ComfyUI indexed the modulation vector along another axis."""

    def future_apply_mod(tensor, m_mult, m_add=None, modulation_dims=None):
        for d in modulation_dims or []:
            tensor[:, d[0] : d[1]] *= m_mult[d[2]]
        return tensor

    monkeypatch.setattr(flux_layers, "apply_mod", future_apply_mod)
    p, sd = tiny
    with pytest.raises(ModelMismatchError) as e:
        apply_seg2any(build_flux(p, sd), None)
    msg = str(e.value)
    assert comfyui_compat.comfyui_version() in msg and "apply_mod" in msg and "Nothing was sampled" in msg


def test_a_block_without_modulation_dims_is_refused(fresh_probe, monkeypatch, tiny):
    def old_forward(self, x, vec, pe, attn_mask=None, transformer_options={}):  # noqa: B006
        raise AssertionError("never called: the signature is checked first")

    monkeypatch.setattr(flux_layers.SingleStreamBlock, "forward", old_forward)
    p, sd = tiny
    with pytest.raises(ModelMismatchError, match=r"SingleStreamBlock\.forward changed \(no parameter modulation_dims\)"):
        apply_seg2any(build_flux(p, sd), None)
