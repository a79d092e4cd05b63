"""Seg2Any on diffusers' ``FluxTransformer2DModel`` (training and the CLI).

The forward runs the model's own modules as three streams - text, noisy image, condition -
with the shared core (:mod:`seg2any.conditioning.batching`, :mod:`seg2any.attention.kernels`) for masks and
attention, so it computes what the ComfyUI adapter computes (a parity test checks this).

LoRA routing follows the official design without mutating adapter state: a Linear wrapped by
PEFT is evaluated as ``base(x) + scale * B_a(A_a(x))`` for exactly one adapter ``a`` - 'default'
on text and image tokens, 'cond' on condition tokens - which is also safe under gradient
checkpointing and threads.

Under DDP / DeepSpeed every trainable parameter must take part in every step's graph on every
rank, or the gradient all-reduce waits for a gradient that never comes ("Expected to have finished
reduction in the prior iteration"). Routing alone would leave adapters out whenever a batch lacks a
path (no condition tokens on one rank). The official code keeps both adapters in the graph (the
unused one at scale 0); here the training forward adds ``0 * sum(p)`` over the adapter parameters
once (:meth:`Seg2AnyFlux.keep_in_graph`): the same zero gradients at a fraction of the cost, and
the same output values (``y + 0.0 == y``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from ..attention.kernels import MaskedAttention
from ..attention.rules import MaskRule
from ..flux.lora_format import LoraFactor, ModelDims, Seg2AnyLora


def flux_dims(transformer) -> ModelDims:
    cfg = transformer.config
    return ModelDims(
        n_double=len(transformer.transformer_blocks),
        n_single=len(transformer.single_transformer_blocks),
        hidden=int(cfg.num_attention_heads * cfg.attention_head_dim),
        mlp_hidden=int(transformer.single_transformer_blocks[0].mlp_hidden_dim)
        if len(transformer.single_transformer_blocks)
        else int(transformer.transformer_blocks[0].ff.net[0].proj.out_features),
        in_channels=int(cfg.in_channels),
    )


def routed(module, x: torch.Tensor, adapter: str | None, strengths: dict) -> torch.Tensor:
    """A Linear (plain or PEFT-wrapped) applied with only ``adapter``'s low-rank update."""
    base = getattr(module, "base_layer", None)
    if base is None:
        return module(x)
    y = base(x)
    if adapter is None or adapter not in getattr(module, "lora_A", {}) or getattr(module, "disable_adapters", False):
        return y
    a, b = module.lora_A[adapter], module.lora_B[adapter]
    scale = module.scaling[adapter] * strengths.get(adapter, 1.0)
    drop = module.lora_dropout[adapter] if adapter in getattr(module, "lora_dropout", {}) else (lambda t: t)
    return y + b(a(drop(x.to(a.weight.dtype)))).to(y.dtype) * scale


def rope(ids: torch.Tensor, axes_dim, theta: int = 10000) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L, 3) positions -> cos, sin of shape (B, 1, L, head_dim), interleaved pairs, float32."""
    cos, sin = [], []
    for i, d in enumerate(axes_dim):
        freqs = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float64, device=ids.device) / d))
        a = (ids[..., i].double()[..., None] * freqs).float()
        cos.append(torch.cos(a).repeat_interleave(2, dim=-1))
        sin.append(torch.sin(a).repeat_interleave(2, dim=-1))
    return torch.cat(cos, -1)[:, None], torch.cat(sin, -1)[:, None]


def apply_rope(x: torch.Tensor, cs) -> torch.Tensor:
    cos, sin = cs
    xf = x.float()
    xr, xi = xf.reshape(*xf.shape[:-1], -1, 2).unbind(-1)
    rot = torch.stack([-xi, xr], dim=-1).flatten(-2)
    return (xf * cos + rot * sin).to(x.dtype)


class Seg2AnyFlux(torch.nn.Module):
    """The Seg2Any forward over a diffusers FLUX transformer (optionally with PEFT adapters).

    A Module holding the transformer, so DDP / DeepSpeed wrap it and see every parameter used.
    """

    def __init__(self, transformer, strengths: dict | None = None, gradient_checkpointing: bool = False):
        super().__init__()
        self.t = transformer
        self.strengths = dict(strengths or {"default": 1.0, "cond": 1.0})
        self.ckpt = gradient_checkpointing
        self.dims = flux_dims(transformer)
        self.heads = int(transformer.config.num_attention_heads)
        self.axes = tuple(transformer.config.axes_dims_rope)

    # -- pieces ----------------------------------------------------------------------------
    def lin(self, module, x, adapter):
        return routed(module, x, adapter, self.strengths)

    def temb(self, timestep, guidance, pooled, dtype):
        """time + guidance + pooled text, added in that order (as diffusers and ComfyUI do); a
        missing guidance value leaves the guidance term out, as ComfyUI's FLUX does."""
        te = self.t.time_text_embed
        if pooled is None:
            pooled = torch.zeros((timestep.shape[0], self.t.config.pooled_projection_dim), device=timestep.device, dtype=dtype)
        e = te.timestep_embedder(te.time_proj(timestep.float() * 1000).to(dtype))
        if getattr(self.t.config, "guidance_embeds", False) and guidance is not None:
            e = e + te.guidance_embedder(te.time_proj(guidance.float() * 1000).to(dtype))
        return e + te.text_embedder(pooled.to(dtype))

    def _heads(self, x):
        b, n, _ = x.shape
        return x.view(b, n, self.heads, -1).transpose(1, 2)

    # -- blocks ----------------------------------------------------------------------------
    def double(self, i, img, txt, cond, temb, temb0, cs, attend):
        blk = self.t.transformer_blocks[i]
        attn = blk.attn
        mods = [
            ("txt", txt, self.lin(blk.norm1_context.linear, F.silu(temb), "default").chunk(6, dim=-1), "default"),
            ("img", img, self.lin(blk.norm1.linear, F.silu(temb), "default").chunk(6, dim=-1), "default"),
        ]
        if cond is not None:
            mods.append(("cond", cond, self.lin(blk.norm1.linear, F.silu(temb0), "cond").chunk(6, dim=-1), "cond"))
        qs, ks, vs = [], [], []
        for name, x, m, ad in mods:
            xn = F.layer_norm(x, (x.shape[-1],), eps=1e-6) * (1 + m[1][:, None]) + m[0][:, None]
            if name == "txt":
                q, k, v = (self._heads(self.lin(p, xn, ad)) for p in (attn.add_q_proj, attn.add_k_proj, attn.add_v_proj))
                q, k = attn.norm_added_q(q), attn.norm_added_k(k)
            else:
                q, k, v = (self._heads(self.lin(p, xn, ad)) for p in (attn.to_q, attn.to_k, attn.to_v))
                q, k = attn.norm_q(q), attn.norm_k(k)
            qs.append(q)
            ks.append(k)
            vs.append(v)
        q = apply_rope(torch.cat(qs, 2), cs)
        k = apply_rope(torch.cat(ks, 2), cs)
        o = attend(q, k, torch.cat(vs, 2))
        o = o.transpose(1, 2).reshape(o.shape[0], o.shape[2], -1)
        outs, pos = [], 0
        for name, x, m, ad in mods:
            a = o[:, pos : pos + x.shape[1]]
            pos += x.shape[1]
            if name == "txt":
                x = x + m[2][:, None] * self.lin(attn.to_add_out, a, ad)
                ff_in, ff_out = blk.ff_context.net[0].proj, blk.ff_context.net[2]
            else:
                x = x + m[2][:, None] * self.lin(attn.to_out[0], a, ad)
                ff_in, ff_out = blk.ff.net[0].proj, blk.ff.net[2]
            z = F.layer_norm(x, (x.shape[-1],), eps=1e-6) * (1 + m[4][:, None]) + m[3][:, None]
            x = x + m[5][:, None] * self.lin(ff_out, F.gelu(self.lin(ff_in, z, ad), approximate="tanh"), ad)
            outs.append(x)
        return outs[1], outs[0], (outs[2] if cond is not None else None)

    def single(self, i, x, cond, temb, temb0, cs, attend):
        blk = self.t.single_transformer_blocks[i]
        attn = blk.attn
        streams = [(x, self.lin(blk.norm.linear, F.silu(temb), "default").chunk(3, dim=-1), "default")]
        if cond is not None:
            streams.append((cond, self.lin(blk.norm.linear, F.silu(temb0), "cond").chunk(3, dim=-1), "cond"))
        qs, ks, vs, mlps = [], [], [], []
        for s, m, ad in streams:
            xn = F.layer_norm(s, (s.shape[-1],), eps=1e-6) * (1 + m[1][:, None]) + m[0][:, None]
            q, k, v = (self._heads(self.lin(p, xn, ad)) for p in (attn.to_q, attn.to_k, attn.to_v))
            qs.append(attn.norm_q(q))
            ks.append(attn.norm_k(k))
            vs.append(v)
            mlps.append(F.gelu(self.lin(blk.proj_mlp, xn, ad), approximate="tanh"))
        q = apply_rope(torch.cat(qs, 2), cs)
        k = apply_rope(torch.cat(ks, 2), cs)
        o = attend(q, k, torch.cat(vs, 2))
        o = o.transpose(1, 2).reshape(o.shape[0], o.shape[2], -1)
        outs, pos = [], 0
        for (s, m, ad), mlp in zip(streams, mlps):
            a = o[:, pos : pos + s.shape[1]]
            pos += s.shape[1]
            outs.append(s + m[2][:, None] * self.lin(blk.proj_out, torch.cat([a, mlp], -1), ad))
        return outs[0], (outs[1] if cond is not None else None)

    # -- whole forward ---------------------------------------------------------------------
    def forward(
        self,
        latents: torch.Tensor,
        timestep: torch.Tensor,
        text: torch.Tensor,
        pooled: torch.Tensor | None,
        guidance: torch.Tensor | None,
        grid: tuple[int, int],
        kernel: MaskedAttention | None,
        rules: list[MaskRule],
        cond_tokens: torch.Tensor | None = None,
        cond_ids: torch.Tensor | None = None,
        perm: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """latents: (B, h*w, in_channels) packed noisy latents in model space; text: (B, T, D)
        padded per row; returns the velocity prediction of the image tokens, (B, h*w, in_channels).

        ``kernel`` None means plain attention (no entity, no condition token, no padding);
        ``perm`` (B, h*w) reorders image tokens (FlexAttention block sparsity) and is undone.
        """
        t = self.t
        B, n_img, _ = latents.shape
        dtype = latents.dtype
        h, w = grid
        img = self.lin(t.x_embedder, latents, "default")  # x_embedder carries only the cond adapter
        temb = self.temb(timestep, guidance, pooled, dtype)
        has_cond = cond_tokens is not None and cond_tokens.shape[1] > 0
        temb0 = self.temb(torch.zeros_like(timestep), guidance, pooled, dtype) if has_cond else None
        txt = t.context_embedder(text.to(dtype))
        ids = torch.zeros((B, n_img, 3), device=latents.device, dtype=torch.float32)
        rows = torch.arange(h, device=latents.device).repeat_interleave(w)
        cols = torch.arange(w, device=latents.device).repeat(h)
        ids[..., 1], ids[..., 2] = rows.float(), cols.float()
        if perm is not None:
            p = perm.to(latents.device)
            img = torch.gather(img, 1, p[..., None].expand(-1, -1, img.shape[-1]))
            ids = torch.gather(ids, 1, p[..., None].expand(-1, -1, 3))
        cond = None
        all_ids = [torch.zeros((B, txt.shape[1], 3), device=latents.device), ids]
        if has_cond:
            cond = self.lin(t.x_embedder, cond_tokens.to(dtype), "cond")
            all_ids.append(cond_ids.float())
        cs = rope(torch.cat(all_ids, 1), self.axes)

        def attend_for(rule):
            if kernel is None:
                return lambda q, k, v: F.scaled_dot_product_attention(q, k, v)
            return lambda q, k, v: kernel(q, k, v, rule)

        nd = len(t.transformer_blocks)
        for i in range(nd):
            fn = lambda a, b, c, i=i: self.double(i, a, b, c, temb, temb0, cs, attend_for(rules[i]))  # noqa: E731
            img, txt, cond = self._run(fn, img, txt, cond)
        x = torch.cat([txt, img], 1)
        for i in range(len(t.single_transformer_blocks)):
            fn = lambda a, _b, c, i=i: (*self.single(i, a, c, temb, temb0, cs, attend_for(rules[nd + i])), None)  # noqa: E731
            x, cond, _ = self._run(fn, x, None, cond)
        img = x[:, txt.shape[1] :]
        if perm is not None:
            inv = torch.argsort(perm.to(latents.device), dim=1)
            img = torch.gather(img, 1, inv[..., None].expand(-1, -1, img.shape[-1]))
        img = t.norm_out(img, temb)
        return self.keep_in_graph(t.proj_out(img))

    def keep_in_graph(self, out: torch.Tensor) -> torch.Tensor:
        """``out + 0 * sum(every trainable adapter parameter)`` while gradients are recorded.

        Each LoRA weight then receives a gradient (zero where its path was not taken) on every
        rank for every batch, so DDP and ZeRO-2 need no ``find_unused_parameters`` (a second pass
        over the graph every step). Without gradients (sampling) nothing is added.
        """
        if not torch.is_grad_enabled():
            return out
        live = [p for n, p in self.t.named_parameters() if p.requires_grad and "lora_" in n]
        if not live:
            return out
        zero = torch.stack([p.sum().float() for p in live]).sum() * 0.0
        return out + zero.to(out.dtype)

    def _run(self, fn, a, b, c):
        if self.ckpt and torch.is_grad_enabled():
            return checkpoint(fn, a, b, c, use_reentrant=False)
        return fn(a, b, c)


# ----------------------------------------------------------------------------------------------
# adapters <-> Seg2AnyLora


def lora_from_peft(transformer) -> Seg2AnyLora:
    """Read the 'default' and 'cond' PEFT adapters of a transformer into factors (scale folded)."""
    out = {"default": {}, "cond": {}}
    for name, module in transformer.named_modules():
        if not hasattr(module, "lora_A"):
            continue
        for adapter in ("default", "cond"):
            if adapter in module.lora_A:
                a = module.lora_A[adapter].weight.detach()
                b = module.lora_B[adapter].weight.detach()
                out[adapter][name] = LoraFactor(a.clone(), (b * module.scaling[adapter]).clone(), 1.0)
    return Seg2AnyLora(out["default"], out["cond"], source="peft")


def add_seg2any_adapters(transformer, rank: int, init: str | bool = True):
    """The official configuration: rank r, lora_alpha = r, no bias; 'default' on every DiT Linear,
    'cond' on x_embedder and the image-branch Linears."""
    from peft import LoraConfig, LoraModel

    from ..flux.lora_format import cond_targets, default_targets

    d = flux_dims(transformer)
    configs = {
        name: LoraConfig(r=rank, lora_alpha=rank, lora_dropout=0.0, bias="none", init_lora_weights=init, target_modules=targets)
        for name, targets in (
            ("default", default_targets(d.n_double, d.n_single)),
            ("cond", cond_targets(d.n_double, d.n_single)),
        )
    }
    if getattr(transformer, "peft_config", None):
        raise ValueError(
            f"the transformer already has PEFT adapters {sorted(transformer.peft_config)}; load Seg2Any into a fresh one"
        )
    # diffusers' add_adapter once per adapter makes peft warn "Already found a `peft_config`" on the
    # second call (it cannot tell a deliberate second adapter from a mistake). Declaring both configs
    # up front is peft's own multi-adapter path: the same LoRA layers, no warning.
    tuner = LoraModel(transformer, configs, adapter_name="default")
    tuner.inject_adapter(transformer, "cond")
    transformer._hf_peft_config_loaded = True  # what add_adapter records, so set_adapters etc. work
    transformer.set_adapters(["default", "cond"])
    return transformer


def load_lora_into(transformer, lora: Seg2AnyLora, rank: int | None = None):
    """Install a Seg2AnyLora as the two PEFT adapters (for inference in diffusers)."""
    r = rank or lora.rank
    add_seg2any_adapters(transformer, r, init=True)
    modules = dict(transformer.named_modules())
    with torch.no_grad():
        for adapter in ("default", "cond"):
            for name, f in lora.adapter(adapter).items():
                m = modules[name]
                if f.rank != r:
                    raise ValueError(f"{adapter}:{name} has rank {f.rank}, expected {r}")
                m.lora_A[adapter].weight.copy_(f.down)
                m.lora_B[adapter].weight.copy_(f.up * (f.scale / m.scaling[adapter]))
    return transformer
