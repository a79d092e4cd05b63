"""Max error of every attention backend against the float64 reference, on the core tests' random
layouts (CPU) or, with --device cuda, in bf16 on the GPU. Prints the table in BENCHMARKS.md.

    python -m tests.benchmarks.exactness [--device cuda]
"""

from __future__ import annotations

import argparse

import torch

from seg2any.attention.backends import AUTO, REGISTRY
from seg2any.attention.kernels import MaskedAttention
from tests.core.test_kernels import CASES, RULES
from tests.support.attention_cases import plan_of, qkv, reference


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    cuda = args.device.startswith("cuda")
    print("| backend | inputs | max abs error | max relative (Frobenius) error |")
    print("|---|---|---|---|")
    for be in [n for n in REGISTRY if n != AUTO]:
        dt = torch.bfloat16 if cuda else (torch.float32 if REGISTRY[be].compiles else torch.float64)
        worst_abs = worst_rel = 0.0
        for seed, specs in CASES.values():
            for reorder in (False, True):
                plan = plan_of(seed, specs, reorder=reorder, bucket=REGISTRY[be].seq_multiple)
                tags = plan.tags(args.device)
                q, k, v = qkv(plan.batch, 2, plan.length, 16, seed=seed, dtype=dt, device=args.device)
                att = MaskedAttention(tags, be, contiguous=reorder)
                for rule in RULES:
                    d = att(q, k, v, rule).double() - (want := reference(q, k, v, tags, rule))
                    worst_abs = max(worst_abs, d.abs().max().item())
                    worst_rel = max(worst_rel, (d.norm() / want.norm()).item())
        kind = str(dt).replace("torch.", "") + (" eager" if REGISTRY[be].compiles and not cuda else "")
        print(f"| {be} | {kind} | {worst_abs:.1e} | {worst_rel:.1e} |")


if __name__ == "__main__":
    main()
