"""The demo model draws any layout: rendered at its trained 128 px and scaled back, it follows
layouts of any size, aspect ratio and colour count that nobody tuned on.

Scored with the variance explained by the segmentation (training.metrics.variance_explained):
rendered at the layout's own size the demo gives uniform noise (about 0.003, issue 10); the
threshold 0.3 is what a picture that follows its layout clears easily (the shipped demo layout
scores about 0.7).
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from PIL import Image

from seg2any.layout.layout import layout_from_segmentation
from seg2any.sampling.trained_size import DEMO_RESOLUTION, fit_layout, trained_size
from tests.support.random_layouts import random_layout
from training.metrics import segment_labels, variance_explained

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "seg2any", "demo")
MIN_VE = 0.3

pytestmark = [
    pytest.mark.skipif(not os.path.isfile(os.path.join(DEMO, "flux.safetensors")), reason="demo model not packaged"),
]

# (rng seed, width, height, entities, tiny vanishing entity)
DEFAULT = [(11, 1024, 1024, 5, False), (12, 1280, 1920, 12, False), (13, 2048, 512, 3, True)]
MORE = [
    (21, 640, 480, 1, False),
    (22, 512, 2048, 4, True),
    (23, 800, 800, 40, False),
    (24, 1920, 1080, 8, False),
    (25, 96, 64, 2, False),
]


@pytest.fixture(scope="module")
def demo():
    pytest.importorskip("diffusers")
    from seg2any.adapters.diffusers_pipeline import load_demo

    return load_demo()


def _score(demo, case):
    from seg2any.adapters.diffusers_pipeline import render

    seed, w, h, n, tiny = case
    img, spec = random_layout(seed, w, h, n, tiny=tiny)
    lay = layout_from_segmentation(img, spec)
    out, fit = render(demo, lay, steps=20, seed=spec["seed"], cond_scale_factor=1)
    assert out[0].shape == (h, w, 3)
    assert fit is not None and (fit.layout.height, fit.layout.width) == trained_size(h, w, DEMO_RESOLUTION)
    if tiny:
        assert "'a plain red dot'" in fit.message and "vanish" in fit.message
    ve = variance_explained(out[0], segment_labels(lay))
    print(
        f"variance explained {w}x{h}, {len(lay.entities)} entities, {len(np.unique(img.reshape(-1, 3), axis=0))} colours: {ve:.3f}"
    )
    return ve


@pytest.mark.parametrize("case", DEFAULT, ids=lambda c: f"{c[1]}x{c[2]}-{c[3]}")
def test_demo_follows_layouts_it_was_not_tuned_on(demo, case):
    assert _score(demo, case) >= MIN_VE


@pytest.mark.slow
@pytest.mark.parametrize("case", MORE, ids=lambda c: f"{c[1]}x{c[2]}-{c[3]}")
def test_demo_follows_more_sizes_and_colour_counts(demo, case):
    assert _score(demo, case) >= MIN_VE


def test_generated_layouts_are_what_the_test_claims():
    """The premises: anti-aliased maps with 100+ colours, a tiny entity present in the map that
    vanishes at the demo's size, and sizes that are multiples of 16 with the layout's aspect."""
    img, spec = random_layout(12, 1280, 1920, 12)
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 100
    lay = layout_from_segmentation(img, spec)
    (note,) = lay.notes
    assert note.count("[") == 3 and "count as background" in note
    img, spec = random_layout(13, 2048, 512, 3, tiny=True)
    lay = layout_from_segmentation(img, spec)
    dot = [i for i, e in enumerate(lay.entities) if e.prompt == "a plain red dot"]
    assert len(dot) == 1 and lay.entities[dot[0]].area == 9
    fit = fit_layout(lay, DEMO_RESOLUTION)
    assert dot[0] in fit.vanished and fit.message.count("\n") == 0
    for h, w in [(1920, 1280), (512, 2048), (64, 96), (1000, 1000), (480, 640)]:
        th, tw = trained_size(h, w, DEMO_RESOLUTION)
        assert th % 16 == 0 and tw % 16 == 0
        assert abs(np.log((th / tw) / (h / w))) < 0.25  # aspect kept to within rounding to 16 px
        assert 0.6 < th * tw / DEMO_RESOLUTION**2 < 1.5
    assert fit_layout(layout_from_segmentation(*random_layout(1, 128, 128, 2)), DEMO_RESOLUTION) is None


def test_demo_loads_without_the_peft_warning_and_with_its_adapters():
    """peft warned "Already found a `peft_config`" on every load (one add_adapter per adapter);
    the adapters must still be exactly the checkpoint's."""
    pytest.importorskip("diffusers")
    import logging

    import torch

    from seg2any.adapters.diffusers import lora_from_peft
    from seg2any.adapters.diffusers_pipeline import load_demo
    from seg2any.flux.lora_format import load_checkpoint

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger().addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            models = load_demo()
    finally:
        logging.getLogger().removeHandler(handler)
    said = [str(w.message) for w in caught] + [r.getMessage() for r in records]
    assert not [s for s in said if "peft_config" in s], said
    ckpt = load_checkpoint(os.path.join(DEMO, "seg2any_demo_lora"))
    got = lora_from_peft(models.transformer)
    for name in ("default", "cond"):
        want = ckpt.adapter(name)
        assert got.adapter(name).keys() == want.keys() and want
        for k, f in want.items():
            assert torch.allclose(got.adapter(name)[k].down, f.down) and torch.allclose(got.adapter(name)[k].up, f.up * f.scale)
    assert models.transformer.active_adapters() == ["default", "cond"]


def test_cli_says_once_how_it_renders_and_writes_the_layout_size_with_official_noise(tmp_path):
    pytest.importorskip("diffusers")
    img, spec = random_layout(13, 2048, 512, 3, tiny=True)
    Image.fromarray(img).save(tmp_path / "wide.png")
    import json

    (tmp_path / "wide.json").write_text(json.dumps(spec))
    r = subprocess.run(
        [sys.executable, "-m", "seg2any", "generate", str(tmp_path / "wide.json"), "--out", str(tmp_path / "o.png"), "--steps", "4",
         "--noise", "official", "--batch", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [ln for ln in r.stdout.splitlines() if "trained at" in ln]
    assert len(lines) == 1, r.stdout
    assert lines[0].startswith(
        "note: the demo model was trained at 128x128 px: the 2048x512 layout is rendered at 256x64 and the image "
        "scaled back to 2048x512; "
    )
    assert "'a plain red dot'" in lines[0]
    assert "peft_config" not in r.stderr
    assert "note: official noise on cpu: image i from a cpu generator seeded with" in r.stdout
    a, b = (np.asarray(Image.open(tmp_path / f"o_{i}.png"), np.int16) for i in (0, 1))
    assert a.shape == b.shape == (512, 2048, 3)
    assert np.abs(a - b).mean() > 1  # seed + i: two different images
