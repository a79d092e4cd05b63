"""T5 token counts and the fixed-length padding the Seg2Any adapters were trained with.

Each caption is tokenised on its own and padded to a fixed length before T5 (512 for the global
caption, 50 per entity), encoded WITHOUT an attention mask, and only then are the pad positions
stripped (the end token stays). Entity captions longer than 50 tokens were truncated in
training, so we refuse them rather than silently cutting the description.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import TokenBudgetError

GLOBAL_MAX_TOKENS = 512
ENTITY_MAX_TOKENS = 50
PAD_ID = 0
EOS_ID = 1


class T5Tokenizer:
    """The T5 v1.1 SentencePiece tokenizer (ids end with </s> = 1), from ``spiece.model`` or
    ``tokenizer.json`` (the HF fast format ComfyUI ships)."""

    def __init__(self, path: str):
        self.path = path
        if os.path.isdir(path):
            for name in ("tokenizer.json", "spiece.model"):
                if os.path.exists(os.path.join(path, name)):
                    path = os.path.join(path, name)
                    break
        if path.endswith(".json"):
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(path)
            self._encode: Callable[[str], list[int]] = lambda s: list(tok.encode(s).ids)
            self._adds_eos = True
        elif path.endswith(".model"):
            import sentencepiece as spm

            sp = spm.SentencePieceProcessor(model_file=path)
            self._encode = lambda s: list(sp.encode(s))
            self._adds_eos = False
        else:
            raise FileNotFoundError(f"no T5 tokenizer (tokenizer.json or spiece.model) at {self.path}")

    def ids(self, text: str) -> list[int]:
        """Token ids of ``text`` ending with the end token, untruncated."""
        ids = self._encode(text)
        if not self._adds_eos or not ids or ids[-1] != EOS_ID:
            ids = [i for i in ids if i != EOS_ID] + [EOS_ID]
        return ids


def fit_to_length(ids: Sequence[int], max_len: int) -> tuple[list[int], int]:
    """HF ``padding='max_length', truncation=True``: keep max_len-1 tokens + </s>, pad with 0.

    Returns (padded ids, number of real tokens including </s>).
    """
    ids = list(ids)
    if ids and ids[-1] == EOS_ID:
        ids = ids[:-1]
    ids = ids[: max_len - 1] + [EOS_ID]
    n = len(ids)
    return ids + [PAD_ID] * (max_len - n), n


@dataclass(frozen=True)
class BudgetLine:
    index: int  # -1 for the global caption
    label: str
    tokens: int
    limit: int

    @property
    def over(self) -> bool:
        return self.tokens > self.limit

    def __str__(self) -> str:
        flag = "  <-- over the limit" if self.over else ""
        return f"{self.label}: {self.tokens}/{self.limit} T5 tokens{flag}"


def budget_report(
    count: Callable[[str], int],
    global_prompt: str,
    entity_prompts: Sequence[str],
    entity_labels: Sequence[str],
    *,
    entity_limit: int = ENTITY_MAX_TOKENS,
    global_limit: int = GLOBAL_MAX_TOKENS,
) -> list[BudgetLine]:
    """One line per caption with its T5 token count (including </s>)."""
    lines = []
    if global_prompt.strip():
        lines.append(BudgetLine(-1, "global caption", count(global_prompt), global_limit))
    for i, (p, lab) in enumerate(zip(entity_prompts, entity_labels)):
        lines.append(BudgetLine(i, lab, count(p), entity_limit))
    return lines


def over_limit_message(label: str, tokens: int, limit: int = ENTITY_MAX_TOKENS) -> str:
    """An entity caption over budget, worded once for the builder's refusal and the editor's status line."""
    return f"{label} has {tokens} T5 tokens, over {limit}: the builder refuses it; shorten it"


def long_caption_message(tokens: int, limit: int = GLOBAL_MAX_TOKENS) -> str:
    return f"the global caption has {tokens} T5 tokens: the run keeps the first {limit}"


def enforce_budget(lines: Sequence[BudgetLine]) -> None:
    """Raise for entity captions over budget (they would be cut); a long global caption is
    truncated like upstream and only reported."""
    over = [ln for ln in lines if ln.over and ln.index >= 0]
    if over:
        details = "; ".join(over_limit_message(ln.label, ln.tokens, ln.limit) for ln in over)
        raise TokenBudgetError(
            f"{len(over)} entity caption(s) exceed {over[0].limit} T5 tokens (the length the adapters were "
            f"trained with; longer captions would be cut): {details}"
        )
