"""Per-prompt Seg2Any settings that travel with a text conditioning to the model.

A text conditioning holds the T5 features [T0 | T1 .. TN]; this object says where each caption
starts and ends, which pixels each entity covers, which condition tokens to add and which
attention rules to use. It is immutable and compared by identity, so ComfyUI never merges two
different layouts into one batch by accident.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..attention.rules import MODES, MaskRule, RowLayout, isolation_layers, row_layout
from ..errors import ModelMismatchError
from ..layout.layout import Layout
from .condition_tokens import ConditionTokens
from .t5_tokens import ENTITY_MAX_TOKENS, GLOBAL_MAX_TOKENS, BudgetLine


@dataclass(frozen=True, eq=False)
class EncodedText:
    """T5 features [T0 | T1 .. TN] (1, T, D), the pooled vector (or None) and the span lengths."""

    cond: torch.Tensor
    pooled: torch.Tensor | None
    text_lens: tuple[int, ...]

    @classmethod
    def assemble(cls, global_prompt: str, entity_prompts, t5, pooled) -> EncodedText:
        """The official text layout: the global caption (up to 512 T5 tokens; an empty one takes no
        tokens and the pooled vector comes from the entity captions joined by '.') followed by each
        entity caption (up to 50), encoded one by one. ``t5(text, max_tokens)`` -> (T, D) features,
        ``pooled(text)`` -> the pooled vector; the CLI and the trainer bring their own encoders."""
        pieces, lens = [], []
        if global_prompt.strip():
            g = t5(global_prompt, GLOBAL_MAX_TOKENS)
            pieces.append(g)
            lens.append(g.shape[0])
            vec = pooled(global_prompt)
        else:
            lens.append(0)
            vec = pooled(".".join(entity_prompts))
        for p in entity_prompts:
            e = t5(p, ENTITY_MAX_TOKENS)
            pieces.append(e)
            lens.append(e.shape[0])
        return cls(torch.cat(pieces, 0)[None], vec, tuple(lens))


@dataclass(frozen=True, eq=False)
class EncodedLayout:
    """A layout with its captions encoded, for the positive and the official negative."""

    layout: Layout
    positive: EncodedText
    negative: EncodedText
    budget: tuple[BudgetLine, ...] = ()

    def report(self) -> str:
        area = self.layout.height * self.layout.width
        lines = []
        ents = self.layout.entities

        def place(b: BudgetLine) -> float:  # the user's order: the global caption, then the list's rows
            if not 0 <= b.index < len(ents):
                return -1
            return ents[b.index].place(b.index)

        for b in sorted(self.budget, key=place):
            share = ""
            if 0 <= b.index < len(self.layout.entities):
                share = f", {100.0 * self.layout.entities[b.index].mask.sum() / area:.1f}% of the image"
            lines.append(f"{b}{share}")
        lines += list(self.layout.notes)
        return "\n".join(lines)


@dataclass(frozen=True, eq=False)
class Seg2AnyConditioning:
    """Everything the runtime needs besides the text features themselves.

    ``text_lens`` = (len T0, len T1, ..., len TN) in tokens, matching the conditioning tensor.
    ``alpha`` in (0, 1] is the official ``cond2image_attention_weight``.
    """

    layout: Layout
    text_lens: tuple[int, ...]
    condition: ConditionTokens | None = None
    mode: str = "hard"
    isolation: str = "auto"
    alpha: float = 1.0
    _rows: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ModelMismatchError(f"unknown attention mode {self.mode!r}; expected one of {', '.join(MODES)}")
        if not (0.0 < self.alpha <= 1.0):
            raise ModelMismatchError(f"shape strength alpha must be in (0, 1], got {self.alpha}")
        if len(self.text_lens) != len(self.layout.entities) + 1:
            raise ModelMismatchError(
                f"{len(self.text_lens) - 1} entity captions encoded but the layout has {len(self.layout.entities)} entities"
            )

    @property
    def n_text(self) -> int:
        return int(sum(self.text_lens))

    @property
    def log_alpha(self) -> float:
        return math.log(self.alpha)

    @property
    def image_size(self) -> tuple[int, int] | None:
        """(height, width) in pixels the condition tokens were made for (None without them)."""
        return self.condition.image_size if self.condition is not None else None

    def row(self, grid: tuple[int, int]) -> RowLayout:
        """Token bookkeeping at a token grid, cached (the grid is fixed within a generation)."""
        r = self._rows.get(grid)
        if r is None:
            n_cond = self.condition.count if self.condition is not None else 0
            r = row_layout(self.text_lens, self.layout.masks, grid, n_cond, self.mode)
            self._rows[grid] = r
        return r

    def rule(self, block_index: int, n_double: int, n_single: int) -> MaskRule:
        """The mask rule for joint block ``block_index`` (double blocks first, then single)."""
        isolate = False
        if self.mode == "hard":
            rng = isolation_layers(self.isolation, n_double, n_single)
            isolate = rng is not None and rng[0] <= block_index <= rng[1]
        return MaskRule(isolate=isolate, log_alpha=self.log_alpha, place=self.mode == "place")

    def check_image_size(self, height: int, width: int) -> None:
        """The generation size must be the one the condition tokens were encoded for."""
        if self.condition is not None and self.condition.image_size != (height, width):
            ch, cw = self.condition.image_size
            raise ModelMismatchError(
                f"the latent is {width}x{height} px but the Seg2Any condition was made for {cw}x{ch} px; "
                f"use an empty latent of {cw}x{ch} (the Masked FLUX Sampler sizes it for you)"
            )

    def trivial(self) -> bool:
        """No entities and no condition tokens: the forward is plain FLUX with the adapters."""
        return not self.layout.entities and (self.condition is None or self.condition.count == 0)
