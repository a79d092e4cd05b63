"""Per-step latency (and, on CUDA, peak memory) of plain FLUX vs Seg2Any vs the official
dense-bias approach, on ComfyUI's FLUX with random weights.

    python -m tests.benchmarks.step_latency --dims small --sizes 512 1024 --entities 4 20
    python -m tests.benchmarks.step_latency --dims flux --device cuda --dtype bf16   # FLUX.1-dev sizes

"plain" runs stock FLUX over the same total token count as the Seg2Any call (the extra tokens
as text), so the ratio isolates what masks, condition-token modulation and routed LoRA cost.
"dense" is Seg2Any with the official attention: a float bias for every pair, expanded over heads.
The attention rows time one isolation-layer attention call against unmasked SDPA on the same
q/k/v. Medians over --repeat runs after --warmup runs; the spread is min..max.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

DIMS = {
    "tiny": dict(
        hidden_size=128, num_heads=2, axes_dim=[16, 24, 24], depth=2, depth_single_blocks=2, context_in_dim=64, vec_in_dim=32
    ),
    "small": dict(
        hidden_size=384, num_heads=6, axes_dim=[8, 28, 28], depth=2, depth_single_blocks=4, context_in_dim=128, vec_in_dim=64
    ),
    "flux": dict(),  # FLUX.1-dev: 3072 wide, 24 heads, 19 double + 38 single blocks
}


def setup_comfy():
    path = os.environ.get("COMFYUI_PATH", "/opt/ComfyUI")
    sys.path.insert(0, path)
    import comfy.cli_args

    if not torch.cuda.is_available():
        comfy.cli_args.args.cpu = True
    comfy.cli_args.args.use_pytorch_cross_attention = True
    import comfy.model_management  # noqa: F401


def grid_layout(size: int, n: int):
    """n rectangles on a near-square grid with background gutters (like the badge example)."""
    from seg2any.layout import layout_from_masks

    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    masks = []
    ch, cw = size // rows, size // cols
    for i in range(n):
        m = np.zeros((size, size), bool)
        r, c = divmod(i, cols)
        m[r * ch + ch // 8 : (r + 1) * ch - ch // 8, c * cw + cw // 8 : (c + 1) * cw - cw // 8] = True
        masks.append(m)
    return layout_from_masks("a scene", masks, [f"entity {i}" for i in range(n)])


def timed(fn, warmup, repeat, cuda):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), max(times)


def peak(fn, cuda):
    if not cuda:
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**20


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", choices=sorted(DIMS), default="small")
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--entities", type=int, nargs="+", default=[4, 20])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="bf16" if torch.cuda.is_available() else "fp32")
    ap.add_argument("--rank", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--backends", nargs="+", default=["auto", "dense"])
    args = ap.parse_args(argv)

    setup_comfy()
    from seg2any.adapters.comfyui import COND_KEY, Seg2AnyBatch, apply_seg2any
    from seg2any.adapters.comfyui_models import build_flux, flux_params
    from seg2any.attention_kernels import MaskedAttention, resolve_backend
    from seg2any.attention_rules import MaskRule, SequencePlan
    from seg2any.condition_tokens import ConditionTokens, keep_mask_from_contour
    from seg2any.conditioning import Seg2AnyConditioning
    from seg2any.contour import entity_contour_map
    from tests.support.tiny_flux import random_lora

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    p = flux_params(**DIMS[args.dims])
    base = build_flux(p, None, dtype=dtype)
    dm = base.model.diffusion_model
    with torch.no_grad():
        for t in dm.state_dict().values():
            t.copy_((torch.randn_like(t, dtype=torch.float32) / np.sqrt(t.shape[-1] if t.ndim > 1 else 50)).to(t.dtype))
    dm.to(dev)
    lora = random_lora(p, rank=args.rank)
    print(f"# model {args.dims}: hidden {p['hidden_size']}, {p['depth']}+{p['depth_single_blocks']} blocks, {args.dtype}, {dev}")
    if cuda:
        print(f"# {torch.cuda.get_device_name()}, torch {torch.__version__}")
    rows = []
    for size in args.sizes:
        for n in args.entities:
            lay = grid_layout(size, n)
            text_lens = (60,) + (15,) * n
            keep = keep_mask_from_contour(entity_contour_map(lay.masks, size, size, 2))
            cond = ConditionTokens(torch.randn(1, 16, size // 16, size // 16), keep, 2, (size, size))
            info = Seg2AnyConditioning(lay, text_lens, cond, mode="hard")
            T, n_img, C = info.n_text, (size // 16) ** 2, cond.count
            x = torch.randn(1, 16, size // 8, size // 8, device=dev, dtype=dtype)
            t = torch.tensor([0.5], device=dev)
            g = torch.tensor([3.5], device=dev)
            y = torch.randn(1, p["vec_in_dim"], device=dev, dtype=dtype)
            ctx = torch.randn(1, T, p["context_in_dim"], device=dev, dtype=dtype)
            ctx_plain = torch.randn(1, T + C, p["context_in_dim"], device=dev, dtype=dtype)

            def call(model, context, infos=None):
                kw = {} if infos is None else {COND_KEY: Seg2AnyBatch(infos)}
                with torch.no_grad():
                    return dm(
                        x,
                        t,
                        context=context,
                        y=y,
                        guidance=g,
                        control=None,
                        transformer_options={"wrappers": model.wrappers},
                        **kw,
                    )

            results = {"plain": timed(lambda: call(base, ctx_plain), args.warmup, args.repeat, cuda)}
            mem = {"plain": peak(lambda: call(base, ctx_plain), cuda)}
            for be in args.backends:
                m = apply_seg2any(base, lora, backend=be)
                label = "seg2any-" + (resolve_backend(be, dev) if be == "auto" else be)
                results[label] = timed(lambda: call(m, ctx, [info]), args.warmup, args.repeat, cuda)
                mem[label] = peak(lambda: call(m, ctx, [info]), cuda)
                m.get_wrappers("outer_sample", "seg2any")[0].__self__.release()

            # one isolation-layer attention call vs unmasked SDPA over the same tokens
            plan = SequencePlan.build(
                [info.row((size // 16, size // 16))],
                bucket=128 if resolve_backend("auto", dev) == "flex" else 1,
                reorder=resolve_backend("auto", dev) == "flex",
            )
            tags = plan.tags(dev)
            L, H, D = plan.length, p["num_heads"], p["hidden_size"] // p["num_heads"]
            q, k, v = (torch.randn(1, H, L, D, device=dev, dtype=dtype) for _ in range(3))
            att = {}
            for be in ("auto", "dense"):
                kern = MaskedAttention(tags, resolve_backend(be, dev))
                att[f"attn-hard-{kern.backend}"] = timed(lambda: kern(q, k, v, MaskRule(True)), args.warmup, args.repeat, cuda)
            att["attn-unmasked-sdpa"] = timed(
                lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v), args.warmup, args.repeat, cuda
            )
            rows.append((size, n, T, n_img, C, L, results, mem, att))

    print()
    print("| px | entities | tokens (text+img+cond) | config | step median ms | spread ms | vs plain | peak MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for size, n, T, n_img, C, L, results, mem, att in rows:
        plain = results["plain"][0]
        for name, (med, lo, hi) in results.items():
            pk = "n/a" if mem[name] is None else f"{mem[name]:.0f}"
            print(
                f"| {size} | {n} | {T}+{n_img}+{C}={L} | {name} | {med * 1e3:.1f} | {lo * 1e3:.1f}..{hi * 1e3:.1f} | {med / plain:.2f}x | {pk} |"
            )
        un = att["attn-unmasked-sdpa"][0]
        for name, (med, lo, hi) in att.items():
            print(
                f"| {size} | {n} | L={L} | {name} | {med * 1e3:.2f} | {lo * 1e3:.2f}..{hi * 1e3:.2f} | {med / un:.2f}x of unmasked | |"
            )


if __name__ == "__main__":
    main()
