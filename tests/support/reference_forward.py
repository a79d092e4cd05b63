"""An independent float64 reference of the whole Seg2Any forward, one sample at a time.

Written from the official ``transformer_flux.py`` / ``attention.py`` semantics on diffusers
module names (unfused q/k/v), with the dense official mask from
:func:`tests.support.reference_mask.official_bias` and explicit LoRA routing: ``default`` on text and
image tokens, ``cond`` on condition tokens, never merged. It shares no code with the runtime
adapters, so agreement means both implement the same method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from seg2any.flux.lora_format import Seg2AnyLora
from tests.support.reference_mask import official_bias


@dataclass
class RefSample:
    context: torch.Tensor  # (T, Dc) text features [T0 | T1 .. TN]
    text_lens: list[int]
    masks: np.ndarray  # (N, H, W) bool pixel masks
    y: torch.Tensor | None  # (vec_in_dim,) pooled, or None
    cond_tokens: torch.Tensor | None  # (C, 64) model-space condition tokens
    cond_ids: np.ndarray | None  # (C, 3)
    mode: str = "hard"
    alpha: float = 1.0
    hard_range: tuple[int, int] | None = None


class Reference:
    def __init__(
        self,
        dsd: dict[str, torch.Tensor],
        params: dict,
        lora: Seg2AnyLora | None = None,
        s_default=1.0,
        s_cond=1.0,
        host_float32: bool = True,
    ):
        """``host_float32``: round the timestep sinusoid and the RoPE rotation through float32,
        as ComfyUI's FLUX does even for a float64 model, so float64 comparisons measure the
        Seg2Any logic rather than those two roundings."""
        self.f32 = host_float32
        self.w = {k: v.double() for k, v in dsd.items()}
        self.p = params
        self.lora = lora
        self.s = {"default": s_default, "cond": s_cond}
        self.heads = params["num_heads"]

    # -- primitives --------------------------------------------------------------------------
    def lin(self, name: str, x: torch.Tensor, adapter: str | None) -> torch.Tensor:
        y = x @ self.w[name + ".weight"].T
        if name + ".bias" in self.w:
            y = y + self.w[name + ".bias"]
        if self.lora is not None and adapter is not None:
            f = self.lora.adapter(adapter).get(name)
            if f is not None:
                y = y + self.s[adapter] * f.scale * (x @ f.down.double().T) @ f.up.double().T
        return y

    @staticmethod
    def ln(x):
        return F.layer_norm(x, (x.shape[-1],), eps=1e-6)

    def rms(self, name, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.w[name]

    def sinus(self, t: torch.Tensor, dim=256):
        half = dim // 2
        wd = torch.float32 if self.f32 else torch.float64
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=wd) / half)
        a = (t.to(wd) * 1000.0)[:, None] * freqs[None]
        return torch.cat([torch.cos(a), torch.sin(a)], dim=-1).double()

    def mlp_embed(self, prefix, x):
        return self.lin(prefix + ".linear_2", F.silu(self.lin(prefix + ".linear_1", x, None)), None)

    def temb(self, t, guidance, y):
        e = self.mlp_embed("time_text_embed.timestep_embedder", self.sinus(t))
        if self.p.get("guidance_embed", True) and guidance is not None:
            e = e + self.mlp_embed("time_text_embed.guidance_embedder", self.sinus(guidance))
        if y is None:
            y = torch.zeros((t.shape[0], self.p["vec_in_dim"]), dtype=torch.float64)
        return e + self.mlp_embed("time_text_embed.text_embedder", y.double())

    def rope(self, ids: torch.Tensor):
        """(L, 3) positions -> (cos, sin) of shape (L, head_dim), interleaved pairs."""
        cos, sin = [], []
        for i, d in enumerate(self.p["axes_dim"]):
            freqs = 1.0 / (self.p.get("theta", 10000) ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
            a = ids[:, i].double()[:, None] * freqs[None]
            if self.f32:
                a = a.float()
            cos.append(torch.cos(a).repeat_interleave(2, dim=1))
            sin.append(torch.sin(a).repeat_interleave(2, dim=1))
        return torch.cat(cos, 1), torch.cat(sin, 1)

    def apply_rope(self, x, cs):
        cos, sin = cs
        dt = x.dtype
        if self.f32:
            x = x.float()
        xr, xi = x.reshape(*x.shape[:-1], -1, 2).unbind(-1)
        rot = torch.stack([-xi, xr], dim=-1).flatten(-2)
        return (x * cos + rot * sin).to(dt)

    def heads_of(self, x):
        return x.view(x.shape[0], self.heads, -1).transpose(0, 1)  # (H, L, d)

    # -- one sample --------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, t: float, guidance: float | None, s: RefSample) -> torch.Tensor:
        """x: (16, 2h, 2w) latent in model space -> velocity prediction of the same shape."""
        c, lh, lw = x.shape
        h, w = lh // 2, lw // 2
        img = x.double().reshape(c, h, 2, w, 2).permute(1, 3, 0, 2, 4).reshape(h * w, c * 4)
        tt = torch.tensor([t], dtype=torch.float64)
        g = None if guidance is None else torch.tensor([guidance], dtype=torch.float64)
        y = None if s.y is None else s.y[None]
        temb = self.temb(tt, g, y)[0]
        has_cond = s.cond_tokens is not None and s.cond_tokens.shape[0] > 0
        temb0 = self.temb(torch.zeros(1, dtype=torch.float64), g, y)[0] if has_cond else None

        img = self.lin("x_embedder", img, "default")  # no default adapter on x_embedder
        txt = self.lin("context_embedder", s.context.double(), None)
        cond = self.lin("x_embedder", s.cond_tokens.double(), "cond") if has_cond else None
        n_t, n_i = txt.shape[0], img.shape[0]
        n_c = cond.shape[0] if has_cond else 0

        ids = torch.zeros((n_t + n_i, 3), dtype=torch.float64)
        rr, cc = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        ids[n_t:, 1] = rr.flatten().double()
        ids[n_t:, 2] = cc.flatten().double()
        if has_cond:
            ids = torch.cat([ids, torch.from_numpy(np.asarray(s.cond_ids)).double()], 0)
        cs = self.rope(ids)

        base, hard = official_bias(s.text_lens, s.masks, (h, w), n_c, alpha=s.alpha, mode=s.mode)
        nd, ns = self.p["depth"], self.p["depth_single_blocks"]

        def mask_for(gi):
            if hard is not None and s.hard_range is not None and s.hard_range[0] <= gi <= s.hard_range[1]:
                return hard
            return base

        for i in range(nd):
            img, txt, cond = self.double(i, img, txt, cond, temb, temb0, cs, mask_for(i))
        x_all = torch.cat([txt, img], 0)
        for i in range(ns):
            x_all, cond = self.single(i, x_all, cond, temb, temb0, cs, mask_for(nd + i))
        img = x_all[n_t:]
        emb = self.lin("norm_out.linear", F.silu(temb), None)
        scale, shift = emb.chunk(2)
        img = self.ln(img) * (1 + scale) + shift
        out = self.lin("proj_out", img, None)
        return out.reshape(h, w, c, 2, 2).permute(2, 0, 3, 1, 4).reshape(c, lh, lw)

    def attention(self, q, k, v, bias):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)

    def double(self, i, img, txt, cond, temb, temb0, cs, bias):
        p = f"transformer_blocks.{i}"
        m = self.lin(f"{p}.norm1.linear", F.silu(temb), "default").chunk(6)
        mc = self.lin(f"{p}.norm1_context.linear", F.silu(temb), "default").chunk(6)
        streams = [("txt", txt, mc, "default"), ("img", img, m, "default")]
        if cond is not None:
            streams.append(("cond", cond, self.lin(f"{p}.norm1.linear", F.silu(temb0), "cond").chunk(6), "cond"))
        qs, ks, vs = [], [], []
        for name, xs, mod, ad in streams:
            xn = self.ln(xs) * (1 + mod[1]) + mod[0]
            if name == "txt":
                q, k, v = (self.lin(f"{p}.attn.add_{a}_proj", xn, "default") for a in "qkv")
                q, k = (
                    self.rms(f"{p}.attn.norm_added_q.weight", self.heads_of(q)),
                    self.rms(f"{p}.attn.norm_added_k.weight", self.heads_of(k)),
                )
            else:
                q, k, v = (self.lin(f"{p}.attn.to_{a}", xn, ad) for a in "qkv")
                q, k = (
                    self.rms(f"{p}.attn.norm_q.weight", self.heads_of(q)),
                    self.rms(f"{p}.attn.norm_k.weight", self.heads_of(k)),
                )
            qs.append(q)
            ks.append(k)
            vs.append(self.heads_of(v))
        q, k, v = torch.cat(qs, 1), torch.cat(ks, 1), torch.cat(vs, 1)
        q, k = self.apply_rope(q, cs), self.apply_rope(k, cs)
        o = self.attention(q, k, v, bias).transpose(0, 1).reshape(q.shape[1], -1)
        outs, pos = [], 0
        for name, xs, mod, ad in streams:
            a = o[pos : pos + xs.shape[0]]
            pos += xs.shape[0]
            if name == "txt":
                xs = xs + mod[2] * self.lin(f"{p}.attn.to_add_out", a, "default")
                ff_in, ff_out, ff_ad = f"{p}.ff_context.net.0.proj", f"{p}.ff_context.net.2", "default"
            else:
                xs = xs + mod[2] * self.lin(f"{p}.attn.to_out.0", a, ad)
                ff_in, ff_out, ff_ad = f"{p}.ff.net.0.proj", f"{p}.ff.net.2", ad
            z = self.ln(xs) * (1 + mod[4]) + mod[3]
            xs = xs + mod[5] * self.lin(ff_out, F.gelu(self.lin(ff_in, z, ff_ad), approximate="tanh"), ff_ad)
            outs.append(xs)
        return outs[1], outs[0], (outs[2] if cond is not None else None)

    def single(self, i, x, cond, temb, temb0, cs, bias):
        p = f"single_transformer_blocks.{i}"
        streams = [(x, self.lin(f"{p}.norm.linear", F.silu(temb), "default").chunk(3), "default")]
        if cond is not None:
            streams.append((cond, self.lin(f"{p}.norm.linear", F.silu(temb0), "cond").chunk(3), "cond"))
        qs, ks, vs, mlps = [], [], [], []
        for xs, mod, ad in streams:
            xn = self.ln(xs) * (1 + mod[1]) + mod[0]
            q, k, v = (self.lin(f"{p}.attn.to_{a}", xn, ad) for a in "qkv")
            qs.append(self.rms(f"{p}.attn.norm_q.weight", self.heads_of(q)))
            ks.append(self.rms(f"{p}.attn.norm_k.weight", self.heads_of(k)))
            vs.append(self.heads_of(v))
            mlps.append(F.gelu(self.lin(f"{p}.proj_mlp", xn, ad), approximate="tanh"))
        q, k, v = torch.cat(qs, 1), torch.cat(ks, 1), torch.cat(vs, 1)
        q, k = self.apply_rope(q, cs), self.apply_rope(k, cs)
        o = self.attention(q, k, v, bias).transpose(0, 1).reshape(q.shape[1], -1)
        outs, pos = [], 0
        for (xs, mod, ad), mlp in zip(streams, mlps):
            a = o[pos : pos + xs.shape[0]]
            pos += xs.shape[0]
            outs.append(xs + mod[2] * self.lin(f"{p}.proj_out", torch.cat([a, mlp], -1), ad))
        return outs[0], (outs[1] if cond is not None else None)
