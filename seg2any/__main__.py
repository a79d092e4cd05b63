"""Command line: ``python -m seg2any generate LAYOUT.json --out out.png`` and friends.

Without model paths it runs the shipped demo model on the CPU in seconds (no downloads); with
``--flux DIR --lora CKPT`` it runs FLUX.1-dev (diffusers layout) with official Seg2Any weights.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def _layout(path: str, image: str | None):
    from .layout.layout import load_layout_pair

    try:
        return load_layout_pair(path, image)
    except FileNotFoundError as exc:
        sys.exit(f"error: {exc}" + ("" if image else " (pass --image)"))


def cmd_generate(a) -> int:
    import numpy as np
    from PIL import Image

    from .adapters.diffusers_pipeline import load_demo, load_flux_dev, render

    layout = _layout(a.layout, a.image)
    for note in layout.notes:
        print(f"note: {note}")
    t0 = time.time()
    if a.flux:
        if not a.lora:
            sys.exit("error: --flux needs --lora (an official Seg2Any checkpoint directory)")
        models = load_flux_dev(a.flux, a.lora, device=a.device)
        scale = a.cond_scale_factor or 2
    else:
        models = load_demo(device=a.device)
        scale = a.cond_scale_factor or 1
    t1 = time.time()
    seed = a.seed if a.seed is not None else (layout.seed or 0)
    if a.noise == "official" and models.device.type != "cuda":
        print(
            f"note: official noise on {models.device.type}: image i from a {models.device.type} generator seeded "
            f"with {seed} + i; infer.py draws on CUDA, so only a CUDA run reproduces its pixels"
        )
    images, _ = render(
        models,
        layout,
        steps=a.steps,
        seed=seed,
        guidance=a.guidance,
        mode=a.mode,
        alpha=a.alpha,
        cond_scale_factor=scale,
        batch=a.batch,
        progress=True,
        noise=a.noise,
        on_fit=lambda fit: print(f"note: {fit.message}", flush=True),
    )
    t2 = time.time()
    out = a.out
    for i, img in enumerate(images):
        p = out if len(images) == 1 else f"{os.path.splitext(out)[0]}_{i}{os.path.splitext(out)[1]}"
        Image.fromarray(np.asarray(img)).save(p)
        print(f"wrote {p} ({img.shape[1]}x{img.shape[0]})")
    print(f"load {t1 - t0:.1f}s, sample {t2 - t1:.1f}s ({a.steps} steps, seed {seed})")
    return 0


def cmd_preview(a) -> int:
    from PIL import Image

    from .flux import spec
    from .layout.preview import render_layout

    layout = _layout(a.layout, a.image)
    Image.fromarray(render_layout(layout, grid=spec.token_grid(layout.height, layout.width))).save(a.out)
    print(f"wrote {a.out}")
    return 0


def cmd_pack_lora(a) -> int:
    from .flux.lora_format import load_checkpoint, write_combined

    lora = load_checkpoint(a.checkpoint)
    write_combined(a.out, lora)
    print(f"wrote {a.out}: {len(lora.default)} default + {len(lora.cond)} cond modules, rank {lora.rank}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m seg2any", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="generate an image from a layout (X.json + X.png)")
    g.add_argument("layout", help="official-format JSON (caption, seed, segments_info); the PNG beside it is the colour map")
    g.add_argument("--image", help="the colour-coded segmentation PNG (default: same name as the JSON)")
    g.add_argument("--out", default="out.png")
    g.add_argument("--steps", type=int, default=20)
    g.add_argument("--seed", type=int, default=None, help="default: the JSON's seed")
    g.add_argument("--guidance", type=float, default=None, help="default: 1.0 for the demo, 3.5 for FLUX.1-dev")
    g.add_argument("--mode", choices=["hard", "base", "place"], default="hard")
    g.add_argument("--alpha", type=float, default=1.0, help="shape strength (cond2image weight)")
    g.add_argument("--cond-scale-factor", type=int, default=None, help="default: 1 for the demo, 2 for FLUX.1-dev")
    g.add_argument("--batch", type=int, default=1)
    g.add_argument(
        "--noise",
        choices=["comfy", "official"],
        default="comfy",
        help="comfy: one CPU generator for the whole batch (ComfyUI's noise, same pixels as the nodes); official: "
        "image i from a generator on the device seeded with seed + i, in the model dtype (infer.py; bit-exact on CUDA)",
    )
    g.add_argument("--flux", help="FLUX.1-dev in diffusers layout (folder with transformer/, vae/, text_encoder*/ ...)")
    g.add_argument("--lora", help="official Seg2Any checkpoint (folder with default/ and cond/, or a combined file)")
    g.add_argument("--device", default="cpu")
    g.set_defaults(func=cmd_generate)
    p = sub.add_parser("preview", help="draw a layout (entities, numbers, legend)")
    p.add_argument("layout")
    p.add_argument("--image")
    p.add_argument("--out", default="preview.png")
    p.set_defaults(func=cmd_preview)
    k = sub.add_parser("pack-lora", help="official default/ + cond/ folder -> one combined .safetensors")
    k.add_argument("checkpoint")
    k.add_argument("out")
    k.set_defaults(func=cmd_pack_lora)
    a = ap.parse_args(argv)
    return a.func(a)


if __name__ == "__main__":
    sys.exit(main())
