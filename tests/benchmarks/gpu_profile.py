"""Where one Seg2Any step's time goes (torch.profiler, plain vs each given backend) and how sparse
each rule's work is (split pieces, flex tiles), FLUX.1-dev dims with random weights by default.

    python -m tests.benchmarks.gpu_profile --dims flux --device cuda --size 1024 --entities 20
"""

from __future__ import annotations

import argparse

import torch

from seg2any.flux import spec as flux
from tests.benchmarks.step_latency import DIMS, Bench, release, setup_comfy


def sparsity(bench: Bench, info, size: int):
    from seg2any.attention.flex import tile_classes
    from seg2any.attention.rules import MaskRule, SequencePlan
    from seg2any.attention.split import plan_split

    grid = flux.token_grid(size, size)
    plan = SequencePlan.build([info.row(grid)], reorder=True)
    tags = plan.tags(bench.dev)
    L = plan.length
    for rule in (MaskRule(False), MaskRule(True)):
        sp = plan_split(tags, rule)
        part, full = tile_classes(tags, rule, 0)
        n = part.numel()
        print(
            f"# {'isolation' if rule.isolate else 'base'} rule, L={L}: split {len(sp.calls)} calls, {sp.n_pieces} pieces, "
            f"visible pairs {sp.n_pairs / L / L:.3f} of L^2; flex 128-tiles: full {int(full.sum()) / n:.2f}, "
            f"partial {int(part.sum()) / n:.2f}, empty {1 - int((part | full).sum()) / n:.2f}"
        )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dims", choices=sorted(DIMS), default="flux")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="bf16")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--entities", type=int, default=20)
    ap.add_argument("--rank", type=int, default=64)
    ap.add_argument("--backends", nargs="+", default=["auto", "sdpa"])
    args = ap.parse_args(argv)
    setup_comfy()
    from torch.profiler import ProfilerActivity, profile

    bench = Bench(args.dims, args.device, {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype], args.rank)
    info = bench.info(args.size, args.entities)
    x = bench.latent(args.size)
    ctx, ctx_plain = bench.text(info.n_text), bench.text(info.n_text + info.condition.count)
    sparsity(bench, info, args.size)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if bench.cuda else [])
    sort = "cuda_time_total" if bench.cuda else "cpu_time_total"
    runs = [("plain", bench.base, ctx_plain, None)] + [(f"seg2any-{b}", bench.patched(b), ctx, [info]) for b in args.backends]
    for name, model, c, infos in runs:
        for _ in range(2):
            bench.call(model, x, c, infos)
        if bench.cuda:
            torch.cuda.synchronize()
        with profile(activities=acts) as prof:
            bench.call(model, x, c, infos)
            if bench.cuda:
                torch.cuda.synchronize()
        print(f"\n### profile {name}, {args.size} px / {args.entities} entities")
        print(prof.key_averages().table(sort_by=sort, row_limit=20, max_name_column_width=60))
        if infos is not None:
            release(model)


if __name__ == "__main__":
    main()
