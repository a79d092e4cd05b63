"""The editor's live token counts: what a client may ask and what it gets back.

The route is reachable by any page that can reach the ComfyUI server, so it takes only a bounded
list of short texts (no paths, no options) and counts them exactly as the builder does before it
refuses a caption: the stripped string tokenised whole by T5, ``</s>`` included (0 for a blank).
"""

from __future__ import annotations

from collections.abc import Callable

from .t5_tokens import ENTITY_MAX_TOKENS, GLOBAL_MAX_TOKENS

MAX_TEXTS = 300  # more than the editor's entity limit (255) plus the caption
MAX_TEXT_CHARS = 10000
MAX_BODY_BYTES = 1024 * 1024


class TokenRequestError(ValueError):
    """A malformed request; the message is sent back with a 400."""


def count_tokens(payload, count: Callable[[str], int]) -> dict:
    """``{"texts": [str, ...]}`` -> ``{"counts": [...], "entity_limit": 50, "global_limit": 512}``."""
    if not isinstance(payload, dict):
        raise TokenRequestError(f"expected a JSON object with 'texts', got {type(payload).__name__}")
    extra = sorted(set(payload) - {"texts"})
    if extra:
        raise TokenRequestError(f"unknown field(s) {extra}: only 'texts' is accepted")
    texts = payload.get("texts")
    if not isinstance(texts, list):
        raise TokenRequestError(f"'texts' must be a list of strings, got {type(texts).__name__}")
    if len(texts) > MAX_TEXTS:
        raise TokenRequestError(f"{len(texts)} texts, at most {MAX_TEXTS} per request")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TokenRequestError(f"texts[{i}] must be a string, got {type(t).__name__}")
        if len(t) > MAX_TEXT_CHARS:
            raise TokenRequestError(f"texts[{i}] has {len(t)} characters, at most {MAX_TEXT_CHARS}")
    return {
        "counts": [count(t.strip()) if t.strip() else 0 for t in texts],  # the builder strips, then counts
        "entity_limit": ENTITY_MAX_TOKENS,
        "global_limit": GLOBAL_MAX_TOKENS,
    }
