"""Seg2Any LoRA checkpoints: the official two-adapter layout, validation, and name mapping.

The official trainer saves (through diffusers' ``save_lora_weights``) one checkpoint directory::

    checkpoint-20000/default/pytorch_lora_weights.safetensors   # text + image tokens
    checkpoint-20000/cond/pytorch_lora_weights.safetensors      # condition tokens only

with PEFT keys in diffusers module names, e.g.
``transformer.transformer_blocks.7.attn.to_q.lora_A.weight`` (A: [r, in], B: [out, r]) and
lora_alpha == r (scale 1). We read that directory, either of its two files, or one combined
file whose keys carry the adapter name PEFT-style (``...to_q.lora_A.cond.weight``). Anything
that does not fit is refused with the list of offending keys: a partial load would silently
produce a different model.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

import torch

from ..errors import LoraFormatError
from . import spec

ADAPTERS = ("default", "cond")
FILE_NAME = "pytorch_lora_weights.safetensors"

# the module lists of the two adapters (diffusers names inside a block), read from the spec
DOUBLE_DEFAULT = tuple(spec.DOUBLE_LINEARS)
DOUBLE_COND = spec.COND_DOUBLE_LINEARS
SINGLE_BOTH = tuple(spec.SINGLE_LINEARS)


def default_targets(n_double: int, n_single: int) -> list[str]:
    """Every Linear inside the DiT blocks (the official ``all-linear-in-dit-blocks``)."""
    out = [f"{spec.DIFFUSERS_DOUBLE}.{i}.{m}" for i in range(n_double) for m in DOUBLE_DEFAULT]
    out += [f"{spec.DIFFUSERS_SINGLE}.{i}.{m}" for i in range(n_single) for m in SINGLE_BOTH]
    return out


def cond_targets(n_double: int, n_single: int) -> list[str]:
    """x_embedder plus the image-branch Linears that condition tokens pass through."""
    out = [spec.X_EMBEDDER[0]]
    out += [f"{spec.DIFFUSERS_DOUBLE}.{i}.{m}" for i in range(n_double) for m in DOUBLE_COND]
    out += [f"{spec.DIFFUSERS_SINGLE}.{i}.{m}" for i in range(n_single) for m in SINGLE_BOTH]
    return out


@dataclass(frozen=True)
class ModelDims:
    """The FLUX sizes a checkpoint must fit."""

    n_double: int
    n_single: int
    hidden: int
    mlp_hidden: int
    in_channels: int  # packed: 4 x latent channels (spec.PACKED_CHANNELS for FLUX)

    def linear_shape(self, name: str) -> tuple[int, int]:
        """(in_features, out_features) of a diffusers module name."""
        h, m = self.hidden, self.mlp_hidden
        if name == spec.X_EMBEDDER[0]:
            return self.in_channels, h
        suffix = name.split(".", 2)[2]
        if name.startswith(spec.DIFFUSERS_DOUBLE + "."):
            return {
                "norm1.linear": (h, 6 * h),
                "norm1_context.linear": (h, 6 * h),
                "ff.net.0.proj": (h, m),
                "ff.net.2": (m, h),
                "ff_context.net.0.proj": (h, m),
                "ff_context.net.2": (m, h),
            }.get(suffix, (h, h))
        return {"norm.linear": (h, 3 * h), "proj_mlp": (h, m), "proj_out": (h + m, h)}.get(suffix, (h, h))

    def comfy_target(self, name: str) -> tuple[str, int, int]:
        """(ComfyUI module path, first output row, row count) a diffusers module maps onto.

        ComfyUI fuses q/k/v (and, in single blocks, the MLP input) into one Linear; the LoRA of
        one diffusers module then covers a slice of the fused output rows (:data:`spec.DOUBLE_LINEARS`).
        """
        h = self.hidden
        if name == spec.X_EMBEDDER[0]:
            return spec.X_EMBEDDER[1], 0, h
        kind, i, suffix = name.split(".", 2)
        double = kind == spec.DIFFUSERS_DOUBLE
        module, slot = (spec.DOUBLE_LINEARS if double else spec.SINGLE_LINEARS)[suffix]
        n = self.linear_shape(name)[1]
        path = f"{spec.COMFY_DOUBLE if double else spec.COMFY_SINGLE}.{i}.{module}"
        return path, (0 if slot is None else slot * h), n


@dataclass(frozen=True, eq=False)
class LoraFactor:
    """One module's low-rank update: delta W = scale * B @ A."""

    down: torch.Tensor  # A: (r, in)
    up: torch.Tensor  # B: (out, r)
    scale: float = 1.0

    @property
    def rank(self) -> int:
        return int(self.down.shape[0])


@dataclass(eq=False)
class Seg2AnyLora:
    """Both adapters, keyed by diffusers module name (no ``transformer.`` prefix)."""

    default: dict[str, LoraFactor]
    cond: dict[str, LoraFactor]
    source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def rank(self) -> int:
        f = next(iter(self.default.values()), None) or next(iter(self.cond.values()), None)
        return f.rank if f else 0

    def adapter(self, name: str) -> dict[str, LoraFactor]:
        return self.default if name == "default" else self.cond

    def infer_dims(self) -> tuple[int, int]:
        """(n_double, n_single) implied by the module names."""
        nd = ns = 0
        for d in (self.default, self.cond):
            for k in d:
                m = re.match(r"(single_transformer_blocks|transformer_blocks)\.(\d+)\.", k)
                if m and m.group(1) == "transformer_blocks":
                    nd = max(nd, int(m.group(2)) + 1)
                elif m:
                    ns = max(ns, int(m.group(2)) + 1)
        return nd, ns


# ----------------------------------------------------------------------------------------------
# reading

_KEY = re.compile(
    r"^(?:base_model\.model\.)?(?:transformer\.)?(?P<mod>.+?)\.lora_(?P<ab>A|B)(?:\.(?P<adapter>[A-Za-z0-9_]+))?\.weight$"
)
_ALPHA = re.compile(r"^(?:base_model\.model\.)?(?:transformer\.)?(?P<mod>.+?)\.alpha$")


def _read_safetensors(path: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            return {k: f.get_tensor(k) for k in f.keys()}, meta
    except Exception as exc:
        raise LoraFormatError(f"cannot read {path} as safetensors: {exc}") from exc


def _alpha_from_meta(meta: dict[str, str], adapter: str) -> float | None:
    """diffusers >= 0.33 stores the PEFT config (lora_alpha, r) in the safetensors metadata."""
    for key in ("transformer_lora_adapter_metadata", "lora_adapter_metadata"):
        if key in meta:
            try:
                cfg = json.loads(meta[key])
                cfg = cfg.get(adapter, cfg)
                if "lora_alpha" in cfg and "r" in cfg:
                    return float(cfg["lora_alpha"]) / float(cfg["r"])
            except (ValueError, AttributeError, TypeError):
                return None
    return None


def _factors_from_sd(sd: dict[str, torch.Tensor], path: str, fixed_adapter: str | None, meta_scale: dict) -> dict:
    """Group tensors into {adapter: {module: LoraFactor}}; unknown keys raise with their names."""
    halves: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    alphas: dict[tuple[str, str], float] = {}
    unknown = []
    for k, t in sd.items():
        m = _KEY.match(k)
        if m:
            adapter = m.group("adapter") or fixed_adapter
            if adapter is None:
                unknown.append(k)
                continue
            if fixed_adapter is not None and m.group("adapter") not in (None, fixed_adapter):
                unknown.append(k)
                continue
            halves.setdefault((adapter, m.group("mod")), {})[m.group("ab")] = t
            continue
        m = _ALPHA.match(k)
        if m and fixed_adapter is not None:
            alphas[(fixed_adapter, m.group("mod"))] = float(t.item())
            continue
        unknown.append(k)
    if unknown:
        shown = ", ".join(unknown[:6]) + (f" (+{len(unknown) - 6} more)" if len(unknown) > 6 else "")
        raise LoraFormatError(
            f"{os.path.basename(path)}: {len(unknown)} key(s) are not Seg2Any LoRA keys "
            f"('<module>.lora_A/B[.adapter].weight' in diffusers FLUX names): {shown}"
        )
    out: dict[str, dict[str, LoraFactor]] = {}
    incomplete = []
    for (adapter, mod), ab in halves.items():
        if set(ab) != {"A", "B"}:
            incomplete.append(f"{adapter}:{mod} (only lora_{''.join(ab)})")
            continue
        r = ab["A"].shape[0]
        scale = 1.0
        if (adapter, mod) in alphas:
            scale = alphas[(adapter, mod)] / r
        elif meta_scale.get(adapter) is not None:
            scale = meta_scale[adapter]
        out.setdefault(adapter, {})[mod] = LoraFactor(ab["A"], ab["B"], scale)
    if incomplete:
        raise LoraFormatError(f"{os.path.basename(path)}: LoRA pairs missing a half: {', '.join(incomplete[:6])}")
    return out


def load_checkpoint(path: str) -> Seg2AnyLora:
    """Read a Seg2Any checkpoint: the official directory, one of its two files, or a combined file."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        directory = path
    elif os.path.isfile(path):
        parent = os.path.basename(os.path.dirname(path))
        if parent in ADAPTERS and os.path.basename(path) == FILE_NAME:
            directory = os.path.dirname(os.path.dirname(path))
        else:
            return _load_combined(path)
    else:
        raise LoraFormatError(f"no Seg2Any checkpoint at {path}")
    found = {a: os.path.join(directory, a, FILE_NAME) for a in ADAPTERS}
    if not os.path.exists(found["default"]):
        raise LoraFormatError(
            f"{directory} is not a Seg2Any checkpoint: it has no default/{FILE_NAME} "
            f"(expected default/ and cond/ sub-folders as written by the official trainer)"
        )
    adapters: dict[str, dict[str, LoraFactor]] = {"default": {}, "cond": {}}
    notes = []
    for a, fp in found.items():
        if not os.path.exists(fp):
            notes.append(
                "no cond/ adapter in this checkpoint: condition tokens will use the base weights "
                "(as the official pipeline does when cond/ is absent)"
            )
            continue
        sd, meta = _read_safetensors(fp)
        got = _factors_from_sd(sd, fp, a, {a: _alpha_from_meta(meta, a)})
        extra = set(got) - {a}
        if extra:
            raise LoraFormatError(f"{fp}: holds adapter(s) {sorted(extra)} but lives in the {a}/ folder")
        adapters[a] = got.get(a, {})
    return Seg2AnyLora(adapters["default"], adapters["cond"], source=directory, notes=notes)


def _load_combined(path: str) -> Seg2AnyLora:
    sd, meta = _read_safetensors(path)
    scales = {a: _alpha_from_meta(meta, a) for a in ADAPTERS}
    got = _factors_from_sd(sd, path, None, scales)
    other = set(got) - set(ADAPTERS)
    if other or "default" not in got:
        raise LoraFormatError(
            f"{os.path.basename(path)} is not a Seg2Any checkpoint: expected adapters 'default' and 'cond' "
            f"(keys like '...to_q.lora_A.cond.weight' or the official default/ + cond/ folders), found "
            f"{sorted(got) or 'no adapter names'}"
        )
    notes = [] if "cond" in got else ["no 'cond' adapter in this file: condition tokens use the base weights"]
    return Seg2AnyLora(got["default"], got.get("cond", {}), source=path, notes=notes)


def validate(lora: Seg2AnyLora, dims: ModelDims) -> None:
    """Every key must name a target of its adapter in a model of ``dims``, with matching shapes."""
    problems = []
    allowed = {
        "default": set(default_targets(dims.n_double, dims.n_single)),
        "cond": set(cond_targets(dims.n_double, dims.n_single)),
    }
    ranks = set()
    for a in ADAPTERS:
        for name, f in lora.adapter(a).items():
            if name not in allowed[a]:
                problems.append(
                    f"{a}:{name} is not a module the '{a}' adapter targets in a {dims.n_double}+{dims.n_single}-block FLUX"
                )
                continue
            fin, fout = dims.linear_shape(name)
            if (
                f.down.ndim != 2
                or f.up.ndim != 2
                or f.down.shape[1] != fin
                or f.up.shape[0] != fout
                or f.up.shape[1] != f.down.shape[0]
            ):
                problems.append(
                    f"{a}:{name} has A {tuple(f.down.shape)} / B {tuple(f.up.shape)}, expected A (r, {fin}) / B ({fout}, r)"
                )
            ranks.add(f.rank)
    if problems:
        shown = "; ".join(problems[:6]) + (f" (+{len(problems) - 6} more)" if len(problems) > 6 else "")
        raise LoraFormatError(f"the Seg2Any LoRA at {lora.source} does not fit this model: {shown}")
    if not lora.default:
        raise LoraFormatError(f"the Seg2Any LoRA at {lora.source} has no 'default' adapter tensors")


# ----------------------------------------------------------------------------------------------
# writing


def adapter_state_dict(factors: dict[str, LoraFactor], prefix: str = "transformer.") -> dict[str, torch.Tensor]:
    """Factors -> diffusers/PEFT keys as ``save_lora_weights`` writes them (scale must be 1)."""
    sd = {}
    for name, f in factors.items():
        if f.scale != 1.0:
            raise LoraFormatError(f"{name}: only lora_alpha == r (scale 1) can be written in the official layout")
        sd[f"{prefix}{name}.lora_A.weight"] = f.down.contiguous()
        sd[f"{prefix}{name}.lora_B.weight"] = f.up.contiguous()
    return sd


def write_checkpoint(directory: str, lora: Seg2AnyLora) -> None:
    """Write the official layout: ``directory/{default,cond}/pytorch_lora_weights.safetensors``."""
    from safetensors.torch import save_file

    for a in ADAPTERS:
        factors = lora.adapter(a)
        if not factors:
            continue
        os.makedirs(os.path.join(directory, a), exist_ok=True)
        save_file(adapter_state_dict(factors), os.path.join(directory, a, FILE_NAME), metadata={"format": "pt"})


def write_combined(path: str, lora: Seg2AnyLora) -> None:
    """One file with PEFT adapter-named keys (``...lora_A.cond.weight``) for easy sharing."""
    from safetensors.torch import save_file

    sd = {}
    for a in ADAPTERS:
        for k, t in adapter_state_dict(lora.adapter(a)).items():
            sd[k.replace(".lora_A.weight", f".lora_A.{a}.weight").replace(".lora_B.weight", f".lora_B.{a}.weight")] = t
    save_file(sd, path, metadata={"format": "pt", "seg2any": "default+cond"})


# ----------------------------------------------------------------------------------------------
# recognising a checkpoint without loading it (the loader's file list)


def header_keys(path: str) -> list[str] | None:
    """Tensor names from a safetensors header, reading only the header (None: not safetensors)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(8)
            n = int.from_bytes(raw, "little") if len(raw) == 8 else 0
            if not 2 <= n <= 100_000_000:
                return None
            header = json.loads(f.read(n))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return [k for k in header if k != "__metadata__"] if isinstance(header, dict) else None


def is_seg2any_keys(keys: list[str], adapter: str | None = None) -> bool:
    """Whether ``keys`` are what ``load_checkpoint`` accepts: the file of an official ``default/`` or
    ``cond/`` folder (``adapter`` given: plain PEFT keys, alphas allowed), or a combined file whose
    keys name the adapters and include 'default'. Model weights, text encoders, VAEs and ordinary
    LoRAs fail this, so the loader's list leaves them out."""
    seen = set()
    for k in keys:
        m = _KEY.match(k)
        if m:
            name = m.group("adapter") or adapter
            if name not in ADAPTERS or (adapter is not None and name != adapter):
                return False
            seen.add(name)
        elif not (adapter is not None and _ALPHA.match(k)):
            return False
    return bool(seen) and (adapter is not None or "default" in seen)
