"""Token counts per sample for ``--bucket``, computed once, split across ranks, and kept on disk.

Counting needs every sample decoded (masks for the condition-token count); on SACap-1M that is
hours if each rank does all of it serially at every start. Here rank r counts samples r, r+W, ...
with a progress bar, the main process joins the parts into one ``.npy`` named after what the counts
depend on (dataset, resolution, cond scale, tokenizer), and later runs read that file. With several
nodes the cache directory must be on a shared file system.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from seg2any.conditioning.condition_tokens import keep_mask_from_contour
from seg2any.conditioning.contour import entity_contour_map
from seg2any.conditioning.t5_tokens import ENTITY_MAX_TOKENS, GLOBAL_MAX_TOKENS


def sample_lengths(sample, t5_ids, resolution: int, scale: int, use_condition: bool) -> tuple[int, int]:
    """(condition tokens, text tokens) of one sample, text counted at the lengths training cuts to."""
    if sample is None:
        return 0, 0
    lay = sample.layout
    txt = min(len(t5_ids(lay.global_prompt)), GLOBAL_MAX_TOKENS) if lay.global_prompt.strip() else 0
    txt += sum(min(len(t5_ids(p)), ENTITY_MAX_TOKENS) for p in lay.prompts)
    cond = 0
    if use_condition and lay.entities:
        contour = entity_contour_map(lay.masks, resolution, resolution, scale)
        cond = int(keep_mask_from_contour(contour).sum())
    return cond, txt


def cache_name(signature: dict) -> str:
    digest = hashlib.sha1(json.dumps(signature, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"bucket_lengths-{digest}.npy"


def bucket_lengths(dataset, count, cache_dir: str, signature: dict, acc, progress: bool = True) -> np.ndarray:
    """(N, 2) int64 counts; ``count(sample) -> (cond, text)``; ``acc`` an Accelerator (ranks, barrier)."""
    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(cache_dir, cache_name({**signature, "n": len(dataset)}))
    if not os.path.isfile(path):
        rank, world = acc.process_index, acc.num_processes
        mine = range(rank, len(dataset), world)
        from tqdm import tqdm

        bar = tqdm(mine, desc="bucket lengths", disable=not (progress and acc.is_local_main_process))
        part = np.array([count(dataset[i]) for i in bar], dtype=np.int64).reshape(-1, 2)
        part_path = f"{path}.part{rank}-of-{world}.npy"
        np.save(part_path, part)
        acc.wait_for_everyone()
        if acc.is_main_process:
            full = np.zeros((len(dataset), 2), dtype=np.int64)
            for r in range(world):
                full[r::world] = np.load(f"{path}.part{r}-of-{world}.npy")
            tmp = path + ".tmp.npy"
            np.save(tmp, full)
            os.replace(tmp, path)
            for r in range(world):
                os.remove(f"{path}.part{r}-of-{world}.npy")
        acc.wait_for_everyone()
    lengths = np.load(path)
    if lengths.shape != (len(dataset), 2):
        raise ValueError(f"{path} holds {lengths.shape[0]} counts for a dataset of {len(dataset)}; delete it to recount")
    return lengths
