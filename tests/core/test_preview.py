"""Layout Preview: the legend stays readable whatever the layout size (128 px demo to 2048 px),
every entity gets a legend row, and without a legend the picture keeps the layout's own size."""

from __future__ import annotations

import numpy as np
import pytest

from seg2any.layout.layout import layout_from_masks
from seg2any.layout.preview import LEGEND_WIDTH, WORK_MAX, WORK_MIN, render_layout


def grid_layout(size: int, n: int):
    """n square entities in a grid on a size x size layout, long prompts."""
    side = int(np.ceil(np.sqrt(n)))
    cell = size // side
    masks = np.zeros((n, size, size), bool)
    for i in range(n):
        r, c = divmod(i, side)
        masks[i, r * cell + cell // 8 : (r + 1) * cell - cell // 8, c * cell + cell // 8 : (c + 1) * cell - cell // 8] = True
    prompts = [f"entity {i} described at length: its material, its colour and its texture in soft light" for i in range(n)]
    return layout_from_masks("a scene of many things", list(masks), prompts)


def text_bands(panel: np.ndarray) -> list[tuple[int, int]]:
    """(first row, height) of each horizontal band holding light legend text (right of the swatches)."""
    ink = (panel[:, 60:].min(axis=2) > 150).any(axis=1)
    bands, start = [], None
    for y, on in enumerate(np.append(ink, False)):
        if on and start is None:
            start = y
        elif not on and start is not None:
            bands.append((start, y - start))
            start = None
    return bands


@pytest.mark.parametrize("size,n", [(128, 4), (2048, 25), (512, 3)])
def test_legend_text_has_one_pixel_size_at_any_layout_size(size, n):
    lay = grid_layout(size, n)
    pic = render_layout(lay, grid=(size // 16, size // 16))
    work = pic.shape[1] - LEGEND_WIDTH
    assert WORK_MIN <= work <= WORK_MAX  # the layout is drawn at the working size
    bands = text_bands(pic[:, work:])
    assert len(bands) == n + 1, bands  # the global caption and one row per entity, none cut off
    heights = [h for _, h in bands]
    # Hershey capitals at scale 0.9 are ~20 px; descenders make some bands taller. Never the ~6 px of old.
    assert min(heights) >= 18 and max(heights) <= 32, heights
    assert pic.shape[1] <= WORK_MAX + LEGEND_WIDTH


def test_small_layout_is_drawn_larger_with_its_masks_in_place():
    lay = grid_layout(128, 4)
    pic = render_layout(lay, legend=True)
    f = WORK_MIN / 128
    m = lay.entities[0].mask
    ys, xs = np.nonzero(m)
    cy, cx = int((ys.min() + 2) * f), int((xs.min() + 2) * f)  # inside entity 1, away from its number label
    outside = (int(2 * f), int(2 * f))  # background corner
    assert not np.array_equal(pic[cy, cx], pic[outside])
    assert (pic[outside] == 40).all()  # untinted background grey


def test_without_legend_the_picture_keeps_the_layout_size():
    lay = grid_layout(200, 4)
    assert render_layout(lay, legend=False).shape == (200, 200, 3)
    assert render_layout(lay, legend_width=0).shape == (200, 200, 3)  # the older spelling
