"""The quantised frozen base (``--base-quant``): fp8 on the demo model (CPU), NF4's refusal off CUDA.

References are independent of the code under test: a float64 matmul with the dequantised weight,
hand-chosen weights that float8_e4m3fn represents exactly, the unquantised model's own forward.
"""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("peft")
pytest.importorskip("accelerate")

from seg2any.adapters.diffusers import Seg2AnyFlux, flux_dims  # noqa: E402
from seg2any.flux.lora_format import load_checkpoint, validate  # noqa: E402
from training.models import load_flux  # noqa: E402
from training.quant import FP8, Fp8Linear, check_quant_available, quantize_base, stored_bytes  # noqa: E402
from training.train import main as train_main  # noqa: E402
from training.train import trainable_adapters  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "seg2any", "demo")
BASE = os.path.join(DEMO, "flux.safetensors")
RUN = ["--stage", "seg2any", "--dataset", "synthetic", "--synthetic-size", "4", "--resolution", "64", "--batch-size", "2",
       "--rank", "4", "--lr", "1e-3", "--val-every", "1000", "--val-steps", "1", "--report-to", "none", "--base", BASE,
       "--vae", os.path.join(DEMO, "vae.safetensors"), "--t5", os.path.join(DEMO, "t5.safetensors")]  # fmt: skip


def test_fp8_linear_is_the_dequantised_matmul():
    """Weights on e4m3's grid (224, 112, 56, 448 times amax/448) come back exactly; the output is a
    float64 matmul with the dequantised weight."""
    lin = torch.nn.Linear(2, 2).requires_grad_(False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -0.5], [0.25, 2.0]]))
        lin.bias.copy_(torch.tensor([0.1, -0.2]))
    q = Fp8Linear(lin)
    assert q.qweight.dtype == torch.uint8 and q.qweight.view(FP8).dtype == FP8
    assert q.scale.item() == pytest.approx(2.0 / 448, rel=1e-7)
    assert torch.equal(q.weight, lin.weight)
    x = torch.tensor([[3.0, 4.0]])
    assert torch.allclose(q(x), torch.tensor([[3.0 - 2.0 + 0.1, 0.75 + 8.0 - 0.2]]), rtol=1e-6)

    torch.manual_seed(0)
    big = torch.nn.Linear(96, 40).requires_grad_(False)
    qb = Fp8Linear(big)
    x = torch.randn(7, 96)
    want = x.double() @ qb.weight.double().T + big.bias.double()
    assert torch.allclose(qb(x).double(), want, rtol=1e-5, atol=1e-6)
    err = ((qb.weight - big.weight).norm() / big.weight.norm()).item()
    assert 0 < err < 2**-4  # e4m3 keeps 3 mantissa bits: at most half an ulp, 2^-4 relative


def test_fp8_backward_keeps_the_one_byte_weight():
    """Autograd saves the float8 weight for the backward, not a float32 copy of it, so a quantised
    base costs 1 byte per weight during the backward too; the input gradient is the float64 one."""
    torch.manual_seed(1)
    lin = torch.nn.Linear(64, 48).requires_grad_(False)
    q = Fp8Linear(lin)
    saved = []
    x = torch.randn(5, 64, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        y = q(x)
    assert not [t for t in saved if t.shape == (48, 64) and t.dtype != FP8]
    assert any(t.dtype == FP8 and t.shape == (48, 64) for t in saved)
    g = torch.randn(5, 48)
    y.backward(g)
    assert torch.allclose(x.grad.double(), g.double() @ q.weight.double(), rtol=1e-5, atol=1e-6)


def demo_pair(rank=4):
    """The demo transformer with random (non-zero) adapters, and an fp8-quantised copy of it."""
    t, _ = load_flux(BASE)
    trainable_adapters(t, rank)
    torch.manual_seed(0)
    with torch.no_grad():
        for n, p in t.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    q = copy.deepcopy(t)
    n = quantize_base(q, "fp8")
    return t, q, n


def forward(t, seed=1):
    net = Seg2AnyFlux(t)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 16, net.dims.in_channels, generator=g)
    text = torch.randn(2, 6, t.config.joint_attention_dim, generator=g)
    rules = [None] * (net.dims.n_double + net.dims.n_single)
    return net(x, torch.tensor([0.3, 0.8]), text, None, None, (4, 4), None, rules)


def test_fp8_base_forward_stays_close_and_only_adapters_learn():
    """Measured on the demo model: quantising the Linear weights alone moves them by 2.6% (relative
    L2 over all base Linears); the whole forward then moves by 3.9% (a few layers' worth of that
    error, no blow-up). The bound, 8%, is twice the measured forward error and well under what
    the unquantised output varies by between two noise levels. Every adapter weight still gets a
    gradient close to the unquantised model's; nothing of the base does."""
    t, q, n = demo_pair()
    linears = {name: m for name, m in t.named_modules() if type(m) is torch.nn.Linear and "lora_" not in name}
    assert n == len(linears) > 0
    qmods = dict(q.named_modules())
    num = sum((qmods[name].weight - m.weight).square().sum() for name, m in linears.items())
    den = sum(m.weight.square().sum() for m in linears.values())
    weight_err = (num / den).sqrt().item()
    y, yq = forward(t), forward(q)
    out_err = ((yq - y).norm() / y.norm()).item()
    print(f"fp8: weight error {weight_err:.4f}, forward error {out_err:.4f}")
    assert 0.005 < weight_err < 0.05
    assert 0 < out_err < 0.08
    assert out_err < 4 * weight_err

    (y.square().mean()).backward()
    (yq.square().mean()).backward()
    assert not [n for n, p in q.named_parameters() if p.requires_grad and "lora_" not in n]
    assert all(b.grad is None for b in q.buffers())
    gt = {n: p.grad for n, p in t.named_parameters() if p.requires_grad}
    gq = {n: p.grad for n, p in q.named_parameters() if p.requires_grad}
    assert gt.keys() == gq.keys() and all(g is not None for g in gq.values())
    flat_t = torch.cat([g.flatten() for g in gt.values()])
    flat_q = torch.cat([gq[k].flatten() for k in gt])
    assert torch.nn.functional.cosine_similarity(flat_t, flat_q, dim=0) > 0.99
    assert flat_q.abs().max() > 0


def test_fp8_base_stores_half_the_bytes_of_bf16():
    """The Linear weights take 1 byte each (+ a 4-byte scale per tensor) where bf16 takes 2; the
    whole demo base, biases and norms included, comes to about half."""
    t, q, _ = demo_pair()
    base = t.get_base_model() if hasattr(t, "get_base_model") else t
    bf16 = sum(p.numel() * 2 for n, p in base.named_parameters() if "lora_" not in n)
    fp8 = stored_bytes(q) - sum(p.numel() * 4 for n, p in q.named_parameters() if "lora_" in n)
    lin = [m for m in q.modules() if isinstance(m, Fp8Linear)]
    assert sum(m.qweight.numel() for m in lin) * 2 == sum(m.weight.numel() for m in lin) * 2
    ratio = fp8 / bf16
    print(f"demo base: bf16 {bf16} bytes, fp8 {fp8} bytes, ratio {ratio:.3f}")
    # all Linear parameters but biases are weights: ratio just above 0.5 (biases, norms, embeddings keep fp32 here)
    assert 0.5 < ratio < 0.56


def test_nf4_is_refused_where_it_cannot_run(tmp_path):
    """NF4 needs CUDA and bitsandbytes; without them the run stops before loading, naming what is missing."""
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="needs a CUDA device"):
            train_main([*RUN, "--base-quant", "nf4", "--steps", "1", "--out", str(tmp_path / "nf4")])
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        with pytest.raises(SystemExit, match="needs bitsandbytes"):
            check_quant_available("nf4", "cuda")
    with pytest.raises(SystemExit, match="for --stage seg2any"):
        train_main([*RUN, "--stage", "t2i", "--base-quant", "fp8", "--steps", "1", "--out", str(tmp_path / "t2i")])


def test_training_on_an_fp8_base_exports_a_lora_that_loads(tmp_path):
    """Two steps on the fp8 demo base: the adapters train (finite losses, non-zero up-projections)
    and the exported checkpoint loads through the pack's loader and fits the unquantised model."""
    import json

    ckpt = train_main([*RUN, "--steps", "2", "--save-every", "2", "--base-quant", "fp8", "--out", str(tmp_path / "fp8")])
    with open(tmp_path / "fp8" / "train_log.json") as f:
        loss = json.load(f)["loss"]
    assert len(loss) == 2 and all(np.isfinite(loss))
    lora = load_checkpoint(ckpt)
    validate(lora, flux_dims(load_flux(BASE)[0]))
    assert lora.rank == 4 and any(f.up.abs().max() > 0 for f in lora.default.values())


def test_readme_memory_table_is_the_computed_one():
    """README's per-GPU memory table is what ``python -m training.memory`` computes from the real
    classes, and its bf16 row is the hand count: 11.90 B parameters x 2 bytes."""
    from training.memory import count_parameters, table

    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    start, end = "<!-- memory-table:start -->\n", "\n<!-- memory-table:end -->"
    assert start in readme and end in readme
    got = table()
    assert readme.split(start)[1].split(end)[0] == got, "README's memory table is stale: python -m training.memory"
    c = count_parameters()
    assert round(c["base"] * 2 / 1e9, 1) == 23.8 and "| DDP, bf16, AdamW | 23.8 GB |" in got
