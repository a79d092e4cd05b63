"""The precompute pass (``python -m training.precompute``) over two gloo processes, its resume, and
training from its shards (``--precomputed``) against training that encodes on the fly."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("peft")
pytest.importorskip("accelerate")

from training.data import SyntheticShapes  # noqa: E402
from training.shards import MANIFEST, ShardDataset, shard_path  # noqa: E402
from training.train import main as train_main  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "seg2any", "demo")
DATA = ["--dataset", "synthetic", "--synthetic-size", "8", "--synthetic-empty-every", "2", "--resolution", "64",
        "--vae", os.path.join(DEMO, "vae.safetensors"), "--t5", os.path.join(DEMO, "t5.safetensors")]  # fmt: skip
TRAIN = ["--stage", "seg2any", "--base", os.path.join(DEMO, "flux.safetensors"), "--batch-size", "2", "--rank", "4",
         "--lr", "1e-3", "--steps", "2", "--save-every", "100", "--val-every", "1000", "--val-steps", "1",
         "--report-to", "none", "--mixed-precision", "no", *DATA]  # fmt: skip
ENV = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}


def torchrun(module, *args, procs=2):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs), "-m", module, *args]
    r = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-6000:]
    return r


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """4 shards of 2 samples made by two processes: stopped after one shard each, then resumed
    with a half-written third shard lying around."""
    out = tmp_path_factory.mktemp("shards")
    args = [*DATA, "--mixed-precision", "no", "--shard-size", "2", "--out", str(out)]
    torchrun("training.precompute", *args, "--stop-after", "1")
    first = {s: os.path.getmtime(shard_path(str(out), s)) for s in (0, 1)}
    assert not os.path.exists(shard_path(str(out), 2)) and not os.path.exists(out / MANIFEST)
    with open(shard_path(str(out), 2) + ".tmp", "wb") as f:
        f.write(b"interrupted mid-write")
    r = torchrun("training.precompute", *args)
    assert "precompute" in r.stderr  # the progress bar (tqdm writes to stderr)
    return out, first


def test_precompute_splits_resumes_and_records_lengths(shards):
    """Shard s comes from rank s mod 2; finished shards are not rewritten on resume, the
    interrupted one is redone; the manifest's bucket lengths are the trainer's own counts, and
    each stored layout is the dataset's."""
    from seg2any.conditioning.t5_tokens import T5Tokenizer
    from training.lengths import sample_lengths
    from training.models import spiece_path

    out, first = shards
    assert all(os.path.getmtime(shard_path(str(out), s)) == t for s, t in first.items())
    assert all(os.path.isfile(shard_path(str(out), s)) for s in range(4))
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]
    ds = ShardDataset(str(out))
    ref = SyntheticShapes(8, resolution=64, seed=42, empty_every=2)
    ids = T5Tokenizer(spiece_path()).ids
    assert ds.lengths().tolist() == [list(sample_lengths(ref[i], ids, 64, 1, True)) for i in range(8)]
    for i in range(8):
        got, want = ds[i], ref[i]
        assert got.key == want.key and got.image is None and got.layout.global_prompt == want.layout.global_prompt
        assert got.layout.prompts == want.layout.prompts
        assert np.array_equal(got.layout.masks, want.layout.masks)
        assert (got.features.cond is None) == (not want.layout.entities)


def test_training_from_shards_gives_the_on_the_fly_losses(shards, tmp_path):
    """Same batches, same noise: the loss of every step equals training that encodes each batch
    (features stored in float32, made by the trainer's own encoder). Shards of other settings are refused."""
    out, _ = shards
    train_main([*TRAIN, "--out", str(tmp_path / "fly")])
    train_main([*TRAIN, "--out", str(tmp_path / "pre"), "--precomputed", str(out)])
    fly, pre = (json.load(open(tmp_path / d / "train_log.json")) for d in ("fly", "pre"))
    assert pre["loss"] == pytest.approx(fly["loss"], rel=1e-5, abs=0)
    assert pre["batches_without_condition_tokens"] == fly["batches_without_condition_tokens"]
    with pytest.raises(SystemExit, match="resolution"):
        train_main([*TRAIN, "--out", str(tmp_path / "bad"), "--precomputed", str(out), "--resolution", "128"])


@pytest.mark.slow
def test_two_processes_from_shards_match_on_the_fly(shards, tmp_path):
    """The README's two-process command, reading shards on every rank: the same losses as encoding."""
    out, _ = shards
    common = [a for a in TRAIN if a != "--mixed-precision" and a != "no"]
    torchrun("training.train", *common, "--batch-size", "1", "--out", str(tmp_path / "fly"))
    torchrun("training.train", *common, "--batch-size", "1", "--out", str(tmp_path / "pre"), "--precomputed", str(out))
    fly, pre = (json.load(open(tmp_path / d / "train_log.json")) for d in ("fly", "pre"))
    assert fly["processes"] == pre["processes"] == 2
    assert pre["loss"] == pytest.approx(fly["loss"], rel=1e-5, abs=0)


def test_a_shard_may_hold_one_caption_many_times(tmp_path):
    """Samples of one shard often share captions; the encoder's cache hands out the same tensor for
    them, which safetensors refuses to write twice, so every stored feature is its own copy."""
    from types import SimpleNamespace

    from safetensors import safe_open

    from training.encoder import Encoder
    from training.models import frozen_encoders
    from training.shards import encode_sample, write_shard

    a = SimpleNamespace(base=None, vae=os.path.join(DEMO, "vae.safetensors"), t5=os.path.join(DEMO, "t5.safetensors"), seed=0)
    enc = Encoder(frozen_encoders(a, "cpu"), 1, 64, True)
    sample = SyntheticShapes(2, resolution=64, seed=3)[0]
    (t0, r0), (t1, r1) = encode_sample(enc, sample, (0, 0), 0), encode_sample(enc, sample, (0, 0), 1)
    path = str(tmp_path / "shard.safetensors")
    write_shard(path, {**t0, **t1}, [r0, r1])
    with safe_open(path, framework="pt") as f:
        assert all(f.get_tensor(k).equal(f.get_tensor("1" + k[1:])) for k in t0)
