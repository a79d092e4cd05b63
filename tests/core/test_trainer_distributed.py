"""Multi-process training: DDP over two CPU processes (torchrun, gloo) on the demo model.

The crash these guard against ("Expected to have finished reduction in the prior iteration"):
DDP all-reduces a gradient for every trainable parameter, and the adapter routing evaluates one
adapter per token set, so a rank whose batch has no condition tokens used to leave the 'cond'
adapter without a gradient. Single-process runs cannot see it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("peft")
pytest.importorskip("accelerate")

from seg2any.adapters.diffusers import Seg2AnyFlux  # noqa: E402
from training.models import load_flux  # noqa: E402
from training.train import trainable_adapters  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "seg2any", "demo")


def demo_net(rank=4):
    t, _ = load_flux(os.path.join(DEMO, "flux.safetensors"))
    params = trainable_adapters(t, rank)
    torch.manual_seed(0)
    with torch.no_grad():
        for n, p in t.named_parameters():
            if "lora_B" in n:  # B starts at zero; make the adapters change the output
                p.normal_(0, 0.05)
    return Seg2AnyFlux(t), t, params


def test_every_adapter_gets_a_gradient_without_condition_tokens():
    """A batch with no condition tokens: the 'cond' adapter takes no part in the output, yet every
    adapter weight gets a gradient (exactly zero where its path was not taken), and the output is
    the one computed without gradients (where nothing is added)."""
    net, t, params = demo_net()
    torch.manual_seed(1)
    n_img, grid = 16, (4, 4)
    x = torch.randn(1, n_img, net.dims.in_channels)
    text = torch.randn(1, 5, t.config.joint_attention_dim)
    sigma = torch.tensor([0.5])
    rules = [None] * (net.dims.n_double + net.dims.n_single)
    out = net(x, sigma, text, None, None, grid, None, rules)
    out.square().mean().backward()
    names = {id(p): n for n, p in t.named_parameters()}
    missing = [names[id(p)] for p in params if p.grad is None]
    assert not missing, f"no gradient for {missing[:4]}"
    cond = [p for p in params if ".cond." in names[id(p)]]
    default = [p for p in params if ".default." in names[id(p)]]
    assert cond and default
    assert all(p.grad.abs().max() == 0 for p in cond)  # present, and zero: cond tokens were absent
    assert any(p.grad.abs().max() > 0 for p in default)
    with torch.no_grad():
        ref = net(x, sigma, text, None, None, grid, None, rules)
    assert torch.equal(out.detach(), ref)


def train_args(out, *extra, steps=4):
    """A few steps of the demo model on the synthetic scenes, every second one without entities."""
    return ["--stage", "seg2any", "--dataset", "synthetic", "--synthetic-size", "8",
           "--synthetic-empty-every", "2", "--resolution", "64", "--base", os.path.join(DEMO, "flux.safetensors"),
           "--vae", os.path.join(DEMO, "vae.safetensors"), "--t5", os.path.join(DEMO, "t5.safetensors"),
           "--batch-size", "1", "--rank", "4", "--lr", "1e-3", "--steps", str(steps), "--save-every", "2",
           "--val-every", "1000", "--report-to", "none", "--out", str(out), *extra]  # fmt: skip


def torchrun(out, *extra, steps=4, procs=2):
    """The README's multi-process command on CPUs (gloo)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs),
           "-m", "training.train", *train_args(out, *extra, steps=steps)]  # fmt: skip
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-6000:]
    with open(os.path.join(out, "train_log.json")) as f:
        return json.load(f)


def test_two_processes_with_buckets_and_batches_lacking_condition_tokens(tmp_path):
    """Every second sample has no entity and the per-rank batch is one sample, so steps mix ranks
    with and without condition tokens (and ranks with none at all); --bucket counts the lengths
    across both ranks and keeps them for the next run. (Without --bucket: the resume test below.)"""
    log = torchrun(tmp_path / "run", "--bucket", steps=3)
    assert log["processes"] == 2 and log["steps"] == 3 and len(log["loss"]) == 3
    assert log["batches_without_condition_tokens"] >= 1
    assert any(f.startswith("bucket_lengths-") for f in os.listdir(tmp_path / "run" / "cache"))


def test_two_process_resume_continues_the_loss_curve(tmp_path):
    """Stopped at step 2 and resumed, a two-process run gives the uninterrupted run's losses for
    steps 3 and 4 (same batches, same noise) and the same adapters. The runs are the plain (no
    --bucket) two-process case too: some of their batches have no condition token."""
    from safetensors.torch import load_file

    full = torchrun(tmp_path / "full")
    assert full["processes"] == 2 and full["batches_without_condition_tokens"] >= 1
    resumed = torchrun(tmp_path / "resumed", "--resume", str(tmp_path / "full" / "checkpoint-2"))
    assert resumed["start_step"] == 2 and full["start_step"] == 0
    assert resumed["loss"][:2] == full["loss"][:2]  # carried over from the checkpoint
    assert resumed["loss"][2:] == pytest.approx(full["loss"][2:], rel=1e-6, abs=0)
    a = load_file(str(tmp_path / "full" / "checkpoint-4" / "default" / "pytorch_lora_weights.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "checkpoint-4" / "default" / "pytorch_lora_weights.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-7) for k in a)
    # one process cannot continue a two-process curve: refused before anything is loaded
    from training.train import main as train_main

    with pytest.raises(ValueError, match=r"written by 2 process\(es\); resume it with 2 \(this run has 1\)"):
        train_main(train_args(tmp_path / "one", "--resume", str(tmp_path / "full" / "checkpoint-2")))


def test_two_processes_stay_in_step_when_a_rank_has_nothing_to_load(tmp_path):
    """Both of rank 0's items of the first epoch are broken (image and colour map disagree in size);
    the per-rank batch is one sample. Rank 0 takes part in those steps with a zero-weighted stand-in
    instead of skipping them, so both ranks stay at the same data position (a skipping rank would
    run ahead into the next epoch and pair its gradients with the other rank's other steps)."""
    import numpy as np
    from PIL import Image

    perm = torch.randperm(4, generator=torch.Generator().manual_seed(42)).tolist()  # DistributedSampler, epoch 0
    broken = set(perm[0::2])  # rank 0's share
    data = tmp_path / "data"
    data.mkdir()
    seg = np.zeros((64, 64, 3), dtype=np.uint8)
    seg[8:40, 8:40] = (250, 0, 0)
    for i in range(4):
        size = 48 if i in broken else 64
        Image.fromarray(np.full((size, size, 3), 100, dtype=np.uint8)).save(data / f"x{i}.png")
        Image.fromarray(seg).save(data / f"x{i}.seg.png")
        spec = {"caption": "a box", "segments_info": [{"color": [250, 0, 0], "text": "a red box"}]}
        (data / f"x{i}.json").write_text(json.dumps(spec))
    log = torchrun(tmp_path / "run", "--dataset", "folder", "--data-root", str(data), "--val-holdout", "0")
    assert log["steps"] == 4 and log["processes"] == 2
    assert log["skipped_samples"] == 4  # 2 broken items x 2 epochs, counted over both ranks
    for step in (2, 4):
        with open(tmp_path / "run" / f"checkpoint-{step}" / "trainer_state.json") as f:
            st = json.load(f)
        assert st["ranks"] == [[st["epoch"], st["batches"]]] * 2
