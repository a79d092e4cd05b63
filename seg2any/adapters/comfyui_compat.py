"""What the running ComfyUI's FLUX code must do for the Seg2Any patch, found by running it.

The patch hands stock FLUX blocks a second modulation vector (t = 0) for the condition tokens
through ``modulation_dims``. How ``apply_mod`` indexes that stacked vector changed in ComfyUI
0.17 (``m_mult[:, i]`` became ``m_mult[:, i:i + 1]``), and a future ComfyUI may change it again.
Rather than trusting version numbers, :func:`flux_internals` runs the real ``apply_mod`` and a
tiny real Double/SingleStreamBlock once per process, picks the vector layout that gives the
right numbers, and refuses, naming the ComfyUI version and the part that moved, when none does:
before sampling starts, instead of a broadcast error deep inside a block.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import comfy.ldm.flux.layers as flux_layers
import comfy.ops
import torch

from ..errors import ModelMismatchError


def comfyui_version() -> str:
    try:
        from comfyui_version import __version__
    except ImportError:  # trees before 0.3.2x had no version module
        return "unknown"
    return str(__version__)


def _per_set_keepdim(vec: torch.Tensor, vec0: torch.Tensor) -> torch.Tensor:
    """(B, 2, 1, D): ``m_mult[:, i]`` (ComfyUI before 0.17) is (B, 1, D) and broadcasts over tokens."""
    return torch.stack([vec, vec0.to(vec.dtype)], dim=1).unsqueeze(2)


def _per_set(vec: torch.Tensor, vec0: torch.Tensor) -> torch.Tensor:
    """(B, 2, D): ``m_mult[:, i:i + 1]`` (ComfyUI 0.17 and later, as its own timestep-zero path) is (B, 1, D)."""
    return torch.stack([vec, vec0.to(vec.dtype)], dim=1)


LAYOUTS: dict[str, Callable] = {"(B, 2, 1, D)": _per_set_keepdim, "(B, 2, D)": _per_set}


@dataclass(frozen=True)
class FluxInternals:
    """The parts of ComfyUI's FLUX the patch relies on, as measured in this process."""

    version: str
    layout: str  # key of LAYOUTS

    def two_vectors(self, vec: torch.Tensor, vec0: torch.Tensor) -> torch.Tensor:
        """Noisy-token and t = 0 modulation vectors stacked the way this ComfyUI's blocks index them."""
        return LAYOUTS[self.layout](vec, vec0)


def _refuse(part: str, detail: str) -> ModelMismatchError:
    return ModelMismatchError(
        f"Seg2Any does not recognise the FLUX code of this ComfyUI ({comfyui_version()}): {part} changed ({detail}). "
        "Nothing was sampled; update the Seg2Any node pack, or use a ComfyUI version it supports (see its README)"
    )


def _apply_mod_layouts() -> list[str]:
    """Layouts for which ``apply_mod`` gives token set 0 vector 0 and set 1 vector 1, at batch 2."""
    g = torch.Generator().manual_seed(0)
    b, n, d = 2, 3, 4  # n != b so a layout that broadcasts batch against tokens cannot pass
    vec, vec0 = torch.rand(b, d, generator=g) + 1, torch.rand(b, d, generator=g) + 1
    dims = [(0, 1, 0), (1, n, 1)]
    expected = torch.cat([vec[:, None].expand(b, 1, d), vec0[:, None].expand(b, n - 1, d)], dim=1)
    good = []
    for name, stack in LAYOUTS.items():
        m = stack(vec, vec0)
        try:
            out = flux_layers.apply_mod(torch.ones(b, n, d), m, torch.zeros_like(m), dims)
        except RuntimeError:
            continue
        if out.shape == expected.shape and torch.equal(out, expected):
            good.append(name)
    return good


def _tiny_blocks():
    ops = comfy.ops.disable_weight_init
    g = torch.Generator().manual_seed(1)
    hidden, heads = 16, 2
    double = flux_layers.DoubleStreamBlock(hidden, heads, mlp_ratio=2.0, qkv_bias=True, operations=ops)
    single = flux_layers.SingleStreamBlock(hidden, heads, mlp_ratio=2.0, operations=ops)
    with torch.no_grad():
        for blk in (double, single):
            for name, p in blk.named_parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3 + (1.0 if "norm" in name else 0.0))  # norms near 1
    embed = flux_layers.EmbedND(dim=hidden // heads, theta=10000, axes_dim=[2, 2, 4])
    return double, single, embed


def _block_problem(layout: str) -> str | None:
    """None when the real blocks run the layout at batch 2 and, with vec0 == vec, give exactly what
    they give without ``modulation_dims``; else what went wrong."""
    double, single, embed = _tiny_blocks()
    g = torch.Generator().manual_seed(2)
    b, n_txt, n_img, c = 2, 3, 4, 2
    hidden = 16
    txt, img = torch.randn(b, n_txt, hidden, generator=g), torch.randn(b, n_img + c, hidden, generator=g)
    ids = torch.zeros(b, n_txt + n_img + c, 3)
    ids[..., 1] = torch.arange(n_txt + n_img + c, dtype=torch.float32)
    pe = embed(ids)
    vec = torch.randn(b, hidden, generator=g)
    two = LAYOUTS[layout](vec, vec)
    try:
        with torch.no_grad():
            ref_img, ref_txt = double(img=img.clone(), txt=txt.clone(), vec=vec, pe=pe)
            got_img, got_txt = double(
                img=img.clone(),
                txt=txt.clone(),
                vec=two,
                pe=pe,
                modulation_dims_img=[(0, n_img, 0), (n_img, n_img + c, 1)],
                modulation_dims_txt=[(0, n_txt, 0)],
            )
            x = torch.cat([txt, img], dim=1)
            ref_x = single(x.clone(), vec=vec, pe=pe)
            got_x = single(
                x.clone(), vec=two, pe=pe, modulation_dims=[(0, n_txt + n_img, 0), (n_txt + n_img, n_txt + n_img + c, 1)]
            )
    except (RuntimeError, TypeError) as e:
        return f"{type(e).__name__}: {e}"
    for what, a, r in (
        ("DoubleStreamBlock image", got_img, ref_img),
        ("DoubleStreamBlock text", got_txt, ref_txt),
        ("SingleStreamBlock", got_x, ref_x),
    ):
        if a.shape != r.shape or not torch.allclose(a, r, atol=1e-5, rtol=1e-5):
            return f"{what} with modulation_dims differs from the same block without them"
    return None


_SIGNATURES = {  # looked up when checked, so a class patched at run time is what is checked
    "DoubleStreamBlock.forward": ("modulation_dims_img", "modulation_dims_txt", "attn_mask", "transformer_options"),
    "SingleStreamBlock.forward": ("modulation_dims", "attn_mask", "transformer_options"),
}


@functools.cache
def flux_internals() -> FluxInternals:
    """Measure once per process; raise :class:`ModelMismatchError` naming what changed."""
    for part, names in _SIGNATURES.items():
        cls, method = part.split(".")
        params = inspect.signature(getattr(getattr(flux_layers, cls), method)).parameters
        missing = [n for n in names if n not in params]
        if missing:
            raise _refuse(f"comfy.ldm.flux.layers.{part}", f"no parameter {', '.join(missing)}")
    layouts = _apply_mod_layouts()
    if not layouts:
        raise _refuse(
            "comfy.ldm.flux.layers.apply_mod",
            f"it indexes a per-token-set modulation vector in none of the layouts {', '.join(LAYOUTS)}",
        )
    problems = {}
    for layout in layouts:
        problem = _block_problem(layout)
        if problem is None:
            return FluxInternals(comfyui_version(), layout)
        problems[layout] = problem
    raise _refuse(
        "comfy.ldm.flux.layers Double/SingleStreamBlock modulation_dims", "; ".join(f"{k}: {v}" for k, v in problems.items())
    )
