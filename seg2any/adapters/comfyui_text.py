"""Per-caption T5 encoding with a ComfyUI CLIP object, the way the Seg2Any adapters were trained.

ComfyUI's own FLUX text path pads T5 to 256 tokens and tokenises word by word; the released
weights saw each caption tokenised whole (HF ``T5TokenizerFast``), padded to a fixed length
(512 global, 50 per entity), encoded without an attention mask, pads stripped afterwards. We
build that token list ourselves and hand it to the CLIP object's encoder, so any FLUX text
encoder ComfyUI can load (fp8, GGUF-backed, offloaded) is used as is.
"""

from __future__ import annotations

import torch

from ..conditioning.settings import EncodedText
from ..conditioning.t5_tokens import (
    ENTITY_MAX_TOKENS,
    GLOBAL_MAX_TOKENS,
    BudgetLine,
    budget_report,
    enforce_budget,
    fit_to_length,
)
from ..errors import ModelMismatchError

T5_KEY = "t5xxl"


def t5_ids_fn(clip):
    """Whole-string T5 token ids (ending with </s>) using the tokenizer inside ``clip``."""
    hf = None
    holder = getattr(clip, "tokenizer", None)
    # FluxTokenizer keeps it as .t5xxl, an SD1Tokenizer named 't5xxl' as .clip_t5xxl
    for sub in [getattr(holder, T5_KEY, None), getattr(holder, "clip_" + T5_KEY, None), *vars(holder or object()).values()]:
        if getattr(sub, "embedding_key", None) == T5_KEY and getattr(sub, "tokenizer", None) is not None:
            hf = sub.tokenizer
            break
    if hf is None:
        raise ModelMismatchError(
            "this CLIP has no T5 text encoder; Seg2Any needs FLUX's text encoders (clip_l + t5xxl, "
            "e.g. DualCLIPLoader with type 'flux')"
        )

    def ids(text: str) -> list[int]:
        out = list(hf(text)["input_ids"])
        if not out or out[-1] != 1:
            out = out + [1]
        return out

    return ids


def _encode_sections(clip, t5_lists: list[list[int]], text_for_others: str):
    tokens = clip.tokenize(text_for_others)
    if T5_KEY not in tokens:
        raise ModelMismatchError("this CLIP's tokenizer produces no t5xxl tokens")
    tokens = dict(tokens)
    tokens[T5_KEY] = [[(i, 1.0) for i in ids] for ids in t5_lists]
    cond, pooled = clip.encode_from_tokens(tokens, return_pooled=True)
    return cond, pooled


def encode_captions(
    clip,
    global_prompt: str,
    entity_prompts: list[str],
    entity_labels: list[str],
    *,
    entity_max: int = ENTITY_MAX_TOKENS,
    global_max: int = GLOBAL_MAX_TOKENS,
    enforce: bool = True,
) -> tuple[EncodedText, list[BudgetLine]]:
    """Encode a global caption and N entity captions into one Seg2Any text conditioning."""
    ids = t5_ids_fn(clip)
    budget = budget_report(
        lambda s: len(ids(s)), global_prompt, entity_prompts, entity_labels, entity_limit=entity_max, global_limit=global_max
    )
    if enforce:
        enforce_budget(budget)
    pieces, lens = [], []
    pooled = None
    g = (global_prompt or "").strip()
    if g:
        padded, n = fit_to_length(ids(g), global_max)
        cond, pooled = _encode_sections(clip, [padded], g)
        pieces.append(cond[:, :n])
        lens.append(n)
    else:
        lens.append(0)
    if entity_prompts:
        fitted = [fit_to_length(ids(p), entity_max) for p in entity_prompts]
        cond, _ = _encode_sections(clip, [f[0] for f in fitted], "")
        for i, (_, n) in enumerate(fitted):
            pieces.append(cond[:, i * entity_max : i * entity_max + n])
            lens.append(n)
    if pooled is None:
        # no global caption: upstream pools CLIP over the entity captions joined by '.'
        _, pooled = _encode_sections(clip, [fit_to_length([1], 1)[0]], ".".join(entity_prompts))
    if not pieces:
        raise ModelMismatchError("nothing to encode: the layout has neither a global caption nor entities")
    return EncodedText(torch.cat(pieces, dim=1), pooled, tuple(lens)), budget


def encode_negative(
    clip, negative_prompt: str, n_entities: int, *, entity_max=ENTITY_MAX_TOKENS, global_max=GLOBAL_MAX_TOKENS
) -> EncodedText:
    """The official true-CFG negative: the negative prompt as global caption and in every region."""
    ids = t5_ids_fn(clip)
    text = negative_prompt or ""
    padded, n = fit_to_length(ids(text), global_max)
    cond, pooled = _encode_sections(clip, [padded], text)
    pieces, lens = [cond[:, :n]], [n]
    if n_entities:
        pe, ne = fit_to_length(ids(text), entity_max)
        ent, _ = _encode_sections(clip, [pe], "")
        for _ in range(n_entities):
            pieces.append(ent[:, :ne])
            lens.append(ne)
    return EncodedText(torch.cat(pieces, dim=1), pooled, tuple(lens))
