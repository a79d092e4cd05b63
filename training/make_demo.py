"""Package a trained small model as the shipped demo (``seg2any/demo``) and its example layout.

    python -m training.make_demo --base runs/experiment/base/checkpoint-1500/flux.safetensors \\
        --lora runs/experiment/seg2any/checkpoint-900 --vae runs/experiment/vae.safetensors --t5 runs/experiment/t5.safetensors
"""

from __future__ import annotations

import argparse
import json
import os
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "seg2any", "demo")
LAYOUTS = os.path.join(ROOT, "example_workflows", "layouts")


def package(base: str, lora_ckpt: str, vae: str, t5: str, demo_dir: str = DEMO) -> None:
    from PIL import Image

    from seg2any.flux.lora_format import load_checkpoint, write_checkpoint

    from .data import colour_map

    os.makedirs(demo_dir, exist_ok=True)
    shutil.copyfile(base, os.path.join(demo_dir, "flux.safetensors"))
    shutil.copyfile(vae, os.path.join(demo_dir, "vae.safetensors"))
    shutil.copyfile(t5, os.path.join(demo_dir, "t5.safetensors"))
    lora = load_checkpoint(lora_ckpt)
    lora_dir = os.path.join(demo_dir, "seg2any_demo_lora")
    shutil.rmtree(lora_dir, ignore_errors=True)
    write_checkpoint(lora_dir, lora)
    # the example layout of the demo workflow / CLI: a held-out synthetic scene with 3+ shapes
    sample, _, _ = demo_sample()
    seg, spec = colour_map(sample)
    spec["seed"] = 3
    os.makedirs(LAYOUTS, exist_ok=True)
    Image.fromarray(seg).save(os.path.join(LAYOUTS, "demo_shapes.png"))
    with open(os.path.join(LAYOUTS, "demo_shapes.json"), "w") as f:
        json.dump(spec, f, indent=2)


def demo_sample():
    """(sample, attributes, background colour) of the demo layout: a held-out scene (seed 777,
    not a training seed) with 3+ shapes of distinct colours."""
    from .data import SyntheticShapes

    ds = SyntheticShapes(200, resolution=128, seed=777)
    for i in range(len(ds)):
        attrs = ds.attributes(i)
        if len(attrs) >= 3 and len({a["color"] for a in attrs}) == len(attrs):
            return ds[i], attrs, ds.background(i)[1]
    raise RuntimeError("no suitable demo scene")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True)
    ap.add_argument("--lora", required=True)
    ap.add_argument("--vae", required=True)
    ap.add_argument("--t5", required=True)
    ap.add_argument("--out", default=DEMO)
    a = ap.parse_args(argv)
    package(a.base, a.lora, a.vae, a.t5, a.out)
    print(f"demo written to {a.out}")


if __name__ == "__main__":
    main()
