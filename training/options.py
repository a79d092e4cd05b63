"""Command-line options shared by the trainer and the precompute pass, and the dataset they name.

The precomputed shards are only valid for the data and frozen encoders they were made from, so
both programs read the same flags and compare the same signature (:func:`dataset_signature`).
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("seg2any.train")


def add_data_options(ap) -> None:
    ap.add_argument("--dataset", choices=["synthetic", "folder", "sacap"], default="synthetic")
    ap.add_argument("--data-root", help="folder dataset root (NAME.png + NAME.seg.png + NAME.json)")
    ap.add_argument("--parquet", help="SACap-1M annotation parquet")
    ap.add_argument("--image-root", help="SA-1B root (images and per-image JSON)")
    ap.add_argument("--synthetic-size", type=int, default=6000)
    ap.add_argument("--synthetic-empty-every", type=int, default=0, help="every K-th synthetic sample has no entities (0: none)")
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--base", help="base FLUX: a .safetensors written by the t2i stage, or a diffusers folder (FLUX.1-dev)")
    ap.add_argument("--vae", help="VAE .safetensors (the small model's) or a diffusers FLUX folder")
    ap.add_argument("--t5", help="T5 .safetensors (the small model's); default: a fresh frozen random T5")
    ap.add_argument("--cond-scale-factor", type=int, default=1)
    ap.add_argument("--no-condition", action="store_true", help="train without condition tokens (ablation)")
    ap.add_argument(
        "--mixed-precision",
        choices=["no", "bf16", "fp16"],
        default=None,
        help="default: the accelerate config's, else bf16 on CUDA and no (fp32) elsewhere",
    )
    ap.add_argument("--seed", type=int, default=42)


def build_dataset(a):
    from .data import FolderDataset, SACapDataset, SyntheticShapes

    if a.dataset == "synthetic":
        return SyntheticShapes(a.synthetic_size, resolution=a.resolution, seed=a.seed, empty_every=a.synthetic_empty_every)
    if a.dataset == "folder":
        if not a.data_root:
            raise SystemExit("--dataset folder needs --data-root")
        ds = FolderDataset(a.data_root, a.resolution)
        if ds.missing:
            log.warning("folder dataset: %d item(s) lack a file and are not used, e.g. %s", len(ds.missing), ds.missing[:3])
        return ds
    if not (a.parquet and a.image_root):
        raise SystemExit("--dataset sacap needs --parquet and --image-root")
    return SACapDataset(a.parquet, a.image_root, a.resolution)


def dataset_signature(a, n: int) -> dict:
    """What per-sample counts and features depend on: the data, the resolution, the condition
    settings and the tokenizer (bucket-length cache files and precomputed shards are named or
    checked by it)."""
    src = {
        "synthetic": [a.synthetic_size, a.seed, a.synthetic_empty_every],
        "folder": [a.data_root],
        "sacap": [a.parquet, a.image_root],
    }
    paths = [p for p in (a.parquet, a.data_root) if p and os.path.exists(p)]
    stamps = [(os.path.abspath(p), os.path.getmtime(p), os.path.getsize(p)) for p in paths]
    return {"dataset": a.dataset, "source": src[a.dataset], "stamps": stamps, "n": n, "resolution": a.resolution,
            "cond_scale": a.cond_scale_factor, "condition": not a.no_condition, "tokenizer": a.base if a.base and os.path.isdir(a.base) else "spiece"}  # fmt: skip


def feature_signature(a, n: int) -> dict:
    """The dataset signature plus the frozen encoders whose outputs precomputed shards hold."""
    files = [p for p in (a.vae, a.t5) if p and os.path.exists(p)]
    encoders = {"vae": a.vae, "t5": a.t5 or f"random T5, seed {a.seed}", "base": a.base if a.base and os.path.isdir(a.base) else None,
                "stamps": [(os.path.abspath(p), os.path.getsize(p)) for p in files], "precision": mixed_precision(a)}  # fmt: skip
    return {**dataset_signature(a, n), "encoders": encoders}


def mixed_precision(a) -> str:
    """--mixed-precision, else the accelerate config's (accelerate launch exports it), else bf16 on CUDA."""
    import torch

    if a.mixed_precision:
        return a.mixed_precision
    return os.environ.get("ACCELERATE_MIXED_PRECISION") or ("bf16" if torch.cuda.is_available() else "no")
