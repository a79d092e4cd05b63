"""Seg2Any on ComfyUI's FLUX (``comfy.ldm.flux.model.Flux``), through ModelPatcher hooks only.

With its siblings ``comfyui_*.py`` (model building, text encoding, the demo, CONDITIONING) it is
the only code of the package that imports ComfyUI; ``nodes/`` uses them. Nothing here edits
ComfyUI classes. A patched MODEL is a ``ModelPatcher.clone()`` carrying:

* the ``default`` adapter merged into the weights by ComfyUI's own LoRA patching (so it works
  with fp8 weights, low-VRAM offloading and other LoRAs, and costs nothing per step);
* a DIFFUSION_MODEL wrapper that, for each call whose conditioning carries a Seg2Any layout,
  gives stock ``forward_orig`` a per-call copy of ``transformer_options`` with
  - a ``post_input`` patch appending the condition tokens (embedded with ``img_in`` plus the
    ``cond`` adapter, RoPE ids of the image token they sit on) and, for the backends that skip
    masked blocks (``reorders`` in :mod:`seg2any.attention.backends`), reordering image tokens so
    every entity is contiguous;
  - a ``patches_replace['dit']`` entry per block that calls the stock block with a second
    modulation vector at t = 0 for the condition tokens (``modulation_dims``) and that layer's
    mask (semantic alignment, or attribute isolation in the configured range);
  - an ``optimized_attention_override`` that runs our masked kernel for those masks and hands
    every other call to whatever was there before;
  - forward hooks, present only during the call, that add (cond - default) adapter deltas to the
    condition-token rows of the image-branch Linears, so ``cond`` acts on condition tokens only;
* an OUTER_SAMPLE wrapper that frees per-generation caches when sampling ends or is interrupted.

The same base model therefore computes bit-identical results once the patched clone is gone.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field

import comfy.conds
import comfy.lora
import comfy.patcher_extension
import numpy as np
import torch
from comfy.ldm.flux.layers import timestep_embedding
from comfy.ldm.flux.model import Flux

from ..attention.kernels import MaskedAttention, resolve_backend
from ..attention.rules import MaskRule, SequencePlan
from ..conditioning.batching import condition_inputs, kernel_for, layer_rules, pad_text, plan_rows
from ..conditioning.settings import Seg2AnyConditioning
from ..errors import LoraFormatError, ModelMismatchError
from ..flux import spec
from ..flux.lora_format import ModelDims, Seg2AnyLora, adapter_state_dict, validate
from .comfyui_compat import FluxInternals, flux_internals
from .comfyui_demo import check_trained_size, trained_resolution

log = logging.getLogger("seg2any")

KEY = "seg2any"
COND_KEY = "seg2any"  # model_conds key of the conditioning
KERNEL_CACHE = 4  # batches whose plans/masks stay cached (cond + uncond when ComfyUI splits them, ...)


# ----------------------------------------------------------------------------------------------
# conditioning transport


class Seg2AnyBatch:
    """The Seg2Any settings of each chunk of a batched model call, in batch order."""

    def __init__(self, infos: list[Seg2AnyConditioning]):
        self.infos = infos


class Seg2AnyCond(comfy.conds.CONDConstant):
    """Carries a :class:`Seg2AnyConditioning` to the model call.

    Unlike a plain CONDConstant, two different layouts may share a batch (cond and uncond of
    true CFG, or several prompts): the wrapper receives every chunk's layout and pads text and
    condition tokens per row so each row computes exactly what it would alone.
    """

    def can_concat(self, other):
        return isinstance(other, Seg2AnyCond)

    def concat(self, others):
        return Seg2AnyBatch([self.cond] + [o.cond for o in others])


def attach(conditioning: list, info_for) -> list:
    """Copy of a CONDITIONING list with a Seg2Any layout attached to each entry.

    ``info_for(i, tensor)`` returns the :class:`Seg2AnyConditioning` of entry ``i``.
    """
    out = []
    for i, (t, d) in enumerate(conditioning):
        d = dict(d)
        mc = dict(d.get("model_conds", {}))
        mc[COND_KEY] = Seg2AnyCond(info_for(i, t))
        d["model_conds"] = mc
        out.append([t, d])
    return out


# ----------------------------------------------------------------------------------------------
# model facts


def flux_of(model_patcher) -> Flux:
    dm = getattr(model_patcher.model, "diffusion_model", None)
    if not isinstance(dm, Flux):
        raise ModelMismatchError(f"Seg2Any needs a FLUX model (comfy.ldm.flux.model.Flux); this MODEL is {type(dm).__name__}")
    if getattr(dm.params, "global_modulation", False):
        raise ModelMismatchError("Seg2Any supports FLUX.1 models; this FLUX has global modulation (FLUX.2)")
    return dm


def flux_dims(flux: Flux) -> ModelDims:
    return ModelDims(
        n_double=len(flux.double_blocks),
        n_single=len(flux.single_blocks),
        hidden=int(flux.hidden_size),
        mlp_hidden=int(
            flux.single_blocks[0].mlp_hidden_dim if len(flux.single_blocks) else flux.double_blocks[0].img_mlp[0].out_features
        ),
        in_channels=int(flux.img_in.in_features),
    )


def flux_vec(flux: Flux, timesteps: torch.Tensor, guidance, y, dtype) -> torch.Tensor:
    """The modulation vector ``forward_orig`` computes (time + guidance + pooled text).

    Evaluated again at t = 0 for the condition tokens (OminiControl-style, as upstream). A drift
    test checks this equals the ``vec`` stock FLUX hands its blocks.
    """
    if y is None:
        y = torch.zeros((timesteps.shape[0], flux.params.vec_in_dim), device=timesteps.device, dtype=dtype)
    vec = flux.time_in(timestep_embedding(timesteps, 256).to(dtype))
    if flux.params.guidance_embed and guidance is not None:
        vec = vec + flux.guidance_in(timestep_embedding(guidance, 256).to(dtype))
    return vec + flux.vector_in(y[:, : flux.params.vec_in_dim])


# ----------------------------------------------------------------------------------------------
# the cond-token LoRA correction


@dataclass(eq=False)
class _Slice:
    rows: tuple[int, int]  # columns of the stacked A this slice uses
    out: tuple[int, int]  # output features it adds to
    up: torch.Tensor  # (out_len, rank_sum) already scaled and signed


@dataclass(eq=False)
class _ModuleDelta:
    """Low-rank update applied to condition-token rows of one ComfyUI Linear."""

    down: torch.Tensor  # (sum of ranks, in)
    slices: list[_Slice]

    def to(self, device, dtype) -> _ModuleDelta:
        return _ModuleDelta(
            self.down.to(device, dtype),
            [_Slice(s.rows, s.out, s.up.to(device, dtype)) for s in self.slices],
        )

    def apply(self, x: torch.Tensor, out: torch.Tensor) -> None:
        """out[..., o0:o1] += up @ (down @ x), for every slice, in place."""
        h = x @ self.down.T
        for s in self.slices:
            out[..., s.out[0] : s.out[1]] += h[..., s.rows[0] : s.rows[1]] @ s.up.T


def cond_deltas(lora: Seg2AnyLora | None, dims: ModelDims, s_default: float, s_cond: float) -> dict[str, _ModuleDelta]:
    """ComfyUI module path -> the update condition tokens need on top of the merged weights.

    ``default`` is merged into W for every token (strength s_default); condition tokens must see
    W + s_cond * dW_cond instead, so their rows get s_cond * dW_cond - s_default * dW_default.
    Returned on the CPU in the checkpoint dtype; moved per generation.
    """
    if lora is None:
        return {}
    pieces: dict[str, list] = {}
    names = set(lora.cond) | {n for n in lora.default if _image_branch(n)}
    for name in sorted(names):
        path, off, n = dims.comfy_target(name)
        parts = []
        c = lora.cond.get(name)
        if c is not None and s_cond != 0:
            parts.append((c.down, c.up * (s_cond * c.scale)))
        d = lora.default.get(name) if name != "x_embedder" else None
        if d is not None and s_default != 0:
            parts.append((d.down, d.up * (-s_default * d.scale)))
        if parts:
            pieces.setdefault(path, []).append((off, n, parts))
    out = {}
    for path, slices in pieces.items():
        downs, sl, r0 = [], [], 0
        for off, n, parts in slices:
            a = torch.cat([p[0] for p in parts], dim=0)
            b = torch.cat([p[1] for p in parts], dim=1)
            downs.append(a)
            sl.append(_Slice((r0, r0 + a.shape[0]), (off, off + n), b))
            r0 += a.shape[0]
        out[path] = _ModuleDelta(torch.cat(downs, dim=0), sl)
    return out


def _image_branch(name: str) -> bool:
    """Modules condition tokens pass through (double-block image side, all single-block Linears)."""
    if name.startswith(spec.DIFFUSERS_SINGLE + "."):
        return True
    return name.split(".", 2)[-1] in spec.COND_DOUBLE_LINEARS


def default_patches(model_patcher, lora: Seg2AnyLora, dims: ModelDims) -> dict:
    """ComfyUI weight patches for the ``default`` adapter, through ComfyUI's own key mapping.

    Every module must be mapped; a missing one means ComfyUI's diffusers->FLUX map changed and
    is reported, never silently skipped.
    """
    sd = adapter_state_dict({k: _unit(f) for k, f in lora.default.items()})
    for name, f in lora.default.items():
        sd[f"transformer.{name}.alpha"] = torch.tensor(float(f.scale * f.rank))
    key_map = comfy.lora.model_lora_keys_unet(model_patcher.model, {})
    patches = comfy.lora.load_lora(sd, key_map, log_missing=False)
    if len(patches) != len(lora.default):
        mapped = {str(k) for k in patches}
        missing = [n for n in lora.default if dims.comfy_target(n)[0] not in " ".join(mapped)]
        raise LoraFormatError(
            f"ComfyUI mapped {len(patches)} of {len(lora.default)} 'default' modules onto this model; "
            f"unmapped: {', '.join(missing[:6])}"
        )
    return patches


def _unit(f):
    from ..flux.lora_format import LoraFactor

    return LoraFactor(f.down, f.up, 1.0)


# ----------------------------------------------------------------------------------------------
# the patch


@dataclass(eq=False)
class LayerMask:
    """What a block hands to ``attention(mask=...)``: our kernel plus this layer's rule."""

    kernel: MaskedAttention
    rule: MaskRule


@dataclass(eq=False)
class _Call:
    """Everything one model call needs, derived from the batch's layouts and the input shapes."""

    plan: SequencePlan
    kernel: MaskedAttention | None
    rules: list
    n_double: int
    n_img: int
    text_len: int
    cond_len: int
    cond_tokens: torch.Tensor | None  # (B, C, 64) in model space, zero-padded
    cond_ids: torch.Tensor | None  # (B, C, 3)
    vec0: torch.Tensor | None


@dataclass(eq=False)
class Seg2AnyPatch:
    """The state shared by a patched MODEL's wrappers (immutable apart from caches)."""

    lora: Seg2AnyLora | None
    strength_default: float
    strength_cond: float
    backend: str
    process_in: object
    internals: FluxInternals
    trained_resolution: int | None = None  # a model that only draws near one size (the demo)
    _deltas_cpu: dict = field(default_factory=dict)
    _deltas_dev: dict = field(default_factory=dict)
    _kernels: dict = field(default_factory=dict)
    _warned: set = field(default_factory=set)

    # -- lifecycle ------------------------------------------------------------------------
    def outer_sample(self, executor, *args, **kwargs):
        try:
            return executor(*args, **kwargs)
        finally:
            self.release()

    def release(self):
        """Drop device copies and masks (end of a generation, interrupted or not)."""
        self._deltas_dev.clear()
        self._kernels.clear()
        self._warned.clear()

    def _deltas(self, device, dtype) -> dict[str, _ModuleDelta]:
        key = (str(device), dtype)
        d = self._deltas_dev.get(key)
        if d is None:
            d = {k: v.to(device, dtype) for k, v in self._deltas_cpu.items()}
            self._deltas_dev[key] = d
        return d

    # -- the wrapper ----------------------------------------------------------------------
    def diffusion_model(self, executor, x, timestep, context, y, guidance, ref_latents, control, transformer_options, **kwargs):
        batch = kwargs.pop(COND_KEY, None)
        flux = executor.class_obj
        if batch is None:
            self._note_plain(transformer_options)
            return executor(x, timestep, context, y, guidance, ref_latents, control, transformer_options, **kwargs)
        if kwargs.get("attention_mask") is not None:
            raise ModelMismatchError(
                "this conditioning also carries a stock 'attention_mask' (e.g. from Apply Style Model with a strength); "
                "Seg2Any sets its own per-layer masks and cannot combine them"
            )
        if ref_latents is not None:
            raise ModelMismatchError("Seg2Any cannot be combined with reference latents (Kontext) in the same conditioning")
        call = self._prepare(flux, batch, x, timestep, context, y, guidance, control)
        topts = self._call_options(flux, call, transformer_options)
        ctx = self._pad_text(batch, context, call)
        with self._cond_hooks(flux, call, x.dtype):
            return executor(x, timestep, ctx, y, guidance, ref_latents, control, topts, **kwargs)

    def _note_plain(self, transformer_options):
        cu = transformer_options.get("cond_or_uncond", [])
        if 1 in cu and "plain-uncond" not in self._warned:
            self._warned.add("plain-uncond")
            log.warning(
                "Seg2Any: the negative conditioning has no Seg2Any layout, so the uncond pass runs as plain FLUX "
                "(with the default adapter). The official true-CFG puts the negative prompt in every region: use the "
                "negative output of 'Seg2Any Conditioning'."
            )

    def _rows(self, batch: Seg2AnyBatch, bsz: int) -> list[Seg2AnyConditioning]:
        n = len(batch.infos)
        if bsz % n:
            raise ModelMismatchError(f"batch of {bsz} rows cannot be split into {n} Seg2Any conditionings")
        per = bsz // n
        return [batch.infos[i // per] for i in range(bsz)]

    def _prepare(self, flux: Flux, batch: Seg2AnyBatch, x, timestep, context, y, guidance, control) -> _Call:
        dims = flux_dims(flux)
        infos = self._rows(batch, x.shape[0])
        ps = flux.patch_size
        gh, gw = (x.shape[-2] + ps // 2) // ps, (x.shape[-1] + ps // 2) // ps
        h, w = x.shape[-2] * spec.VAE_FACTOR, x.shape[-1] * spec.VAE_FACTOR
        check_trained_size(self.trained_resolution, h, w)  # the demo's rule; None for FLUX
        for info in infos:
            info.check_image_size(h, w)
            if context.shape[1] % info.n_text or context.shape[1] < info.n_text:
                raise ModelMismatchError(
                    f"the conditioning has {context.shape[1]} text tokens but its Seg2Any layout accounts for "
                    f"{info.n_text}: a node after the Regional Prompt Builder changed the text (e.g. Redux or "
                    "Conditioning Concat), which Seg2Any cannot map to its regions"
                )
        device = x.device
        backend = resolve_backend(self.backend, device)
        # Keyed on the conditioning objects themselves (identity hash, Seg2AnyConditioning has
        # eq=False): the key holds them, so none can be freed and its id handed to a new
        # conditioning while its plans and masks are cached (an id() key returned stale masks).
        key = (tuple(infos), gh, gw, str(device), backend, control is None)
        cached = self._kernels.pop(key, None)
        if cached is None:
            plan, trivial = plan_rows(infos, (gh, gw), backend, reorder_ok=control is None)
            kernel = kernel_for(plan, trivial, backend, device)
            rules = [None if kernel is None else LayerMask(kernel, r) for r in layer_rules(infos, dims.n_double, dims.n_single)]
            cached = (plan, kernel, rules)
        self._kernels[key] = cached  # most recent last
        while len(self._kernels) > KERNEL_CACHE:  # callers without OUTER_SAMPLE never release()
            self._kernels.pop(next(iter(self._kernels)))
        plan, kernel, rules = cached
        cond_tokens, cond_ids = condition_inputs(infos, plan, dims.in_channels, device, x.dtype, self.process_in)
        vec0 = flux_vec(flux, torch.zeros_like(timestep), guidance, y, x.dtype) if plan.cond_len else None
        return _Call(plan, kernel, rules, dims.n_double, plan.n_img, plan.text_len, plan.cond_len, cond_tokens, cond_ids, vec0)

    def _pad_text(self, batch, context, call: _Call):
        """Undo ComfyUI's LCM repetition of unequal text lengths and pad each row with zeros,
        which the masks make invisible (the official batch padding)."""
        infos = self._rows(batch, context.shape[0])
        if all(info.n_text == context.shape[1] for info in infos):
            return context
        return pad_text([context[r, : info.n_text] for r, info in enumerate(infos)], call.text_len)

    # -- per-call transformer_options ------------------------------------------------------
    def _call_options(self, flux: Flux, call: _Call, transformer_options: dict) -> dict:
        topts = dict(transformer_options)
        patches = dict(topts.get("patches", {}))
        patches["post_input"] = list(patches.get("post_input", [])) + [self._post_input(flux, call)]
        topts["patches"] = patches
        replace = dict(topts.get("patches_replace", {}))
        dit = dict(replace.get("dit", {}))
        for i in range(call.n_double):
            dit[("double_block", i)] = self._double(flux, call, i, dit.get(("double_block", i)))
        n_single = len(flux.single_blocks)
        for i in range(n_single):
            dit[("single_block", i)] = self._single(flux, call, i, dit.get(("single_block", i)), i == n_single - 1)
        replace["dit"] = dit
        topts["patches_replace"] = replace
        topts["optimized_attention_override"] = _override(topts.get("optimized_attention_override"))
        return topts

    def _post_input(self, flux: Flux, call: _Call):
        plan = call.plan
        perm = None
        if plan.reordered:
            perm = torch.stack([torch.from_numpy(p) for p in plan.perm])

        def post_input(d):
            img, txt, img_ids, txt_ids = d["img"], d["txt"], d["img_ids"], d["txt_ids"]
            if txt.shape[1] != call.text_len:
                raise ModelMismatchError(
                    f"another post_input patch changed the text from {call.text_len} to {txt.shape[1]} tokens; "
                    "it cannot be combined with Seg2Any"
                )
            if img.shape[1] != call.n_img:
                raise ModelMismatchError(f"expected {call.n_img} image tokens, got {img.shape[1]} (reference latents?)")
            if perm is not None:
                p = perm.to(img.device)
                img = torch.gather(img, 1, p[..., None].expand(-1, -1, img.shape[2]))
                img_ids = torch.gather(img_ids, 1, p[..., None].expand(-1, -1, img_ids.shape[2]))
            if call.cond_len:
                tok = call.cond_tokens
                emb = flux.img_in(tok)
                delta = self._deltas(tok.device, tok.dtype).get("img_in")
                if delta is not None:
                    delta.apply(tok, emb)
                img = torch.cat([img, emb.to(img.dtype)], dim=1)
                img_ids = torch.cat([img_ids, call.cond_ids.to(img_ids.dtype)], dim=1)
            return {"img": img, "txt": txt, "img_ids": img_ids, "txt_ids": txt_ids}

        return post_input

    def _double(self, flux: Flux, call: _Call, i: int, foreign):
        mask = call.rules[i]
        n_img, c = call.n_img, call.cond_len

        def run(a):
            block = flux.double_blocks[i]
            kw = {}
            vec = a["vec"]
            if c:
                vec = self.internals.two_vectors(vec, call.vec0)
                kw = {
                    "modulation_dims_img": [(0, n_img, 0), (n_img, n_img + c, 1)],
                    "modulation_dims_txt": [(0, a["txt"].shape[1], 0)],
                }
            img, txt = block(
                img=a["img"],
                txt=a["txt"],
                vec=vec,
                pe=a["pe"],
                attn_mask=mask,
                transformer_options=a["transformer_options"],
                **kw,
            )
            return {"img": img, "txt": txt}

        if foreign is None:
            return lambda args, extra: run(args)
        return lambda args, extra: foreign(args, {"original_block": run})

    def _single(self, flux: Flux, call: _Call, i: int, foreign, last: bool):
        mask = call.rules[call.n_double + i]
        t_img = call.text_len + call.n_img
        c = call.cond_len
        perm = None
        if last and call.plan.reordered:
            inv = [np.argsort(p) for p in call.plan.perm]
            perm = torch.stack([torch.from_numpy(p) for p in inv])

        def run(a):
            block = flux.single_blocks[i]
            kw = {}
            vec = a["vec"]
            if c:
                vec = self.internals.two_vectors(vec, call.vec0)
                kw = {"modulation_dims": [(0, t_img, 0), (t_img, t_img + c, 1)]}
            out = block(a["img"], vec=vec, pe=a["pe"], attn_mask=mask, transformer_options=a["transformer_options"], **kw)
            return {"img": out}

        def finish(out):
            if perm is None:
                return out
            x = out["img"]
            t = call.text_len
            p = perm.to(x.device)
            img = torch.gather(x[:, t : t + call.n_img], 1, p[..., None].expand(-1, -1, x.shape[2]))
            return {"img": torch.cat([x[:, :t], img, x[:, t + call.n_img :]], dim=1)}

        if foreign is None:
            return lambda args, extra: finish(run(args))
        return lambda args, extra: finish(foreign(args, {"original_block": run}))

    @contextmanager
    def _cond_hooks(self, flux: Flux, call: _Call, dtype):
        """Forward hooks adding the condition-token adapter deltas, removed after the call."""
        handles = []
        if call.cond_len and self._deltas_cpu:
            deltas = self._deltas(call.cond_tokens.device, dtype)
            t = call.text_len
            starts = {"double": call.n_img, "single": t + call.n_img}
            for path, delta in deltas.items():
                if path == "img_in":
                    continue
                module = flux.get_submodule(path)
                if path.endswith("_mod.lin") or path.endswith("modulation.lin"):
                    handles.append(module.register_forward_hook(_mod_hook(delta)))
                else:
                    start = starts["double" if path.startswith("double_blocks.") else "single"]
                    handles.append(module.register_forward_hook(_rows_hook(delta, start)))
        try:
            yield
        finally:
            for h in handles:
                h.remove()


def _rows_hook(delta: _ModuleDelta, start: int):
    def hook(module, inputs, output):
        x = inputs[0]
        delta.apply(x[:, start:], output[:, start:])
        return output

    return hook


def _mod_hook(delta: _ModuleDelta):
    """Modulation Linears see silu(vec) stacked as (B, 2, ..., D) when condition tokens are present
    (whichever layout :mod:`.comfyui_compat` measured); index 1 is the t = 0 vector of the
    condition tokens."""

    def hook(module, inputs, output):
        x = inputs[0]
        if x.ndim >= 3 and x.shape[1] == 2:
            delta.apply(x[:, 1:], output[:, 1:])
        return output

    return hook


def _override(previous):
    def override(func, *args, **kwargs):
        mask = kwargs.get("mask")
        if isinstance(mask, LayerMask):
            q, k, v, heads = args[:4]
            if not kwargs.get("skip_reshape", False):
                b, n, _ = q.shape
                q, k, v = (t.view(b, -1, heads, t.shape[-1] // heads).transpose(1, 2) for t in (q, k, v))
            out = mask.kernel(q, k, v, mask.rule)
            if kwargs.get("skip_output_reshape", False):
                return out
            b, h, n, d = out.shape
            return out.transpose(1, 2).reshape(b, n, h * d)
        if previous is not None:
            return previous(func, *args, **kwargs)
        return func(*args, **kwargs)

    return override


# ----------------------------------------------------------------------------------------------
# entry point


def apply_seg2any(
    model_patcher,
    lora: Seg2AnyLora | None,
    strength_default: float = 1.0,
    strength_cond: float = 1.0,
    backend: str = "auto",
):
    """Return a patched clone of ``model_patcher`` running the Seg2Any forward."""
    flux = flux_of(model_patcher)
    internals = flux_internals()  # refuses an unrecognised ComfyUI before anything is sampled
    for t in (comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL,):
        if model_patcher.get_wrappers(t, KEY):
            raise ModelMismatchError("this MODEL already has a Seg2Any LoRA applied; load it once per model")
    dims = flux_dims(flux)
    m = model_patcher.clone()
    if lora is not None:
        validate(lora, dims)
        if strength_default != 0:
            m.add_patches(default_patches(m, lora, dims), strength_default)
    patch = Seg2AnyPatch(
        lora,
        strength_default,
        strength_cond,
        backend,
        model_patcher.model.latent_format.process_in,
        internals,
        trained_resolution(model_patcher),
    )
    patch._deltas_cpu = cond_deltas(lora, dims, strength_default, strength_cond)
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, KEY, patch.diffusion_model)
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, KEY, patch.outer_sample)
    return m
