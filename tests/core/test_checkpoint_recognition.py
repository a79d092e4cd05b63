"""Telling a Seg2Any checkpoint from other .safetensors by its header alone (the loader's list):
every file load_checkpoint accepts is recognised, FLUX/T5/VAE weights and ordinary LoRAs are not,
and the tensor data is never read."""

from __future__ import annotations

import os

import torch
from safetensors.torch import save_file

from seg2any.flux.lora_format import FILE_NAME, header_keys, is_seg2any_keys, load_checkpoint, write_checkpoint, write_combined
from tests.core.test_lora_format import make_lora


def test_written_checkpoints_are_recognised_and_load(tmp_path):
    lora = make_lora()
    write_checkpoint(str(tmp_path / "ck"), lora)
    write_combined(str(tmp_path / "combined.safetensors"), lora)
    for adapter in ("default", "cond"):
        keys = header_keys(str(tmp_path / "ck" / adapter / FILE_NAME))
        assert keys and is_seg2any_keys(keys, adapter)
    keys = header_keys(str(tmp_path / "combined.safetensors"))
    assert is_seg2any_keys(keys)
    load_checkpoint(str(tmp_path / "combined.safetensors"))  # what is listed also loads


def test_model_weights_and_ordinary_loras_are_not(tmp_path):
    t = torch.zeros(2, 2)  # cloned per key: safetensors refuses shared tensors
    files = {
        "flux.safetensors": {"double_blocks.0.img_attn.qkv.weight": t, "img_in.weight": t},
        "t5.safetensors": {"encoder.block.0.layer.0.SelfAttention.q.weight": t},
        "vae.safetensors": {"decoder.conv_in.weight": t},
        # a diffusers FLUX LoRA: PEFT keys but no adapter names -> load_checkpoint refuses it as combined file
        "style_lora.safetensors": {"transformer.transformer_blocks.0.attn.to_q.lora_A.weight": t},
        "kohya.safetensors": {"lora_unet_double_blocks_0_img_attn_proj.lora_down.weight": t},
        "cond_only.safetensors": {"transformer.x_embedder.lora_A.cond.weight": t, "transformer.x_embedder.lora_B.cond.weight": t},
    }
    for name, sd in files.items():
        save_file({k: v.clone() for k, v in sd.items()}, str(tmp_path / name))
        keys = header_keys(str(tmp_path / name))
        assert keys and not is_seg2any_keys(keys), name


def test_only_the_header_is_read(tmp_path):
    """A file cut off after its header still names its tensors: the list never reads weights."""
    path = tmp_path / "big.safetensors"
    write_combined(str(path), make_lora())
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
    os.truncate(path, 8 + n)  # header kept, all tensor bytes gone
    assert is_seg2any_keys(header_keys(str(path)))


def test_not_safetensors_is_none(tmp_path):
    (tmp_path / "junk.safetensors").write_bytes(b"\x00\x01not a safetensors file at all")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    assert header_keys(str(tmp_path / "junk.safetensors")) is None
    assert header_keys(str(tmp_path / "empty.safetensors")) is None
    assert header_keys(str(tmp_path / "missing.safetensors")) is None
