"""What a run would refuse or quietly change in a layout, worded once.

The builder's report and the Layout Editor's status line (through ``POST /seg2any/layout_problems``)
both call :func:`layout_problems`, so the editor cannot warn in other words than the run, or about
another size: vanished entities are checked at the size the run renders (a trained-size model's size
for the demo, the layout's whole tokens for FLUX), and the message names that size.

Entities are named and listed in the user's order (the editor's rows, the official JSON's segments),
not the sorted-colour order the model reads them in: a user who reads "entity 1" looks at row 1.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import LayoutError
from ..flux import spec
from ..layout.editor_document import (
    MAX_DOCUMENT_CHARS,
    NO_VISIBLE,
    EditorDocument,
    document_layout,
    empty_prompt_message,
    parse_document,
    unpainted_message,
)
from ..layout.layout import RGB, Layout, entity_label, unlisted_note
from ..sampling.trained_size import DEMO_RESOLUTION, render_size, vanished_at_render
from .t5_tokens import ENTITY_MAX_TOKENS, GLOBAL_MAX_TOKENS, long_caption_message, over_limit_message
from .token_request import TokenRequestError


@dataclass(frozen=True)
class Problem:
    kind: str  # empty-prompt | unpainted | vanished | over-long | long-caption | snapped | no-entity
    message: str
    entity: int | None = None  # 0-based place in the user's list; None for the whole layout
    refused: bool = False  # True: the run stops; False: it goes on with the layout changed

    def as_dict(self) -> dict:
        return {"kind": self.kind, "message": self.message, "entity": self.entity, "refused": self.refused}


def vanished_message(label: str, layout_hw: tuple[int, int], render_hw: tuple[int, int]) -> str:
    h, w = render_hw
    where = f"{w}x{h}"
    if tuple(render_hw) != tuple(layout_hw):
        where += f" (the size the run renders the {layout_hw[1]}x{layout_hw[0]} layout at)"
    p = spec.PIXELS_PER_TOKEN
    return f"{label} covers no {p}x{p} token centre at {where}: its caption will see no image token"


def layout_problems(
    layout: Layout,
    *,
    trained_resolution: int | None = None,
    counts: Sequence[int] | None = None,
    unlisted: Sequence[tuple[RGB, int]] = (),
    entity_limit: int = ENTITY_MAX_TOKENS,
    global_limit: int = GLOBAL_MAX_TOKENS,
) -> list[Problem]:
    """The layout's problems, entity by entity in the user's order, then the whole layout's.

    ``counts``: T5 token counts ``[global caption, entity 1, ...]`` in ``layout.entities`` order (None:
    not checked). ``unlisted``: colours the colour map holds that no entity lists, with pixel counts
    (they became background). ``trained_resolution``: the model's declared size (the demo), if any.
    """
    render_hw, gone = vanished_at_render(layout, trained_resolution)
    gone_set = set(gone)
    out: list[Problem] = []
    for i in sorted(range(len(layout.entities)), key=lambda k: layout.entities[k].place(k)):
        e = layout.entities[i]
        place = e.place(i)
        label = e.label or entity_label(place, e.prompt, e.color)
        if not e.prompt.strip():
            out.append(Problem("empty-prompt", empty_prompt_message(label), place, True))
        if not e.mask.any():
            out.append(Problem("unpainted", unpainted_message(label), place, True))
        elif i in gone_set:
            out.append(Problem("vanished", vanished_message(label, (layout.height, layout.width), render_hw), place))
        if counts is not None and counts[i + 1] > entity_limit:
            out.append(Problem("over-long", over_limit_message(label, counts[i + 1], entity_limit), place, True))
    if counts is not None and counts[0] > global_limit:
        out.append(Problem("long-caption", long_caption_message(counts[0], global_limit)))
    if unlisted:
        out.append(Problem("snapped", unlisted_note(list(unlisted), layout.height * layout.width)))
    return out


def document_problems(
    doc: EditorDocument,
    count: Callable[[str], int],
    *,
    trained_resolution: int | None = None,
    unlisted: Sequence[tuple[RGB, int]] = (),
) -> list[Problem]:
    """The editor document's problems: its visible entities by row, counted as the builder counts
    (the stripped caption tokenised whole, 0 for a blank one)."""
    lay = document_layout(doc)
    counts = [count(t.strip()) if t.strip() else 0 for t in [lay.global_prompt, *lay.prompts]]
    out = layout_problems(lay, trained_resolution=trained_resolution, counts=counts, unlisted=unlisted)
    if doc.entities and not lay.entities:
        out.append(Problem("no-entity", NO_VISIBLE, None, True))
    return out


# ---- the editor's request (POST /seg2any/layout_problems): any page that reaches the server may send
# one, so it takes only the document, a model name and bounded colour counts (no paths, no options)

MODELS = {"flux": None, "demo": DEMO_RESOLUTION}  # what the run renders at: the layout's tokens, or the demo's size
MAX_UNLISTED = 4096
MAX_BODY_BYTES = MAX_DOCUMENT_CHARS + 64 * 1024
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


def answer_request(payload, count: Callable[[str], int]) -> dict:
    """``{"document": str, "model": "flux" | "demo", "unlisted": [["#rrggbb", pixels], ...]}`` ->
    ``{"problems": [{kind, message, entity, refused}, ...], "render_size": [w, h] | None}``.

    A document the editor node would refuse is answered with that refusal as its one problem, in the
    node's words; a malformed request raises TokenRequestError (a 400)."""
    if not isinstance(payload, dict):
        raise TokenRequestError(f"expected a JSON object with 'document', got {type(payload).__name__}")
    extra = sorted(set(payload) - {"document", "model", "unlisted"})
    if extra:
        raise TokenRequestError(f"unknown field(s) {extra}: only 'document', 'model' and 'unlisted' are accepted")
    text = payload.get("document")
    if not isinstance(text, str):
        raise TokenRequestError(f"'document' must be a string, got {type(text).__name__}")
    model = payload.get("model", "flux")
    if model not in MODELS:
        raise TokenRequestError(f"'model' must be one of {sorted(MODELS)}, got {model!r}")
    raw = payload.get("unlisted", [])
    if not isinstance(raw, list) or len(raw) > MAX_UNLISTED:
        raise TokenRequestError(f"'unlisted' must be a list of at most {MAX_UNLISTED} [colour, pixels] pairs")
    unlisted = []
    for i, item in enumerate(raw):
        ok = isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) and _HEX.match(item[0])
        if not ok or isinstance(item[1], bool) or not isinstance(item[1], int) or item[1] < 0:
            raise TokenRequestError(f"unlisted[{i}] must be ['#rrggbb', pixels], got {item!r}")
        c = item[0]
        unlisted.append(((int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16)), item[1]))
    try:
        doc = parse_document(text)
    except LayoutError as exc:
        return {"problems": [Problem("document", str(exc), None, True).as_dict()], "render_size": None}
    problems = document_problems(doc, count, trained_resolution=MODELS[model], unlisted=unlisted)
    h, w = render_size(doc.height, doc.width, MODELS[model])
    return {"problems": [p.as_dict() for p in problems], "render_size": [w, h]}
