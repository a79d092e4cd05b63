"""The Entity Contour Map: all entity outlines, white on black, at the condition resolution.

Reproduces the official drawing (``utils/visualizer.py``): OpenCV ``findContours`` with
``RETR_LIST`` (holes included) and ``CHAIN_APPROX_SIMPLE`` on each mask at the mask's own
resolution, 1-pixel white lines, then a PIL bilinear (antialiased) resize to the condition size.
With ``cond_scale_factor`` 2 the 1-px line becomes a faint grey line; that is what the released
adapters saw in training, so we keep it.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from ..errors import ModelMismatchError
from ..flux import spec


def draw_contours(masks: np.ndarray) -> np.ndarray:
    """(N, H, W) bool -> (H, W, 3) uint8 canvas with every entity's outline in white."""
    _, h, w = masks.shape
    canvas = np.zeros((h, w, 3), dtype=np.uint8)
    for m in masks:
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(canvas, contours, -1, color=(255, 255, 255), thickness=1)
    return canvas


def generation_size(height: int, width: int, cond_scale_factor: int) -> tuple[int, int]:
    """Official sizing: floor each side to a multiple of 16 (pixels per token) * cond_scale_factor."""
    step = spec.PIXELS_PER_TOKEN * cond_scale_factor
    h, w = (height // step) * step, (width // step) * step
    if h == 0 or w == 0:
        raise ModelMismatchError(
            f"a {width}x{height} layout is smaller than one {step}x{step} block ({spec.PIXELS_PER_TOKEN} px x cond_scale_factor "
            f"{cond_scale_factor}); use a larger layout"
        )
    return h, w


def entity_contour_map(masks: np.ndarray, height: int, width: int, cond_scale_factor: int) -> np.ndarray:
    """Contour map for an image of ``height x width`` pixels, at (height/s, width/s), uint8 RGB.

    The outlines are drawn at the masks' native resolution and then resized, as upstream does.
    """
    if cond_scale_factor < 1:
        raise ModelMismatchError(f"cond_scale_factor must be >= 1, got {cond_scale_factor}")
    step = spec.PIXELS_PER_TOKEN * cond_scale_factor
    if height % step or width % step:
        raise ModelMismatchError(
            f"image size {width}x{height} must be a multiple of {step} "
            f"({spec.PIXELS_PER_TOKEN} px x cond_scale_factor {cond_scale_factor})"
        )
    canvas = draw_contours(masks)
    ch, cw = height // cond_scale_factor, width // cond_scale_factor
    if canvas.shape[:2] == (ch, cw):
        return canvas
    return np.asarray(Image.fromarray(canvas).resize((cw, ch), Image.BILINEAR))
