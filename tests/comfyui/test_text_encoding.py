"""Captions reach the model as Seg2Any was trained: each caption tokenised whole by HF's T5
tokenizer, padded (512 global, 50 per entity), encoded by T5 without an attention mask, pads
stripped. Expectation: transformers' T5EncoderModel with the same weights and HF token ids."""

from __future__ import annotations

import os

import pytest
import torch

from seg2any.adapters.comfyui_demo import demo_clip
from seg2any.adapters.comfyui_text import encode_captions, encode_negative, t5_ids_fn
from seg2any.conditioning.t5_tokens import T5Tokenizer
from tests.conftest import COMFYUI_PATH, ROOT
from tests.support.tiny_models import tiny_t5_config, tiny_t5_state_dict

transformers = pytest.importorskip("transformers")

GLOBAL = "A cosy reading nook with an armchair, a sleeping cat and a tall floor lamp."
ENTITIES = ["a blue velvet armchair", "an orange tabby cat, curled up asleep", "a brass floor lamp"]


@pytest.fixture(scope="module")
def pair():
    cfg = tiny_t5_config(32)
    sd = tiny_t5_state_dict(cfg, seed=3)
    clip = demo_clip(sd, cfg)
    hf = transformers.T5EncoderModel(transformers.T5Config(**cfg))
    full = dict(sd, **{"encoder.embed_tokens.weight": sd["shared.weight"]})
    hf.load_state_dict(full, strict=True)
    tok = transformers.T5TokenizerFast(
        tokenizer_file=os.path.join(COMFYUI_PATH, "comfy", "text_encoders", "t5_tokenizer", "tokenizer.json")
    )
    return clip, hf.eval().double(), tok


def hf_features(hf, tok, text, pad_to):
    ids = tok(text, padding="max_length", max_length=pad_to, truncation=True)["input_ids"]
    n = sum(1 for i in ids if i != 0)
    with torch.no_grad():
        out = hf(input_ids=torch.tensor([ids])).last_hidden_state[0, :n]  # no attention mask
    return out, n


def test_captions_match_transformers_t5_padded_without_mask(pair):
    clip, hf, tok = pair
    enc, budget = encode_captions(clip, GLOBAL, ENTITIES, [f"entity {i + 1}" for i in range(3)])
    want, lens = [], []
    for text, pad in [(GLOBAL, 512)] + [(e, 50) for e in ENTITIES]:
        f, n = hf_features(hf, tok, text, pad)
        want.append(f)
        lens.append(n)
    assert enc.text_lens == tuple(lens)
    got = enc.cond[0].double()
    ref = torch.cat(want)
    assert got.shape == ref.shape
    assert (got - ref).abs().max() / ref.abs().max() < 1e-5
    # the padding length matters (no mask): the same caption padded to 512 encodes differently
    alone, _ = hf_features(hf, tok, ENTITIES[0], 512)
    assert (alone - want[1]).abs().max() > 1e-3
    assert [b.tokens for b in budget] == lens


def test_negative_is_the_negative_prompt_in_every_region(pair):
    clip, hf, tok = pair
    neg = encode_negative(clip, "blurry, low quality", 3)
    g, ng = hf_features(hf, tok, "blurry, low quality", 512)
    e, ne = hf_features(hf, tok, "blurry, low quality", 50)
    assert neg.text_lens == (ng, ne, ne, ne)
    ref = torch.cat([g, e, e, e])
    assert (neg.cond[0].double() - ref).abs().max() / ref.abs().max() < 1e-5


def test_comfyui_tokenizer_json_equals_sentencepiece_ids(pair):
    """The budget counts tokens with our SentencePiece copy; ComfyUI encodes with its tokenizer.json."""
    clip, _, _ = pair
    ids = t5_ids_fn(clip)
    sp = T5Tokenizer(os.path.join(ROOT, "seg2any", "demo", "spiece.model")).ids
    for text in [GLOBAL, *ENTITIES, "Ünïcode café — 20% off!", "  spaced   out  ", "x" * 300]:
        assert ids(text) == sp(text), text
