"""Every FLUX.1-dev template says where each model file its loaders name comes from, the way ComfyUI's
own templates do (loader node ``properties.models``), so a user who opens it without the files is
told what to download and into which folder instead of seeing bare "missing model" errors."""

from __future__ import annotations

import glob
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEMPLATES = sorted(glob.glob(os.path.join(ROOT, "example_workflows", "*FLUX.1-dev*.json")))
# loader -> (widget values that are model files, the models folder ComfyUI reads them from)
LOADERS = {
    "UNETLoader": ([0], "diffusion_models"),
    "DualCLIPLoader": ([0, 1], "text_encoders"),
    "VAELoader": ([0], "vae"),
    "Seg2AnyLoadLoRA": ([0], "seg2any"),
}


def test_there_are_flux_templates():
    assert len(TEMPLATES) >= 4


@pytest.mark.parametrize("path", TEMPLATES, ids=os.path.basename)
def test_each_loader_declares_its_files(path):
    with open(path, encoding="utf-8") as f:
        wf = json.load(f)
    seen = set()
    for node in wf["nodes"]:
        if node["type"] not in LOADERS:
            continue
        seen.add(node["type"])
        slots, folder = LOADERS[node["type"]]
        declared = node["properties"].get("models")
        assert declared, f"{os.path.basename(path)}: {node['type']} declares no models"
        for m in declared:
            assert m["directory"] == folder and m["url"].startswith("https://") and m["url"].endswith(".safetensors"), m
        names = {m["name"] for m in declared}
        for i in slots:
            value = node["widgets_values"][i]
            if value.endswith("/"):  # a Seg2Any checkpoint folder: both adapters
                assert {
                    f"{value}default/pytorch_lora_weights.safetensors",
                    f"{value}cond/pytorch_lora_weights.safetensors",
                } <= names
            else:
                assert value in names, (node["type"], value, names)
                assert next(m for m in declared if m["name"] == value)["url"].split("/")[-1].split("?")[0] == value
    assert seen == set(LOADERS), f"{os.path.basename(path)}: no {set(LOADERS) - seen}"
