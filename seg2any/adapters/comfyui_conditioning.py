"""Seg2Any layouts as ComfyUI CONDITIONING: what the Conditioning node and the sampler both build.

A layout with its encoded captions becomes a (positive, negative) pair of CONDITIONING lists,
each entry carrying its :class:`~seg2any.conditioning.settings.Seg2AnyConditioning` to the model
call (:func:`seg2any.adapters.comfyui.attach`), plus the pixel size the latent must have.
"""

from __future__ import annotations

from ..attention.rules import isolation_layers
from ..conditioning.contour import generation_size
from ..conditioning.settings import EncodedLayout, EncodedText, Seg2AnyConditioning
from ..flux import spec
from .comfyui import attach


def build_conditionings(layout: EncodedLayout, condition, mode: str, shape_strength: float, isolation: str, guidance: float):
    """(positive, negative) CONDITIONING lists carrying their Seg2Any settings."""

    def one(enc: EncodedText):
        info = Seg2AnyConditioning(layout.layout, enc.text_lens, condition, mode, isolation, shape_strength)
        d = {"pooled_output": enc.pooled, "guidance": guidance}
        return attach([[enc.cond, d]], lambda i, t: info)

    # syntax check now, at FLUX's depth; the range is checked against the model at run time
    isolation_layers(isolation, spec.DOUBLE_BLOCKS, spec.SINGLE_BLOCKS)
    return one(layout.positive), one(layout.negative)


def image_size(layout: EncodedLayout, condition) -> tuple[int, int]:
    """(height, width) in pixels of the image: the condition's, else the layout's at whole tokens."""
    if condition is not None:
        return condition.image_size
    return generation_size(layout.layout.height, layout.layout.width, 1)
