"""Encode a training set once, to disk, split across processes; then train with ``--precomputed DIR``.

    python -m training.precompute --dataset sacap --parquet anno.parquet --image-root SA-1B/ \\
        --base /models/FLUX.1-dev --resolution 1024 --cond-scale-factor 2 --out features/sacap
    torchrun --nproc_per_node 8 -m training.precompute ...          # the same, shards split over 8 processes

Takes the trainer's data and encoder flags (they must match the training run; the trainer checks
the signature). Shard s goes to process s mod W. Finished shards are skipped, so an interrupted
pass is resumed by running the same command again; a shard interrupted mid-write is redone.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time

import numpy as np
import torch

from .options import add_data_options, build_dataset, feature_signature, mixed_precision
from .shards import MANIFEST, encode_sample, shard_count, shard_path, write_shard

log = logging.getLogger("seg2any.train")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_options(ap)
    ap.add_argument("--out", required=True, help="folder of the shards (and manifest.json)")
    ap.add_argument("--shard-size", type=int, default=256, help="samples per shard (the unit of work and of resuming)")
    ap.add_argument("--stop-after", type=int, default=None, help="each process stops after writing this many shards")
    return ap.parse_args(argv)


def shard_records(enc, dataset, lo: int, hi: int, count_lengths, bar) -> tuple[dict, list]:
    tensors, records = {}, []
    for i in range(lo, hi):
        j = i - lo
        try:
            sample = dataset[i]
        except Exception as e:  # recorded, and raised again when training reads it (Robust counts it)
            records.append({"key": f"#{i}", "error": f"{type(e).__name__}: {str(e)[:200]}", "lengths": [0, 0]})
            bar.update(1)
            continue
        t, r = encode_sample(enc, sample, count_lengths(sample), j)
        tensors.update(t)
        records.append(r)
        bar.update(1)
    return tensors, records


def main(argv=None) -> dict:
    a = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from accelerate import Accelerator
    from tqdm import tqdm

    from .encoder import Encoder
    from .lengths import sample_lengths
    from .models import frozen_encoders

    acc = Accelerator(mixed_precision=mixed_precision(a))
    dtype = torch.bfloat16 if acc.mixed_precision == "bf16" else torch.float32
    dataset = build_dataset(a)
    n = len(dataset)
    signature = feature_signature(a, n)
    os.makedirs(a.out, exist_ok=True)
    manifest_path = os.path.join(a.out, MANIFEST)
    if os.path.isfile(manifest_path):
        with open(manifest_path) as f:
            done = json.load(f)
        if done["signature"] != json.loads(json.dumps(signature)) or done["shard_size"] != a.shard_size:
            raise SystemExit(f"{a.out} holds shards of other data or settings; use another --out or delete it")
    models = frozen_encoders(a, acc.device, dtype)
    enc = Encoder(models, a.cond_scale_factor, a.resolution, not a.no_condition, cache_bytes=64 << 20)
    count = lambda s: sample_lengths(s, models.t5_ids, a.resolution, a.cond_scale_factor, not a.no_condition)  # noqa: E731

    total = shard_count(n, a.shard_size)
    mine = range(acc.process_index, total, acc.num_processes)
    missing = [s for s in mine if not os.path.isfile(shard_path(a.out, s))]
    todo = missing if a.stop_after is None else missing[: a.stop_after]
    work = sum(min(n, (s + 1) * a.shard_size) - s * a.shard_size for s in todo)
    log.info("precompute: %d shards of %d, %d of this process's %d already done", total, a.shard_size,
             len(mine) - len(missing), len(mine))  # fmt: skip
    t0 = time.time()
    bar = tqdm(total=work, desc=f"precompute (rank {acc.process_index})", disable=not acc.is_local_main_process)
    for s in todo:
        lo, hi = s * a.shard_size, min(n, (s + 1) * a.shard_size)
        tensors, records = shard_records(enc, dataset, lo, hi, count, bar)
        write_shard(shard_path(a.out, s), tensors, records)
    bar.close()
    seconds = time.time() - t0
    acc.wait_for_everyone()
    result = {"shards": total, "written_here": len(todo), "seconds": seconds, "complete": False}
    if acc.is_main_process and all(os.path.isfile(shard_path(a.out, s)) for s in range(total)):
        write_manifest(a.out, signature, n, a.shard_size, total)
        result["complete"] = True
    acc.wait_for_everyone()
    if acc.is_main_process:
        log.info("precompute: %d shards written in %.1f s by rank 0; manifest %s", len(todo), seconds,
                 "written" if result["complete"] else "not written (shards missing: run again)")  # fmt: skip
    return result


def write_manifest(root: str, signature: dict, n: int, shard_size: int, total: int) -> None:
    """Joined bucket lengths of every shard, and what they were made from; written last."""
    from safetensors import safe_open

    lengths = []
    for s in range(total):
        with safe_open(shard_path(root, s), framework="pt") as f:
            lengths += [r["lengths"] for r in json.loads(f.metadata()["samples"])]
    manifest = {"signature": signature, "n": n, "shard_size": shard_size, "shards": total,
                "lengths": np.asarray(lengths, dtype=np.int64).reshape(-1, 2).tolist()}  # fmt: skip
    tmp = os.path.join(root, MANIFEST + ".tmp")
    with open(tmp, "w") as f:
        json.dump(manifest, f)
    os.replace(tmp, os.path.join(root, MANIFEST))


if __name__ == "__main__":
    main()
