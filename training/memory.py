"""Per-GPU memory of adapter training on FLUX.1-dev, computed from parameter counts (the README table).

    python -m training.memory            # prints the table README.md holds between its memory-table markers

The counts come from the real classes (diffusers' FluxTransformer2DModel with FLUX.1-dev's sizes
and the trainer's own peft adapters), built on the meta device so nothing is allocated; a test
checks that README.md holds exactly what this prints. Weights, gradients and optimizer state only:
activations depend on resolution, batch and gradient checkpointing and come on top.
"""

from __future__ import annotations

import torch

GB = 1e9
NF4_BLOCK = 64  # bitsandbytes Linear4bit: one absmax per 64 weights
NF4_DOUBLE_BLOCK = 256  # double quantisation: those absmaxes in 8 bits, one fp32 scale per 256 of them


def flux_dev_params() -> dict:
    from seg2any.flux import spec

    return {"in_channels": spec.LATENT_CHANNELS, "out_channels": spec.LATENT_CHANNELS, "vec_in_dim": spec.VEC_IN_DIM,
            "context_in_dim": spec.CONTEXT_DIM, "hidden_size": spec.HIDDEN, "mlp_ratio": spec.MLP_RATIO,
            "num_heads": spec.HEADS, "depth": spec.DOUBLE_BLOCKS, "depth_single_blocks": spec.SINGLE_BLOCKS,
            "axes_dim": list(spec.AXES_DIM), "theta": spec.ROPE_THETA, "patch_size": spec.PATCH, "qkv_bias": True,
            "guidance_embed": True}  # fmt: skip


def count_parameters(rank: int = 64) -> dict[str, int]:
    """Parameter counts of FLUX.1-dev's transformer and the rank-``rank`` Seg2Any adapters."""
    from diffusers import FluxTransformer2DModel

    from seg2any.adapters.diffusers import add_seg2any_adapters
    from seg2any.adapters.diffusers_pipeline import flux_config_from_params

    with torch.device("meta"):
        t = FluxTransformer2DModel(**flux_config_from_params(flux_dev_params()))
        base_linears = [m for m in t.modules() if isinstance(m, torch.nn.Linear)]
        linear_weights = sum(m.weight.numel() for m in base_linears)
        base = sum(p.numel() for p in t.parameters())
        add_seg2any_adapters(t, rank, init=True)
    counts = {"base": base, "linear_weights": linear_weights, "linears": len(base_linears)}
    for adapter in ("default", "cond"):
        counts[adapter] = sum(p.numel() for n, p in t.named_parameters() if f".{adapter}." in n and "lora_" in n)
    return counts


def base_bytes(c: dict, quant: str) -> float:
    """Bytes of the frozen base: bf16 everywhere, or its Linear weights quantised (the rest bf16)."""
    rest = (c["base"] - c["linear_weights"]) * 2
    if quant == "none":
        return c["base"] * 2
    if quant == "fp8":
        return c["linear_weights"] * 1 + c["linears"] * 4 + rest  # + one fp32 scale per weight
    if quant == "nf4":
        blocks = c["linear_weights"] / NF4_BLOCK
        return c["linear_weights"] * 0.5 + blocks * 1 + blocks / NF4_DOUBLE_BLOCK * 4 + rest
    raise ValueError(quant)


ROWS = [  # name, base quantisation, optimizer bytes per adapter parameter, ZeRO-2 ranks (1: DDP)
    ("DDP, bf16, AdamW", "none", 8, 1),
    ("DDP, bf16, `--optimizer adamw8bit`", "none", 2, 1),
    ("ZeRO-2 on 4 GPUs, bf16, AdamW", "none", 8, 4),
    ("ZeRO-2 on 4 GPUs, bf16, adamw8bit", "none", 2, 4),
    ("one GPU, `--base-quant fp8`, AdamW", "fp8", 8, 1),
    ("one GPU, `--base-quant fp8`, adamw8bit", "fp8", 2, 1),
    ("one GPU, `--base-quant nf4`, AdamW", "nf4", 8, 1),
    ("one GPU, `--base-quant nf4`, adamw8bit", "nf4", 2, 1),
]


def table(rank: int = 64) -> str:
    c = count_parameters(rank)
    adapters = c["default"] + c["cond"]
    lines = [
        f"Transformer {c['base'] / 1e9:.2f} B parameters ({c['linear_weights'] / 1e9:.2f} B of them in its "
        f"{c['linears']} Linear weights, the part `--base-quant` stores smaller); rank-{rank} adapters "
        f"{adapters / 1e9:.3f} B: `default` {c['default'] / 1e9:.3f} B, `cond` {c['cond'] / 1e9:.3f} B.",
        "",
        f"| run (rank {rank}) | frozen base | adapters (fp32) | gradients | optimizer | total |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, quant, opt_bytes, world in ROWS:
        cols = [base_bytes(c, quant), adapters * 4, adapters * 4 / world, adapters * opt_bytes / world]
        lines.append(f"| {name} | " + " | ".join(f"{v / GB:.1f} GB" for v in [*cols, sum(cols)]) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
