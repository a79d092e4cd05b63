"""The Layout Editor node (painted in the browser, stored in the workflow) and its token-count route.

The painting itself happens in ``web/js/seg2any_layout_editor.js``; this node only decodes the
document the widget stores (``seg2any.layout.editor_document``) and hands on the official PNG + JSON pair,
so the builder, preview and samplers see exactly what 'Load Seg2Any Layout' would give them.
"""

from __future__ import annotations

import json

import torch
from comfy_api.latest import io, ui

from seg2any.conditioning import problems as layout_problems
from seg2any.conditioning.t5_tokens import T5Tokenizer
from seg2any.conditioning.token_request import MAX_BODY_BYTES, TokenRequestError, count_tokens
from seg2any.errors import LayoutError
from seg2any.layout.editor_document import document_from_official, encode_document, official_outputs, parse_document

from .common import SPIECE
from .types import CATEGORY

EDITOR_WIDGET = "SEG2ANY_LAYOUT_EDITOR"  # the frontend widget type web/js registers
TRACE_UI_KEY = "seg2any_trace"  # not 'images', so ComfyUI draws no second preview over the editor
INCOMING_UI_KEY = "seg2any_incoming"  # the layout on the 'segmentation' + 'segments' inputs, as a document


def _layout_input() -> io.String.Input:
    inp = io.String.Input(
        "layout",
        default="",
        socketless=True,
        tooltip="The painted layout (size, caption, entities, colour map), kept in the workflow; edit it on the canvas",
    )
    inp.widget_type = EDITOR_WIDGET  # the editor replaces the text box; the value stays a plain string
    return inp


class LayoutEditor(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Seg2AnyLayoutEditor",
            display_name="Layout Editor (Seg2Any)",
            category=CATEGORY,
            description=(
                "Paint a Seg2Any layout on a canvas: one colour per entity with its own prompt, a global caption, brush/"
                "eraser/fill/rectangle/ellipse/polygon, undo, import and export of the official PNG + JSON. The layout is "
                "stored in the workflow. Outputs the same segmentation + segments + caption as 'Load Seg2Any Layout'."
            ),
            inputs=[
                _layout_input(),
                io.Image.Input(
                    "trace", optional=True, tooltip="An image to paint over (photo or segmentation); shown after one run"
                ),
                io.Image.Input(
                    "segmentation",
                    optional=True,
                    tooltip=(
                        "A layout to refine (with 'segments'), e.g. from 'Layout from Masks (Seg2Any)' or 'Load Seg2Any "
                        "Layout': an empty editor takes it in after a run; a painted one offers 'Take in input'"
                    ),
                ),
                io.String.Input(
                    "segments",
                    optional=True,
                    force_input=True,
                    tooltip="The official JSON that goes with 'segmentation' (segments_info with colours and prompts)",
                ),
            ],
            outputs=[
                io.Image.Output(display_name="segmentation"),
                io.String.Output(display_name="segments"),
                io.String.Output(display_name="caption"),
            ],
        )

    @classmethod
    def execute(cls, layout, trace=None, segmentation=None, segments=None):
        incoming = incoming_document(segmentation, segments)
        # an empty editor passes its input on (the frontend takes it in to refine); an empty layout
        # with nothing connected is parse_document's "the layout editor is empty" error
        doc = incoming if incoming is not None and not layout.strip() else parse_document(layout)
        if incoming is not None and not doc.entities:
            doc = incoming
        rgb, out_segments, caption = official_outputs(doc)
        tensor = torch.from_numpy(rgb.astype("float32") / 255.0)[None]
        shown = {}
        if trace is not None:
            shown[TRACE_UI_KEY] = ui.PreviewImage(trace[:1], cls=cls).as_dict()["images"]
        if incoming is not None:
            shown[INCOMING_UI_KEY] = [encode_document(incoming)]
        return io.NodeOutput(tensor, out_segments, caption, ui=shown or None)


def incoming_document(segmentation, segments):
    """The layout on the optional inputs as an editor document (None when neither is connected)."""
    if segmentation is None and segments is None:
        return None
    if segmentation is None or segments is None:
        given, missing = ("segmentation", "segments") if segments is None else ("segments", "segmentation")
        raise LayoutError(f"the Layout Editor got '{given}' without '{missing}': connect both (the official PNG + JSON pair)")
    if segmentation.shape[0] != 1:
        raise LayoutError(f"the Layout Editor takes one layout in; 'segmentation' is a batch of {segmentation.shape[0]} images")
    rgb = (segmentation[0].detach().cpu().float().numpy() * 255.0).round().clip(0, 255).astype("uint8")
    return document_from_official(rgb, segments)


_tokenizer: T5Tokenizer | None = None


def _count(text: str) -> int:
    """The builder's count (whole caption, </s> included); ComfyUI's tokenizer.json gives the same
    ids as this SentencePiece model (tests/comfyui/test_text_encoding.py)."""
    global _tokenizer
    if _tokenizer is None:
        _tokenizer = T5Tokenizer(SPIECE)
    return len(_tokenizer.ids(text))


async def _json_body(request, limit: int):
    """The request's JSON, read in chunks up to ``limit`` bytes (a chunked body has no length)."""
    if request.content_length is not None and request.content_length > limit:
        raise TokenRequestError(f"request body over {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise TokenRequestError(f"request body over {limit} bytes")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TokenRequestError(f"the body is not JSON: {exc}") from exc


def register_routes() -> None:
    """POST /seg2any/token_count {"texts": [...]} -> {"counts": [...], ...} and POST
    /seg2any/layout_problems {"document": ..., "model": ...} -> {"problems": [...]} (the builder's
    checks, conditioning/problems.py); 400 with a message otherwise."""
    try:
        from aiohttp import web
        from server import PromptServer
    except ImportError:  # imported outside a ComfyUI server
        return
    if getattr(PromptServer, "instance", None) is None:
        return

    def route(path: str, limit: int, answer):
        @PromptServer.instance.routes.post(path)
        async def handler(request):
            try:
                return web.json_response(answer(await _json_body(request, limit), _count))
            except TokenRequestError as exc:
                return web.json_response({"error": str(exc)}, status=400)

    route("/seg2any/token_count", MAX_BODY_BYTES, count_tokens)
    route("/seg2any/layout_problems", layout_problems.MAX_BODY_BYTES, layout_problems.answer_request)
