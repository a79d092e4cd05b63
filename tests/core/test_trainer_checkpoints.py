"""Checkpoints of the trainable state only, exact resume, the retention limit, the official export,
caption truncation and the bounded feature cache, on the demo model (single process)."""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("diffusers")
pytest.importorskip("peft")
pytest.importorskip("accelerate")


from seg2any.flux.lora_format import ADAPTERS, load_checkpoint, validate  # noqa: E402
from training.data import SkipBatches, SyntheticShapes  # noqa: E402
from training.encoder import ByteLRU, Encoder  # noqa: E402
from training.lengths import bucket_lengths, sample_lengths  # noqa: E402
from training.train import main as train_main  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "seg2any", "demo")
BASE = os.path.join(DEMO, "flux.safetensors")
DEMO_FILES = ["--base", BASE, "--vae", os.path.join(DEMO, "vae.safetensors"), "--t5", os.path.join(DEMO, "t5.safetensors")]
COMMON = ["--stage", "seg2any", "--resolution", "64", "--batch-size", "2", "--rank", "4", "--lr", "1e-3",
          "--val-every", "1000", "--val-steps", "1", "--report-to", "none", *DEMO_FILES]  # fmt: skip
SYNTH = ["--dataset", "synthetic", "--synthetic-size", "10"]  # 5 batches an epoch


def read_log(out):
    with open(os.path.join(out, "train_log.json")) as f:
        return json.load(f)


HAVE_TB = importlib.util.find_spec("tensorboard") is not None


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    tb = ["--report-to", "tensorboard"] if HAVE_TB else []
    train_main([*COMMON, *SYNTH, "--steps", "7", "--save-every", "3", "--out", str(out), *tb])
    return out


@pytest.mark.skipif(not HAVE_TB, reason="tensorboard is not installed (tests/requirements.txt installs it)")
def test_tensorboard_gets_the_training_scalars(uninterrupted):
    """Loss (the same numbers as train_log.json), lr, grad norm, s/step, samples/s, peak memory per step."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = [d for d, _, fs in os.walk(uninterrupted / "seg2any") if any(f.startswith("events.") for f in fs)]
    scalars = {}
    for d in runs:
        ea = EventAccumulator(d)
        ea.Reload()
        for tag in ea.Tags()["scalars"]:
            scalars[tag] = [(e.step, e.value) for e in ea.Scalars(tag)]
    for tag in ("loss", "lr", "grad_norm", "s_per_step", "samples_per_s", "peak_memory_mb"):
        assert [s for s, _ in scalars[tag]] == list(range(1, 8)), tag
    assert [v for _, v in scalars["loss"]] == pytest.approx(read_log(uninterrupted)["loss"], rel=1e-6)
    assert all(v == pytest.approx(1e-3) for _, v in scalars["lr"])
    assert all(v > 0 for _, v in scalars["grad_norm"] + scalars["samples_per_s"] + scalars["peak_memory_mb"])


def test_resume_mid_epoch_continues_the_loss_curve(uninterrupted, tmp_path):
    """Resumed from step 3 (3 of the epoch's 5 batches used), the run gives the uninterrupted run's
    losses for steps 4-7 - so no batch is repeated or skipped across the epoch boundary - and the
    same adapters; with --checkpoints-total-limit 1 only the newest checkpoint is left."""
    with open(uninterrupted / "checkpoint-3" / "trainer_state.json") as f:
        st = json.load(f)
    assert (st["step"], st["epoch"], st["batches"]) == (3, 0, 3)
    out = tmp_path / "resumed"
    train_main([*COMMON, *SYNTH, "--steps", "7", "--save-every", "3", "--out", str(out),
                "--resume", str(uninterrupted / "checkpoint-3"), "--checkpoints-total-limit", "1"])  # fmt: skip
    full, resumed = read_log(uninterrupted), read_log(out)
    assert resumed["start_step"] == 3 and len(resumed["loss"]) == 7
    assert resumed["loss"] == pytest.approx(full["loss"], rel=1e-6, abs=0)
    # a run that repeated the epoch's first batches instead would see other losses
    assert len(set(np.round(full["loss"], 6))) == 7
    a, b = lora_state(uninterrupted / "checkpoint-7"), lora_state(out / "checkpoint-7")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-8) for k in a)
    assert sorted(d for d in os.listdir(out) if d.startswith("checkpoint-")) == ["checkpoint-7"]
    # 'latest' picks the newest complete checkpoint; asking for more steps continues from it
    train_main([*COMMON, *SYNTH, "--steps", "8", "--save-every", "3", "--out", str(out), "--resume", "latest"])
    assert read_log(out)["start_step"] == 7 and len(read_log(out)["loss"]) == 8


def lora_state(ckpt) -> dict:
    """The adapters of a checkpoint under their PEFT parameter names (lora_alpha = r: scale 1)."""
    lora = load_checkpoint(str(ckpt))
    out = {}
    for a in ADAPTERS:
        for name, f in lora.adapter(a).items():
            out[f"{name}.lora_A.{a}.weight"] = f.down
            out[f"{name}.lora_B.{a}.weight"] = f.up * f.scale
    return out


def test_checkpoint_holds_the_adapters_once(uninterrupted):
    """No copy of the frozen base, and the adapters stored once: the checkpoint is exactly the
    official LoRA files (the adapters in fp32), AdamW's two moments, and small state files. Sizes
    are checked against the adapter parameter count of the demo model at rank 4, counted anew."""
    from training.models import load_flux
    from training.train import trainable_adapters

    ckpt = uninterrupted / "checkpoint-3"
    files = {
        os.path.relpath(os.path.join(d, f), ckpt): os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(ckpt) for f in fs
    }
    assert set(files) == {"default/pytorch_lora_weights.safetensors", "cond/pytorch_lora_weights.safetensors",
                          "optimizer.bin", "scheduler.bin", "random_states_0.pkl", "trainer_rng_0.pt", "trainer_state.json"}  # fmt: skip
    adapter_bytes = 4 * sum(p.numel() for p in trainable_adapters(load_flux(BASE)[0], 4))
    lora_files = files["default/pytorch_lora_weights.safetensors"] + files["cond/pytorch_lora_weights.safetensors"]
    assert adapter_bytes < lora_files < adapter_bytes + 64_000  # + the safetensors headers
    assert 2 * adapter_bytes < files["optimizer.bin"] < 2 * adapter_bytes + 200_000  # exp_avg + exp_avg_sq
    small = sum(v for k, v in files.items() if k not in ("optimizer.bin",) and "lora" not in k)
    assert small < 50_000
    assert sum(files.values()) < 3.4 * adapter_bytes < os.path.getsize(BASE)  # was ~4x with a second adapter copy
    saved = lora_state(ckpt)
    assert {k.split(".lora_")[1].split(".")[1] for k in saved} == set(ADAPTERS)
    assert all(t.dtype == torch.float32 for t in saved.values())


def test_export_loads_through_the_pack_loader_and_holds_every_adapter_weight(uninterrupted):
    """The official layout in the checkpoint is read by the pack's LoRA loader, fits the demo
    model, and holds one tensor for every trainable parameter of a fresh rank-4 model, trained."""
    from seg2any.adapters.diffusers import flux_dims
    from training.models import load_flux
    from training.train import trainable_adapters

    lora = load_checkpoint(str(uninterrupted / "checkpoint-7"))
    validate(lora, flux_dims(load_flux(BASE)[0]))
    fresh, _ = load_flux(BASE)
    trainable_adapters(fresh, 4)
    want = {n: p.shape for n, p in fresh.named_parameters() if p.requires_grad}
    got = lora_state(uninterrupted / "checkpoint-7")
    assert {n: t.shape for n, t in got.items()} == want
    assert any(f.up.abs().max() > 0 for f in lora.cond.values())  # trained, not the zero init


def test_skip_batches_resumes_inside_an_epoch_once():
    batches = torch.utils.data.BatchSampler(range(10), 3, drop_last=True)
    s = SkipBatches(batches, skip=2)
    assert list(s) == [[6, 7, 8]]
    assert list(s) == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]  # later epochs in full
    with pytest.raises(ValueError):
        SkipBatches(batches, skip=-1)


def test_skip_batches_over_buckets_keeps_the_epoch_order():
    """With --bucket the resumed epoch continues the same shuffled bucket order (set_epoch passes through)."""
    from training.data import BucketBatchSampler

    lengths = [(i % 3 * 60, 10) for i in range(20)]
    whole = BucketBatchSampler(lengths, 2, num_replicas=2, rank=1, seed=5)
    whole.set_epoch(3)
    want = list(whole)
    s = SkipBatches(BucketBatchSampler(lengths, 2, num_replicas=2, rank=1, seed=5), skip=2)
    s.set_epoch(3)
    assert list(s) == want[2:] and len(want) > 3


def test_byte_lru_bounds_memory():
    lru = ByteLRU(100)
    lru.put("a", torch.zeros(10))  # 40 bytes
    lru.put("b", torch.zeros(10))
    assert lru.get("a") is not None  # a is now the most recent
    lru.put("c", torch.zeros(10))  # 120 > 100: b (least recent) goes
    assert lru.get("b") is None and lru.get("a") is not None and lru.get("c") is not None
    assert lru.bytes == 80 and len(lru) == 2
    lru.put("big", torch.zeros(30))  # larger than the whole cache: not kept, nothing evicted
    assert lru.get("big") is None and len(lru) == 2
    assert ByteLRU(0).get("x") is None


def demo_models():
    from seg2any.adapters.diffusers_pipeline import Models
    from seg2any.conditioning.t5_tokens import T5Tokenizer
    from training.models import load_t5, load_vae, spiece_path

    # no transformer: the encoder needs the frozen VAE and T5 only
    return Models(None, load_vae(os.path.join(DEMO, "vae.safetensors")), load_t5(os.path.join(DEMO, "t5.safetensors")),
                  T5Tokenizer(spiece_path()).ids)  # fmt: skip


def test_long_captions_are_cut_like_the_official_trainer_and_counted():
    """A 70-token entity caption is encoded as its first 49 tokens + </s> (HF truncation at 50),
    a global caption over 512 tokens as its first 511 + </s>; both are counted, none raises."""
    m = demo_models()
    enc = Encoder(m, 1, 64, True, cache_bytes=0)
    long_entity = " ".join(["red"] * 69)
    long_global = " ".join(["blue"] * 600)
    ids_e, ids_g = m.t5_ids(long_entity), m.t5_ids(long_global)
    assert len(ids_e) > 50 and len(ids_g) > 512
    out = enc.text(long_global, [long_entity, "a cat"])
    assert out.text_lens == (512, 50, len(m.t5_ids("a cat")))
    with torch.no_grad():
        want_e = m.t5(input_ids=torch.tensor([ids_e[:49] + [1]])).last_hidden_state[0]
        want_g = m.t5(input_ids=torch.tensor([ids_g[:511] + [1]])).last_hidden_state[0]
    assert torch.allclose(out.cond[0, 512:562], want_e, atol=1e-5)
    assert torch.allclose(out.cond[0, :512], want_g, atol=1e-5)
    assert (enc.truncated.entity, enc.truncated.global_) == (1, 1)


def test_trainer_survives_long_captions_and_reports_them(tmp_path):
    """A folder dataset whose entity caption is over 50 T5 tokens trains (it used to end the run
    with TokenBudgetError) and train_log.json counts the cut captions."""
    data = tmp_path / "data"
    data.mkdir()
    seg = np.zeros((64, 64, 3), dtype=np.uint8)
    seg[8:40, 8:40] = (250, 0, 0)
    for i in range(3):
        Image.fromarray(np.full((64, 64, 3), 90 + i, dtype=np.uint8)).save(data / f"x{i}.png")
        Image.fromarray(seg).save(data / f"x{i}.seg.png")
        spec = {"caption": "a box", "segments_info": [{"color": [250, 0, 0], "text": " ".join(["red"] * 70)}]}
        (data / f"x{i}.json").write_text(json.dumps(spec))
    out = tmp_path / "run"
    train_main([*COMMON, "--dataset", "folder", "--data-root", str(data), "--val-holdout", "1", "--steps", "2",
                "--save-every", "100", "--out", str(out)])  # fmt: skip
    log = read_log(out)
    assert log["steps"] == 2 and log["skipped_samples"] == 0
    assert log["truncated_captions"]["entity"] == 4 and log["truncated_captions"]["global"] == 0  # 2 steps x 2 samples


def test_bucket_lengths_are_counted_once_and_cached(tmp_path):
    """The counts equal the per-sample counts, and a second call reads the file instead of decoding."""
    from accelerate import Accelerator

    m = demo_models()
    ds = SyntheticShapes(6, resolution=64, seed=3, empty_every=3)
    count = lambda s: sample_lengths(s, m.t5_ids, 64, 1, True)  # noqa: E731
    acc = Accelerator(cpu=True)
    got = bucket_lengths(ds, count, str(tmp_path), {"k": 1}, acc, progress=False)
    want = [count(ds[i]) for i in range(len(ds))]
    assert got.tolist() == [list(w) for w in want]
    assert got[2, 0] == 0 and got[0, 0] > 0  # the entity-free sample has no condition tokens

    def refuse(_):
        raise AssertionError("recounted")

    assert bucket_lengths(ds, refuse, str(tmp_path), {"k": 1}, acc).tolist() == got.tolist()
    with pytest.raises(AssertionError, match="recounted"):  # another signature is another file
        bucket_lengths(ds, refuse, str(tmp_path), {"k": 2}, acc)
