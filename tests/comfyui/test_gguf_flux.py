"""Quantised FLUX as most users run it on 8-16 GB cards: city96's ComfyUI-GGUF (the real pack, from
the shared snapshot) loading a FLUX written as GGUF Q8_0 / Q4_0, with the Seg2Any patch on top.

The model is the smallest ComfyUI detects as FLUX (3072 wide, 24 heads, one double and one single
block, random weights). Its bf16 safetensors twin is the reference: Seg2Any on the GGUF model may
deviate from Seg2Any on the twin by no more than plain FLUX does (the quantisation error), and each
adapter must move both models' outputs alike.
"""

from __future__ import annotations

import os

import folder_paths
import pytest
import torch

from seg2any.adapters.comfyui import apply_seg2any
from tests.conftest import COMFYUI_PATH, IN_CI, SHARED
from tests.support.comfy_run import direct
from tests.support.gguf_flux import gguf_pack_archive, import_gguf_pack, unpack_gguf_pack, write_gguf
from tests.support.server import ComfyServer

from .test_full_width_flux import _info, _inputs, files, seg2any_graph  # noqa: F401  (the bf16 twin, LoRA, VAE)

gguf = pytest.importorskip("gguf") if not IN_CI else __import__("gguf")
ARCHIVE = gguf_pack_archive(SHARED)
if ARCHIVE is None:
    if IN_CI:
        raise RuntimeError(f"no ComfyUI-GGUF snapshot under {SHARED}/custom_nodes (CI=true)")
    pytest.skip("no ComfyUI-GGUF snapshot in the shared folder", allow_module_level=True)


@pytest.fixture(scope="module")
def gguf_files(files):  # noqa: F811
    dm = os.path.join(files["base"], "models", "diffusion_models")
    counts = {q: write_gguf(os.path.join(dm, f"flux1-dev-{q}.gguf"), files["bf16"], q) for q in ("Q8_0", "Q4_0")}
    pack = unpack_gguf_pack(ARCHIVE, os.path.join(files["base"], "custom_nodes"))
    return {**files, "counts": counts, "pack": pack}


def _load(gguf_files, q):
    """What the UnetLoaderGGUF node returns, called in-process with the file in ComfyUI's model folders."""
    folder_paths.add_model_folder_path("diffusion_models", os.path.join(gguf_files["base"], "models", "diffusion_models"))
    module = import_gguf_pack(gguf_files["pack"])
    loader = module.NODE_CLASS_MAPPINGS["UnetLoaderGGUF"]()
    with torch.inference_mode():
        return loader.load_unet(f"flux1-dev-{q}.gguf")[0]


def _bf16(files):  # noqa: F811
    import comfy.sd

    with torch.inference_mode():
        return comfy.sd.load_diffusion_model_state_dict(dict(files["bf16"]))


def rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


@pytest.mark.parametrize("q", ["Q8_0", "Q4_0"])
def test_seg2any_on_gguf_stays_within_the_quantisation_error(gguf_files, q):
    assert gguf_files["counts"][q].get(q, 0) >= 10  # the weight matrices really are quantised
    mq, m16 = _load(gguf_files, q), _bf16(gguf_files)
    w = mq.model.diffusion_model.double_blocks[0].img_attn.qkv.weight
    assert getattr(w, "tensor_type", None) == getattr(gguf.GGMLQuantizationType, q)
    x, t, ctx, y, g = _inputs()
    info = _info()
    stock = rel(direct(mq, x, t, ctx, y, g), direct(m16, x, t, ctx, y, g))
    assert 0 < stock < 0.5
    lora = gguf_files["lora"]

    def seg2any(m, s_default, s_cond):
        return direct(apply_seg2any(m, lora, s_default, s_cond, backend="sdpa"), x, t, ctx, y, g, [info])

    q_full, ref_full = seg2any(mq, 1.0, 1.0), seg2any(m16, 1.0, 1.0)
    assert rel(q_full, ref_full) < 1.5 * stock + 1e-3, (rel(q_full, ref_full), stock)
    if q != "Q8_0":
        return  # the adapters' routing does not depend on the bit width: checked once, at Q8_0
    # each adapter alone moves the GGUF model as it moves the bf16 model (the default adapter through
    # the GGUF pack's own patching of quantised weights, the cond adapter through our hooks)
    q_none, ref_none = seg2any(mq, 0.0, 0.0), seg2any(m16, 0.0, 0.0)
    for s in ((1.0, 0.0), (0.0, 1.0)):
        dq, dref = seg2any(mq, *s) - q_none, seg2any(m16, *s) - ref_none
        assert dref.norm() > 1e-3 * ref_none.norm(), s  # the adapter does something
        assert rel(dq, dref) < 0.2 + 3 * stock, (s, rel(dq, dref), stock)


def test_gguf_loader_node_runs_a_seg2any_graph(gguf_files):
    """The user's graph: UnetLoaderGGUF -> Load Seg2Any LoRA -> Masked FLUX Sampler, batch 2, true CFG."""
    server = ComfyServer(COMFYUI_PATH, gguf_files["base"]).start()
    try:
        graph = seg2any_graph({"class_type": "UnetLoaderGGUF", "inputs": {"unet_name": "flux1-dev-Q8_0.gguf"}}, "gguf")
        result = server.run(graph, timeout=1200)
        assert result["status"] == "success", (result["errors"], server.tail())
        assert len([i for o in result["outputs"].values() for i in o.get("images", [])]) == 2
    finally:
        server.stop()
