"""Per-step latency and peak memory of plain FLUX vs Seg2Any (each attention backend) vs the
official dense-bias approach, on ComfyUI's FLUX with random weights; and a many-layouts run.

    python -m tests.benchmarks.step_latency --dims small --sizes 512 1024 --entities 4 20
    python -m tests.benchmarks.step_latency --dims flux --device cuda          # FLUX.1-dev sizes
    python -m tests.benchmarks.step_latency --dims flux --device cuda --many-layouts 20

"plain" runs stock FLUX over the same total token count as the Seg2Any call (the extra tokens
as text), so the ratio isolates what masks, condition-token modulation and routed LoRA cost.
"dense" is Seg2Any with the official attention: a float bias for every pair, expanded over heads.
The attention rows time one attention call per rule (base / isolation) and backend against
unmasked SDPA on the same q/k/v. Medians over --repeat runs after --warmup runs; spread = min..max.

The model is created on the target device and initialised there (12 B parameters initialised on
the CPU take minutes).

``--many-layouts N`` renders N different layouts in this one process (sizes, entity counts, both
modes, CFG on and off, in turn) and prints, per layout, the first and steady step times, the
compiled graphs so far, whether flex ran unfused, and peak memory; ``--fresh K`` also times K of
them in a fresh process each, for the steady / fresh ratio.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np
import torch

from seg2any.attention.backends import AUTO, DEFAULT, REGISTRY
from seg2any.flux import spec as flux

DIMS = {
    "tiny": dict(
        hidden_size=128, num_heads=2, axes_dim=[16, 24, 24], depth=2, depth_single_blocks=2, context_in_dim=64, vec_in_dim=32
    ),
    "small": dict(
        hidden_size=384, num_heads=6, axes_dim=[8, 28, 28], depth=2, depth_single_blocks=4, context_in_dim=128, vec_in_dim=64
    ),
    "flux": dict(),  # FLUX.1-dev: 3072 wide, 24 heads, 19 double + 38 single blocks
}
MANY_SIZES = (512, 768, 1024, 1280, 1536, 2048)
MANY_ENTITIES = (1, 4, 9, 20, 40, 2, 13, 30, 6, 25)


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
    from seg2any.layout.layout import layout_from_masks

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
    from seg2any.attention.tuning import wall_times

    times = wall_times(fn, torch.device("cuda" if cuda else "cpu"), warmup, repeat)
    return statistics.median(times), min(times), max(times)


def peak(fn, cuda):
    if not cuda:
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**20


def graphs_compiled() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"].get("unique_graphs", 0))


class Bench:
    """A random-weight FLUX on the target device plus everything to call it with a layout."""

    def __init__(self, dims: str, device: str, dtype: torch.dtype, rank: int):
        from seg2any.adapters.comfyui_models import build_flux, flux_params
        from tests.support.tiny_flux import random_lora

        self.dev = torch.device(device)
        self.cuda = self.dev.type == "cuda"
        self.dtype = dtype
        self.p = flux_params(**DIMS[dims])
        with self.dev:  # allocate on the device, so the random init below runs there
            self.base = build_flux(self.p, None, dtype=dtype)
        self.dm = self.base.model.diffusion_model
        self.dm.to(self.dev)
        g = torch.Generator(device=self.dev).manual_seed(0)
        with torch.no_grad():
            for t in self.dm.state_dict().values():
                scale = 1 / np.sqrt(t.shape[-1] if t.ndim > 1 else 50)
                t.copy_(torch.randn(t.shape, generator=g, device=self.dev, dtype=torch.float32).mul_(scale).to(t.dtype))
        self.lora = random_lora(self.p, rank=rank)
        self.y = torch.randn(1, self.p["vec_in_dim"], device=self.dev, dtype=dtype)
        self.t = torch.tensor([0.5], device=self.dev)
        self.g = torch.tensor([3.5], device=self.dev)

    def info(self, size: int, n: int, mode: str = "hard", global_len: int = 60):
        from seg2any.conditioning.condition_tokens import ConditionTokens, keep_mask_from_contour
        from seg2any.conditioning.contour import entity_contour_map
        from seg2any.conditioning.settings import Seg2AnyConditioning

        lay = grid_layout(size, n)
        keep = keep_mask_from_contour(entity_contour_map(lay.masks, size, size, 2))
        cond = ConditionTokens(torch.randn(flux.latent_shape(1, size // 2, size // 2)), keep, 2, (size, size))
        return Seg2AnyConditioning(lay, (global_len,) + (15,) * n, cond, mode=mode)

    def text(self, n_tokens: int, batch: int = 1):
        return torch.randn(batch, n_tokens, self.p["context_in_dim"], device=self.dev, dtype=self.dtype)

    def latent(self, size: int, batch: int = 1):
        return torch.randn(flux.latent_shape(batch, size, size), device=self.dev, dtype=self.dtype)

    def call(self, model, x, context, infos=None):
        from seg2any.adapters.comfyui import COND_KEY, Seg2AnyBatch

        b = x.shape[0]
        kw = {} if infos is None else {COND_KEY: Seg2AnyBatch(infos)}
        with torch.no_grad():
            return self.dm(
                x,
                self.t.expand(b),
                context=context,
                y=self.y.expand(b, -1),
                guidance=self.g.expand(b),
                control=None,
                transformer_options={"wrappers": model.wrappers},
                **kw,
            )

    def patched(self, backend: str):
        from seg2any.adapters.comfyui import apply_seg2any

        return apply_seg2any(self.base, self.lora, backend=backend)


def release(model):
    model.get_wrappers("outer_sample", "seg2any")[0].__self__.release()


# ----------------------------------------------------------------------------------------------
# the step table


def step_table(bench: Bench, args):
    from seg2any.attention.backends import sdpa_masked
    from seg2any.attention.kernels import MaskedAttention, resolve_backend
    from seg2any.attention.rules import MaskRule, SequencePlan

    dev, cuda = bench.dev, bench.cuda
    rows = []
    for size in args.sizes:
        for n in args.entities:
            info = bench.info(size, n)
            T, n_img, C = info.n_text, flux.image_tokens(size, size), info.condition.count
            x = bench.latent(size)
            ctx, ctx_plain = bench.text(T), bench.text(T + C)
            results = {"plain": timed(lambda: bench.call(bench.base, x, ctx_plain), args.warmup, args.repeat, cuda)}
            mem = {"plain": peak(lambda: bench.call(bench.base, x, ctx_plain), cuda)}
            for be in args.backends:
                m = bench.patched(be)
                label = "seg2any-" + resolve_backend(be, dev)
                results[label] = timed(lambda: bench.call(m, x, ctx, [info]), args.warmup, args.repeat, cuda)
                mem[label] = peak(lambda: bench.call(m, x, ctx, [info]), cuda)
                release(m)

            # one attention call per rule and backend vs unmasked SDPA over the same tokens
            plan = SequencePlan.build([info.row(flux.token_grid(size, size))], reorder=True)
            tags = plan.tags(dev)
            L, H, D = plan.length, bench.p["num_heads"], bench.p["hidden_size"] // bench.p["num_heads"]
            q, k, v = (torch.randn(1, H, L, D, device=dev, dtype=bench.dtype) for _ in range(3))
            att = {
                "unmasked-sdpa": timed(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v), 2, args.repeat, cuda)
            }
            for rule in (MaskRule(False), MaskRule(True)):
                name = "isolation" if rule.isolate else "base"
                for be in args.attn_backends:
                    kern = MaskedAttention(tags, be, contiguous=True)
                    try:
                        att[f"{name}-{be}"] = timed(lambda: kern(q, k, v, rule), 2, args.repeat, cuda)
                    except Exception as exc:  # a backend this build lacks: say so in the table
                        print(f"# {name}-{be}: {type(exc).__name__}: {exc}", file=sys.stderr)
                if cuda:  # SDPA's own choice for a masked call (memory-efficient), for reference
                    mask = MaskedAttention(tags, "sdpa").mask_for(rule, q.dtype)
                    att[f"{name}-sdpa-default"] = timed(
                        lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask), 2, args.repeat, cuda
                    )
                    att[f"{name}-sdpa-cudnn"] = timed(lambda: sdpa_masked(q, k, v, mask), 2, args.repeat, cuda)
            rows.append((size, n, T, n_img, C, L, results, mem, att))

    print()
    print("| px | entities | tokens (text+img+cond) | config | step median ms | spread ms | vs plain | peak MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for size, n, T, n_img, C, L, results, mem, _ in rows:
        plain = results["plain"][0]
        for name, (med, lo, hi) in results.items():
            pk = "n/a" if mem[name] is None else f"{mem[name]:.0f}"
            print(
                f"| {size} | {n} | {T}+{n_img}+{C}={L} | {name} | {med * 1e3:.1f} | {lo * 1e3:.1f}..{hi * 1e3:.1f} | {med / plain:.2f}x | {pk} |"
            )
    print()
    print("| px | entities | L | attention call | median ms | spread ms | vs unmasked |")
    print("|---|---|---|---|---|---|---|")
    for size, n, *_, L, _, _, att in rows:
        un = att["unmasked-sdpa"][0]
        for name, (med, lo, hi) in att.items():
            print(f"| {size} | {n} | {L} | {name} | {med * 1e3:.2f} | {lo * 1e3:.2f}..{hi * 1e3:.2f} | {med / un:.2f}x |")


# ----------------------------------------------------------------------------------------------
# many layouts in one process


def many_specs(count: int, sizes):
    """(size, entities, mode, cfg) for layout i: every size, entity count, mode and CFG setting occurs."""
    out = []
    for i in range(count):
        size = sizes[i % len(sizes)]
        n = MANY_ENTITIES[(i * 3) % len(MANY_ENTITIES)]
        out.append((size, n, ("hard", "place")[(i // 2) % 2], i % 2 == 1))
    return out


def run_layout(bench: Bench, model, spec):
    """(first step s, steady step s, unfused warning seen, peak MiB) of one layout."""
    size, n, mode, cfg = spec
    infos = [bench.info(size, n, mode)]
    if cfg:  # true CFG: a negative with the same layout and a different text length, batched
        infos.append(bench.info(size, n, mode, global_len=20))
    x = bench.latent(size, len(infos))
    # ComfyUI repeats unequal texts up to their least common multiple before batching them
    ctx = bench.text(math.lcm(*(i.n_text for i in infos)), len(infos))
    if bench.cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        bench.call(model, x, ctx, infos)
        if bench.cuda:
            torch.cuda.synchronize()
        first = time.perf_counter() - t0
        steady = timed(lambda: bench.call(model, x, ctx, infos), 0, 2, bench.cuda)[0]
    unfused = any("without torch.compile" in str(w.message) for w in caught)
    pk = torch.cuda.max_memory_allocated() / 2**20 if bench.cuda else float("nan")
    release(model)
    return first, steady, unfused, pk


def many_layouts(bench: Bench, args):
    specs = many_specs(args.many_layouts, args.sizes)
    if args.only is not None:  # the fresh-process measurement of one layout
        m = bench.patched(args.backend)
        first, steady, unfused, pk = run_layout(bench, m, specs[args.only])
        print("FRESH " + json.dumps({"i": args.only, "first": first, "steady": steady, "peak": pk}))
        return
    m = bench.patched(args.backend)
    print(f"# many layouts, backend {args.backend}, {len(specs)} layouts in one process")
    print("| # | px | entities | mode | CFG | first step s | steady step s | graphs so far | unfused | peak MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    start = graphs_compiled()
    steady = {}
    for i, spec in enumerate(specs):
        first, st, unfused, pk = run_layout(bench, m, spec)
        steady[i] = st
        size, n, mode, cfg = spec
        print(
            f"| {i} | {size} | {n} | {mode} | {'on' if cfg else 'off'} | {first:.3f} | {st:.3f} | "
            f"{graphs_compiled() - start} | {unfused} | {pk:.0f} |",
            flush=True,
        )
    if not args.fresh:
        return
    picks = sorted({round(j * (len(specs) - 1) / max(args.fresh - 1, 1)) for j in range(args.fresh)})
    print()
    print("| # | steady here s | steady in a fresh process s | ratio |")
    print("|---|---|---|---|")
    for i in picks:
        cmd = [sys.executable, "-m", "tests.benchmarks.step_latency", *args.argv_base, "--only", str(i)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        line = [ln for ln in res.stdout.splitlines() if ln.startswith("FRESH ")]
        if not line:
            print(f"| {i} | {steady[i]:.3f} | failed: {res.stderr[-300:]!r} | |")
            continue
        fresh = json.loads(line[0][6:])["steady"]
        print(f"| {i} | {steady[i]:.3f} | {fresh:.3f} | {steady[i] / fresh:.2f}x |", flush=True)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    cuda = torch.cuda.is_available()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", choices=sorted(DIMS), default="small")
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="default: 512 1024 (table), 512..2048 (many)")
    ap.add_argument("--entities", type=int, nargs="+", default=[4, 20])
    ap.add_argument("--device", default="cuda" if cuda else "cpu")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="bf16" if cuda else "fp32")
    ap.add_argument("--rank", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--backends", nargs="+", default=None, help="step-table backends (default: all on CUDA)")
    ap.add_argument("--attn-backends", nargs="+", default=None)
    ap.add_argument("--many-layouts", type=int, default=0, metavar="N")
    ap.add_argument("--backend", default="auto", help="backend of the many-layouts run")
    ap.add_argument("--fresh", type=int, default=0, metavar="K", help="many-layouts: time K layouts in fresh processes")
    ap.add_argument("--only", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    on_cuda = args.device.startswith("cuda")
    # every registered backend; on a CPU none that needs torch.compile (minutes per graph), and "auto"
    # stands for the default there (they are the same backend off CUDA)
    runnable = [b.name for b in REGISTRY.values() if on_cuda or not b.compiles]
    if args.backends is None:
        args.backends = runnable if on_cuda else [n for n in runnable if n != DEFAULT]
    if args.attn_backends is None:
        args.attn_backends = [n for n in runnable if n != AUTO]
    if args.sizes is None:
        args.sizes = list(MANY_SIZES) if args.many_layouts else [512, 1024]
    args.argv_base = [a for a in argv if a not in ("--fresh",)]
    if "--fresh" in argv:  # the child must not recurse
        i = argv.index("--fresh")
        args.argv_base = argv[:i] + argv[i + 2 :]

    setup_comfy()
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    t0 = time.perf_counter()
    bench = Bench(args.dims, args.device, dtype, args.rank)
    p = bench.p
    print(
        f"# model {args.dims}: hidden {p['hidden_size']}, {p['depth']}+{p['depth_single_blocks']} blocks, {args.dtype}, "
        f"{bench.dev}, built and initialised in {time.perf_counter() - t0:.1f} s"
    )
    print(f"# torch {torch.__version__}" + (f", {torch.cuda.get_device_name()}" if bench.cuda else ""))
    if args.many_layouts:
        many_layouts(bench, args)
    else:
        step_table(bench, args)


if __name__ == "__main__":
    main()
