import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seg2any.conditioning.condition_tokens import (
    ConditionTokens,
    condition_positions,
    keep_mask_from_contour,
    pack_latents,
    unpack_latents,
)
from seg2any.conditioning.contour import draw_contours, entity_contour_map, generation_size
from seg2any.errors import ModelMismatchError
from seg2any.layout.token_grid import area_fractions, nearest_exact_index, token_masks, vanished_entities

# ----------------------------------------------------------------------------------------------
# token grid


@pytest.mark.parametrize("src,dst", [(64, 4), (800, 50), (1024, 64), (37, 5), (5, 5), (3, 7)])
def test_nearest_exact_matches_torch(src, dst):
    x = torch.arange(src, dtype=torch.float32)[None, None, :, None]  # the official interpolates mask.float()
    want = F.interpolate(x, (dst, 1), mode="nearest-exact")[0, 0, :, 0].long().numpy()
    assert np.array_equal(nearest_exact_index(src, dst), want)


def test_token_masks_hand_case():
    # 4x4 pixels -> 2x2 tokens: each token reads pixel (2i+1, 2j+1)
    m = np.zeros((1, 4, 4), bool)
    m[0, 1, 1] = True  # token (0,0)
    m[0, 0, 2] = True  # not a sampled pixel
    m[0, 3, 3] = True  # token (1,1)
    assert token_masks(m, 2, 2).tolist() == [[True, False, False, True]]


def test_area_fractions_hand_case_and_non_multiples():
    m = np.zeros((1, 4, 4), bool)
    m[0, :2, :1] = True  # 2 of the 4 pixels of token (0,0)
    m[0, 2:, 2:] = True  # all of token (1,1)
    assert area_fractions(m, 2, 2).tolist() == [[0.5, 0.0, 0.0, 1.0]]
    m2 = np.ones((1, 5, 7), bool)
    assert np.allclose(area_fractions(m2, 2, 3), 1.0)


def test_vanished_entities_are_reported():
    m = np.zeros((2, 64, 64), bool)
    m[0, 10:50, 10:50] = True
    m[1, :, 0] = True  # a one-pixel line never hits a sampled centre
    assert vanished_entities(m, 4, 4) == [1]


# ----------------------------------------------------------------------------------------------
# contour map


def test_contour_of_a_square_by_hand():
    m = np.zeros((1, 12, 12), bool)
    m[0, 3:9, 2:10] = True
    got = draw_contours(m)
    want = np.zeros((12, 12), np.uint8)
    want[3, 2:10] = want[8, 2:10] = 255
    want[3:9, 2] = want[3:9, 9] = 255
    assert np.array_equal(got[..., 0], want)
    assert np.array_equal(got[..., 1], want) and np.array_equal(got[..., 2], want)


def test_contour_includes_holes():
    m = np.zeros((1, 16, 16), bool)
    m[0, 2:14, 2:14] = True
    m[0, 6:10, 6:10] = False
    got = draw_contours(m)[..., 0] > 0
    assert got[2, 2] and got[13, 13]  # outer outline
    assert got[5, 7] and got[10, 7]  # inner outline (hole boundary pixels belong to the mask)
    assert not got[8, 8] and not got[0, 0]


def test_contour_map_scale_and_grey_line():
    m = np.zeros((1, 64, 64), bool)
    m[0, 16:48, 16:48] = True
    full = entity_contour_map(m, 64, 64, 1)
    assert full.shape == (64, 64, 3) and full.max() == 255
    half = entity_contour_map(m, 64, 64, 2)
    assert half.shape == (32, 32, 3)
    line = half[16, 6:10, 0]
    assert half[:4, :4].max() == 0  # far from outlines stays black
    assert 0 < half[8, 16, 0] < 255  # the 1-px line becomes a grey antialiased line
    assert line.max() > 0


def test_generation_size_floors_like_upstream():
    assert generation_size(1000, 750, 2) == (992, 736)
    assert generation_size(800, 800, 1) == (800, 800)
    with pytest.raises(ModelMismatchError):
        generation_size(20, 800, 2)
    with pytest.raises(ModelMismatchError, match="multiple of 32"):
        entity_contour_map(np.zeros((1, 48, 48), bool), 48, 48, 2)


# ----------------------------------------------------------------------------------------------
# condition tokens


def test_keep_mask_any_non_black_pixel():
    c = np.zeros((32, 48, 3), np.uint8)
    c[17, 3, 1] = 1  # one faint pixel in token (1, 0)
    c[0, 47] = 200  # token (0, 2)
    assert keep_mask_from_contour(c).tolist() == [[False, False, True], [True, False, False]]
    assert keep_mask_from_contour(c.astype(np.float32) / 255.0).tolist() == [[False, False, True], [True, False, False]]


def test_positions_are_top_left_image_token():
    keep = np.array([[True, False], [False, True]])
    assert condition_positions(keep, 2).tolist() == [[0, 0, 0], [0, 2, 2]]
    assert condition_positions(keep, 1).tolist() == [[0, 0, 0], [0, 1, 1]]


def test_pack_matches_explicit_loops_and_inverts():
    z = torch.randn(2, 3, 4, 6)
    packed = pack_latents(z)
    assert packed.shape == (2, 6, 12)
    for b in range(2):
        for i in range(2):
            for j in range(3):
                want = torch.stack([z[b, c, 2 * i + di, 2 * j + dj] for c in range(3) for di in range(2) for dj in range(2)])
                assert torch.equal(packed[b, i * 3 + j], want)
    assert torch.equal(unpack_latents(packed, 4, 6), z)


def test_condition_tokens_select_kept_rows_and_check_size():
    keep = np.zeros((2, 3), bool)
    keep[0, 1] = keep[1, 2] = True
    lat = torch.arange(16 * 4 * 6, dtype=torch.float32).reshape(1, 16, 4, 6)
    ct = ConditionTokens(lat, keep, 2, (64, 96))
    assert ct.count == 2
    assert torch.equal(ct.tokens(), pack_latents(lat)[0, [1, 5]])
    assert torch.equal(ct.tokens(lambda z: z * 2), 2 * pack_latents(lat)[0, [1, 5]])
    with pytest.raises(ModelMismatchError, match="condition latent is 6x4"):
        ConditionTokens(lat, keep, 1, (64, 96))
