"""Validation on held-out samples of a real-format dataset (``--validation-samples``) and the trackers
that receive the training scalars and the validation images."""

from __future__ import annotations

import glob
import importlib.util
import json
import os

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("diffusers")
pytest.importorskip("peft")
pytest.importorskip("accelerate")

from tests.support.wandb_log import history  # noqa: E402
from training.train import main as train_main  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "seg2any", "demo")
RUN = ["--stage", "seg2any", "--resolution", "64", "--batch-size", "1", "--rank", "4", "--lr", "1e-3", "--val-steps", "1",
       "--base", os.path.join(DEMO, "flux.safetensors"), "--vae", os.path.join(DEMO, "vae.safetensors"),
       "--t5", os.path.join(DEMO, "t5.safetensors")]  # fmt: skip
SCALARS = ("loss", "lr", "grad_norm", "s_per_step", "samples_per_s", "peak_memory_mb")


def folder(root, n=5):
    """n items in the official inference format (image, colour map, JSON), named x0.. in order."""
    root.mkdir()
    seg = np.zeros((64, 64, 3), dtype=np.uint8)
    seg[8:40, 8:40] = (250, 0, 0)
    seg[40:60, 30:60] = (0, 0, 250)
    for i in range(n):
        Image.fromarray(np.full((64, 64, 3), 60 + 30 * i, dtype=np.uint8)).save(root / f"x{i}.png")
        Image.fromarray(seg).save(root / f"x{i}.seg.png")
        spec = {"caption": f"scene {i}", "segments_info": [{"color": [250, 0, 0], "text": "a red box"},
                                                           {"color": [0, 0, 250], "text": "a blue box"}]}  # fmt: skip
        (root / f"x{i}.json").write_text(json.dumps(spec))
    return root


@pytest.mark.skipif(not importlib.util.find_spec("tensorboard"), reason="tensorboard is not installed")
def test_held_out_samples_are_not_trained_on_and_their_images_are_logged(tmp_path):
    """5 items, 2 held out: an epoch is 3 batches of one (so after 4 steps the run is 1 batch into
    epoch 1, where 5 items would leave it at batch 4 of epoch 0); the two held-out layouts are
    rendered at the end into the PNG strip and into tensorboard's ``validation`` images."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    data = folder(tmp_path / "data")
    train_main([*RUN, "--dataset", "folder", "--data-root", str(data), "--validation-samples", "2", "--steps", "4",
                "--save-every", "4", "--val-every", "1000", "--report-to", "tensorboard", "--out", str(out)])  # fmt: skip
    with open(out / "train_log.json") as f:
        log = json.load(f)
    assert log["validation_samples"] == ["x3", "x4"]
    with open(out / "checkpoint-4" / "trainer_state.json") as f:
        st = json.load(f)
    assert (st["epoch"], st["batches"]) == (1, 1)
    strip = np.asarray(Image.open(out / "validation_000004.png"))
    assert strip.shape == (64, 128, 3)
    runs = [d for d, _, fs in os.walk(out / "seg2any") if any(f.startswith("events.") for f in fs)]
    images, scalars = {}, set()
    for d in runs:
        ea = EventAccumulator(d, size_guidance={"images": 0})
        ea.Reload()
        scalars |= set(ea.Tags()["scalars"])
        for tag in ea.Tags()["images"]:
            images[tag] = ea.Images(tag)
    assert set(SCALARS) <= scalars
    assert [e.step for e in images["validation"]] == [4]
    logged = np.asarray(Image.open(__import__("io").BytesIO(images["validation"][0].encoded_image_string)))
    assert logged.shape[1] >= 128 and logged.shape[0] >= 64  # both held-out images, side by side in the grid


@pytest.mark.skipif(not importlib.util.find_spec("wandb"), reason="wandb is not installed (optional tracker)")
def test_wandb_gets_the_same_scalars_offline(tmp_path, monkeypatch):
    """With wandb installed and no login, --report-to wandb logs offline into OUT/wandb; its log
    holds every step's scalars, the losses equal to train_log.json's, and the validation images."""
    for k in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc login
    out = tmp_path / "run"
    train_main([*RUN, "--dataset", "synthetic", "--synthetic-size", "4", "--steps", "2", "--save-every", "100",
                "--val-every", "1000", "--report-to", "wandb", "--out", str(out)])  # fmt: skip
    (run_log,) = glob.glob(str(out / "wandb" / "offline-run-*" / "run-*.wandb"))  # one offline run
    steps = history(run_log)
    with open(out / "train_log.json") as f:
        log = json.load(f)
    assert [h["_step"] for h in steps] == [1, 2]
    for h in steps:
        assert set(SCALARS) <= set(h), sorted(h)
    assert [h["loss"] for h in steps] == pytest.approx(log["loss"], rel=1e-6)
    # the held-out images, logged at the last step as files next to the log
    assert steps[-1]["validation/_type"] == "images/separated" and steps[-1]["validation/count"] >= 1
    for name in steps[-1]["validation/filenames"]:
        assert os.path.isfile(os.path.join(os.path.dirname(run_log), "files", name)), name
