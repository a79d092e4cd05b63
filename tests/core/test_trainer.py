"""The trainer end to end on the small model family: t2i pretraining, adapter training in the
official checkpoint layout, and resuming from the latest checkpoint."""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("diffusers")
pytest.importorskip("peft")
pytest.importorskip("accelerate")

from seg2any.flux.lora_format import ADAPTERS, load_checkpoint  # noqa: E402
from training.models import new_t5, new_vae, save_t5, save_vae  # noqa: E402
from training.train import main as train_main  # noqa: E402

COMMON = [
    "--dataset",
    "synthetic",
    "--synthetic-size",
    "8",
    "--resolution",
    "64",
    "--batch-size",
    "2",
    "--val-every",
    "1000",
    "--val-steps",
    "1",
    "--report-to",
    "tensorboard",
]  # fmt: skip (the trackers are test_trainer_validation's)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp("small")
    save_vae(new_vae(0), str(d / "vae.safetensors"))
    save_t5(new_t5(0), str(d / "t5.safetensors"))
    return ["--vae", str(d / "vae.safetensors"), "--t5", str(d / "t5.safetensors")], d


def test_t2i_then_adapters_then_resume(small, tmp_path):
    files, _ = small
    base = train_main(["--stage", "t2i", "--out", str(tmp_path / "base"), "--steps", "2", "--save-every", "2", *files, *COMMON])
    assert os.path.isfile(os.path.join(base, "flux.safetensors"))
    s2a = tmp_path / "s2a"
    args = ["--stage", "seg2any", "--out", str(s2a), "--base", os.path.join(base, "flux.safetensors"), "--rank", "4",
            "--lr", "1e-3", "--save-every", "2", *files, *COMMON]  # fmt: skip
    first = train_main([*args, "--steps", "2"])
    assert os.path.basename(first) == "checkpoint-2"
    for a in ADAPTERS:  # the official layout, which is also the trainable state resuming reads
        assert os.path.isfile(os.path.join(first, a, "pytorch_lora_weights.safetensors"))
    for f in ("optimizer.bin", "trainer_state.json"):
        assert os.path.isfile(os.path.join(first, f))
    assert not os.path.exists(os.path.join(first, "trainable.safetensors"))  # the adapters are stored once
    assert os.path.isfile(os.path.join(base, "trainable.safetensors"))  # t2i: fp32 state beside the fp16 export
    # validation images were written at the end
    assert any(f.endswith(".png") for _, _, fs in os.walk(s2a) for f in fs)

    resumed = train_main([*args, "--steps", "3", "--resume", "latest"])
    assert os.path.basename(resumed) == "checkpoint-3"
    with open(s2a / "train_log.json") as f:
        log = json.load(f)
    assert log["steps"] == 3 and log["start_step"] == 2 and len(log["loss"]) == 3  # the curve so far + one new step
    before, after = load_checkpoint(first), load_checkpoint(resumed)
    name = next(iter(after.default))
    delta = (after.default[name].up - before.default[name].up).abs().max()
    # one Adam step of lr 1e-3 from the restored state moves each weight by at most ~lr
    assert 0 < delta <= 1.5e-3


def test_shipped_accelerate_configs_load():
    """The scale-out configs the README points to parse with accelerate's own loader."""
    from accelerate.commands.config.config_args import load_config_from_file

    cfg_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "training", "configs")
    ddp = load_config_from_file(os.path.join(cfg_dir, "accelerate_multi_gpu.yaml"))
    assert str(ddp.distributed_type).endswith("MULTI_GPU") and ddp.mixed_precision == "bf16"
    ds = load_config_from_file(os.path.join(cfg_dir, "accelerate_deepspeed_zero2.yaml"))
    assert str(ds.distributed_type).endswith("DEEPSPEED")
    ds_file = ds.deepspeed_config["deepspeed_config_file"]
    assert ds_file == "training/configs/deepspeed_zero2.json"
    with open(os.path.join(cfg_dir, "deepspeed_zero2.json")) as f:
        zero = json.load(f)
    assert zero["zero_optimization"]["stage"] == 2 and zero["bf16"]["enabled"]


def test_same_seed_same_weights(small, tmp_path):
    """The experiment's figures are only worth quoting if a rerun gives them again: two runs with one
    seed produce bit-identical weights, and another seed gives other weights (so the seed is used)."""
    from safetensors.torch import load_file

    files, _ = small

    def run(name, seed):
        ckpt = train_main(["--stage", "t2i", "--out", str(tmp_path / name), "--steps", "1", "--save-every", "1",
                           "--seed", str(seed), *files, *COMMON])  # fmt: skip
        return load_file(os.path.join(ckpt, "flux.safetensors"))

    a, b, c = run("a", 5), run("b", 5), run("c", 6)
    assert a.keys() == b.keys() == c.keys()
    assert all(a[k].equal(b[k]) for k in a)
    assert any(not a[k].equal(c[k]) for k in a)
