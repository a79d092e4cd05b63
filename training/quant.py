"""A quantised frozen FLUX base under full-precision LoRA adapters (``--base-quant fp8|nf4``).

FLUX.1-dev's transformer is 23.8 GB in bf16, which with the adapters, their gradients and AdamW
state does not fit a 24 GB card. The base never learns, so its Linear weights can be stored
smaller and expanded to the compute dtype one layer at a time:

* ``fp8``: float8_e4m3fn with one float32 scale per weight tensor (amax / 448, so the largest
  weight lands on the format's largest value). Pure PyTorch, so it also runs (and is tested) on a
  CPU. The backward keeps the 1-byte weight, not the expanded copy, so gradient memory does not
  grow back to bf16 size through autograd's saved tensors.
* ``nf4``: bitsandbytes' ``Linear4bit`` (4-bit NormalFloat, double-quantised block scales), CUDA only.

Only the base Linears are replaced: the PEFT wrappers keep their ``base_layer`` slot (now the
quantised module) and their ``lora_A``/``lora_B`` stay full-precision Linears, applied on top as
before (:func:`seg2any.adapters.diffusers.routed` calls ``base_layer(x)`` and adds the update).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FP8 = torch.float8_e4m3fn
FP8_MAX = float(torch.finfo(FP8).max)  # 448
QUANT_CHOICES = ("none", "fp8", "nf4")


def fp8_quantize(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(float8 weight, float32 per-tensor scale) with ``weight ~= q.float() * scale``."""
    w = weight.detach().float()
    amax = w.abs().max()
    scale = (amax / FP8_MAX).clamp(min=1e-12)
    return (w / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8), scale.reshape(())


class _Fp8Matmul(torch.autograd.Function):
    """``x @ dequant(q).T + bias`` whose backward re-expands ``q`` instead of saving the expanded weight."""

    @staticmethod
    def forward(ctx, x, q, scale, bias):
        w = q.to(x.dtype) * scale.to(x.dtype)
        ctx.save_for_backward(q, scale)
        return F.linear(x, w, None if bias is None else bias.to(x.dtype))

    @staticmethod
    def backward(ctx, grad):
        q, scale = ctx.saved_tensors
        w = q.to(grad.dtype) * scale.to(grad.dtype)
        return grad @ w, None, None, None


class Fp8Linear(torch.nn.Module):
    """A frozen Linear stored as float8 + scale; the forward computes in the input's dtype.

    The float8 weight is kept as a uint8 buffer (the same bytes): collectives (gloo has no float8)
    and older safetensors handle uint8, and buffers stay out of the optimiser and of DDP's buckets.
    """

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        q, scale = fp8_quantize(linear.weight)
        self.register_buffer("qweight", q.view(torch.uint8))
        self.register_buffer("scale", scale)
        if linear.bias is not None:
            self.bias = torch.nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        else:
            self.bias = None

    @property
    def weight(self) -> torch.Tensor:
        """The dequantised weight (float32), for code that inspects a Linear's weight."""
        return self.qweight.view(FP8).float() * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Fp8Matmul.apply(x, self.qweight.view(FP8), self.scale, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, float8_e4m3fn"


def nf4_linear(linear: torch.nn.Linear, device, compute_dtype):
    """bitsandbytes' 4-bit NormalFloat Linear with the weights of ``linear``, quantised on ``device``."""
    import bitsandbytes as bnb

    q = bnb.nn.Linear4bit(
        linear.in_features, linear.out_features, bias=linear.bias is not None, compute_dtype=compute_dtype, quant_type="nf4"
    )
    q.weight = bnb.nn.Params4bit(linear.weight.detach().to("cpu").contiguous(), requires_grad=False, quant_type="nf4")
    if linear.bias is not None:
        q.bias = torch.nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
    return q.to(device)  # Params4bit quantises when moved to CUDA


def check_quant_available(kind: str, device) -> None:
    """Refuse a quantisation this machine cannot run, naming what is missing (before any model loads)."""
    if kind != "nf4":
        return
    if torch.device(device).type != "cuda":
        raise SystemExit(f"--base-quant nf4 needs a CUDA device (bitsandbytes' 4-bit kernels); this run is on {device}")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as e:
        raise SystemExit("--base-quant nf4 needs bitsandbytes: pip install bitsandbytes") from e


def quantize_base(model, kind: str, device=None, compute_dtype=torch.bfloat16) -> int:
    """Replace the frozen Linears of ``model`` in place; returns how many were replaced.

    Call after the adapters are added (so PEFT wraps plain Linears) and before the optimiser and
    accelerate see the model. ``device`` is where NF4 weights are quantised (CUDA).
    """
    if kind == "none":
        return 0
    if kind not in QUANT_CHOICES:
        raise ValueError(f"unknown base quantisation {kind!r}; choose one of {QUANT_CHOICES}")
    if kind == "nf4":
        check_quant_available(kind, device)
    lora_dicts = {id(m) for n, m in model.named_modules() if n.rsplit(".", 1)[-1] in ("lora_A", "lora_B")}
    todo = []
    for _, parent in model.named_modules():
        if id(parent) in lora_dicts:
            continue
        for attr, child in parent.named_children():
            if type(child) is torch.nn.Linear and not child.weight.requires_grad:
                todo.append((parent, attr, child))
    for parent, attr, lin in todo:
        new = Fp8Linear(lin) if kind == "fp8" else nf4_linear(lin, device, compute_dtype)
        setattr(parent, attr, new)
    return len(todo)


def stored_bytes(model) -> int:
    """Bytes the model's parameters and buffers hold (what the frozen base costs in memory)."""
    tensors = {id(t): t for t in list(model.parameters()) + list(model.buffers())}
    return sum(t.numel() * t.element_size() for t in tensors.values())
