import os

import pytest
import torch
from safetensors.torch import load_file, save_file

from seg2any.errors import LoraFormatError
from seg2any.flux.lora_format import (
    FILE_NAME,
    LoraFactor,
    ModelDims,
    Seg2AnyLora,
    cond_targets,
    default_targets,
    load_checkpoint,
    validate,
    write_checkpoint,
    write_combined,
)

DIMS = ModelDims(n_double=2, n_single=3, hidden=8, mlp_hidden=32, in_channels=64)


def make_lora(rank=2, seed=0):
    g = torch.Generator().manual_seed(seed)

    def f(names):
        out = {}
        for n in names:
            fin, fout = DIMS.linear_shape(n)
            out[n] = LoraFactor(torch.randn(rank, fin, generator=g), torch.randn(fout, rank, generator=g))
        return out

    return Seg2AnyLora(f(default_targets(2, 3)), f(cond_targets(2, 3)))


def test_target_sets_match_the_official_counts():
    # official: 14 per double + 6 per single for 'default', x_embedder + 7 + 6 for 'cond'
    assert len(default_targets(19, 38)) * 2 == 988
    assert len(cond_targets(19, 38)) * 2 == 724
    assert "x_embedder" in cond_targets(1, 1) and "x_embedder" not in default_targets(1, 1)
    assert "transformer_blocks.0.norm1_context.linear" not in cond_targets(1, 1)


def test_official_layout_round_trip(tmp_path):
    lora = make_lora()
    write_checkpoint(str(tmp_path / "checkpoint-20000"), lora)
    sd = load_file(str(tmp_path / "checkpoint-20000" / "cond" / FILE_NAME))
    assert "transformer.x_embedder.lora_A.weight" in sd
    assert "transformer.single_transformer_blocks.2.proj_out.lora_B.weight" in sd
    for path in (
        tmp_path / "checkpoint-20000",
        tmp_path / "checkpoint-20000" / "default" / FILE_NAME,
        tmp_path / "checkpoint-20000" / "cond" / FILE_NAME,
    ):
        got = load_checkpoint(str(path))
        validate(got, DIMS)
        assert set(got.default) == set(lora.default) and set(got.cond) == set(lora.cond)
        for k, v in lora.cond.items():
            assert torch.equal(got.cond[k].down, v.down) and torch.equal(got.cond[k].up, v.up)


def test_combined_file_round_trip(tmp_path):
    lora = make_lora()
    p = str(tmp_path / "one.safetensors")
    write_combined(p, lora)
    assert any(".lora_A.cond.weight" in k for k in load_file(p))
    got = load_checkpoint(p)
    assert set(got.cond) == set(lora.cond)


def test_missing_cond_folder_is_allowed_with_a_note(tmp_path):
    lora = make_lora()
    write_checkpoint(str(tmp_path / "ck"), Seg2AnyLora(lora.default, {}))
    got = load_checkpoint(str(tmp_path / "ck"))
    assert got.cond == {} and "base weights" in got.notes[0]


def test_alpha_keys_set_the_scale(tmp_path):
    os.makedirs(tmp_path / "ck" / "default")
    sd = {
        "transformer.transformer_blocks.0.attn.to_q.lora_A.weight": torch.zeros(4, 8),
        "transformer.transformer_blocks.0.attn.to_q.lora_B.weight": torch.zeros(8, 4),
        "transformer.transformer_blocks.0.attn.to_q.alpha": torch.tensor(2.0),
    }
    save_file(sd, str(tmp_path / "ck" / "default" / FILE_NAME))
    assert load_checkpoint(str(tmp_path / "ck")).default["transformer_blocks.0.attn.to_q"].scale == 0.5


@pytest.mark.parametrize(
    "keys, fragment",
    [
        ({"lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight": torch.zeros(2, 8)}, "not Seg2Any LoRA keys"),
        ({"transformer.transformer_blocks.0.attn.to_q.lora_A.weight": torch.zeros(2, 8)}, "missing a half"),
    ],
)
def test_foreign_or_broken_files_are_refused(tmp_path, keys, fragment):
    os.makedirs(tmp_path / "ck" / "default")
    save_file(keys, str(tmp_path / "ck" / "default" / FILE_NAME))
    with pytest.raises(LoraFormatError, match=fragment):
        load_checkpoint(str(tmp_path / "ck"))


def test_plain_file_without_adapters_is_refused(tmp_path):
    p = str(tmp_path / "x.safetensors")
    save_file({"transformer.transformer_blocks.0.attn.to_q.lora_A.weight": torch.zeros(2, 8)}, p)
    with pytest.raises(LoraFormatError, match="not Seg2Any LoRA keys"):
        load_checkpoint(p)
    with open(str(tmp_path / "bad.safetensors"), "wb") as f:
        f.write(b"not a safetensors file")
    with pytest.raises(LoraFormatError, match="cannot read"):
        load_checkpoint(str(tmp_path / "bad.safetensors"))


def test_validate_lists_mismatches():
    lora = make_lora()
    bigger = ModelDims(2, 3, 16, 64, 64)
    with pytest.raises(LoraFormatError, match=r"expected A \(r, 16\)"):
        validate(lora, bigger)
    deeper = Seg2AnyLora({"transformer_blocks.5.attn.to_q": lora.default["transformer_blocks.0.attn.to_q"]}, {})
    with pytest.raises(LoraFormatError, match="not a module"):
        validate(deeper, DIMS)
    wrong = Seg2AnyLora(
        lora.default, {"transformer_blocks.0.norm1_context.linear": lora.default["transformer_blocks.0.norm1_context.linear"]}
    )
    with pytest.raises(LoraFormatError, match="cond:transformer_blocks.0.norm1_context.linear"):
        validate(wrong, DIMS)


def test_comfy_targets_by_hand():
    h, m = 8, 32
    assert DIMS.comfy_target("transformer_blocks.1.attn.to_k") == ("double_blocks.1.img_attn.qkv", h, h)
    assert DIMS.comfy_target("transformer_blocks.0.attn.add_v_proj") == ("double_blocks.0.txt_attn.qkv", 2 * h, h)
    assert DIMS.comfy_target("single_transformer_blocks.2.proj_mlp") == ("single_blocks.2.linear1", 3 * h, m)
    assert DIMS.comfy_target("single_transformer_blocks.0.proj_out") == ("single_blocks.0.linear2", 0, h)
    assert DIMS.comfy_target("transformer_blocks.0.norm1.linear") == ("double_blocks.0.img_mod.lin", 0, 6 * h)
    assert DIMS.comfy_target("x_embedder") == ("img_in", 0, h)
