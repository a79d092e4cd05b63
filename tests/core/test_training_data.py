"""Training data: resizing, crash-proof loading, synthetic shapes, folder/SACap readers, buckets, metrics.

Expectations are computed independently of the code under test: torch's interpolate for resizing,
hand-worked RLE strings and a loop-based test encoder for COCO RLE, hand-rasterised shapes, and
hand-counted metric values.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from seg2any.errors import LayoutError
from seg2any.layout.layout import layout_from_segmentation
from training.data import (
    BucketBatchSampler,
    FolderDataset,
    Robust,
    SACapDataset,
    SyntheticShapes,
    background_colours,
    bucket_flag,
    collate_samples,
    colour_map,
    nearest_exact_index,
    palette,
    resize_masks,
    resize_sample,
    rle_counts,
    rle_decode,
)
from training.metrics import shape_metrics

# ----------------------------------------------------------------------------------------------
# resizing


def _torch_nearest_exact(masks: np.ndarray, size: int, dtype=torch.float32) -> np.ndarray:
    t = torch.from_numpy(masks.astype(np.uint8)).to(dtype)[None]
    return F.interpolate(t, size=(size, size), mode="nearest-exact")[0].numpy() > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
def test_nearest_exact_index_matches_torch(dtype):
    for src in [1, 2, 3, 7, 54, 62, 90, 100, 124, 333, 1500]:
        for dst in [1, 2, 5, 7, 16, 100, 128, 333, 1024]:
            a = (torch.arange(src) % 256)[None, None, :, None].to(dtype)
            want = F.interpolate(a, size=(dst, 1), mode="nearest-exact")[0, 0, :, 0].long().numpy()
            assert np.array_equal(nearest_exact_index(src, dst) % 256, want), (src, dst)


def test_nearest_exact_index_is_the_centre_formula_up_to_float32():
    # floor((i + 0.5) * src / dst) in exact arithmetic; float32 may move it by one on rare pairs.
    diff = 0
    for src in range(1, 300):
        for dst in [3, 7, 64, 100, 333]:
            i = np.arange(dst)
            exact = np.minimum((2 * i + 1) * src // (2 * dst), src - 1)
            got = nearest_exact_index(src, dst)
            assert np.abs(got - exact).max() <= 1
            diff += int((got != exact).any())
    assert diff < 20


def test_resize_sample_masks_and_image():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(45, 70, 3), dtype=np.uint8)
    masks = rng.random((3, 45, 70)) < 0.3
    img, m = resize_sample(image, masks, 32)
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8  # squared: aspect not kept
    assert np.array_equal(m, _torch_nearest_exact(masks, 32))
    assert np.array_equal(img, np.asarray(Image.fromarray(image).resize((32, 32), Image.BILINEAR)))
    big = resize_masks(masks[0], 91)
    assert np.array_equal(big, _torch_nearest_exact(masks[:1], 91)[0])
    flat = np.full((20, 30, 3), 77, dtype=np.uint8)
    assert (resize_sample(flat, masks[:, :20, :30], 16)[0] == 77).all()
    with pytest.raises(LayoutError):
        resize_sample(image, masks[:, :40], 32)


# ----------------------------------------------------------------------------------------------
# Robust


class _Flaky(torch.utils.data.Dataset):
    def __len__(self):
        return 10

    def key(self, i):
        return f"item{i}"

    def __getitem__(self, i):
        if i % 4 == 1:
            raise LayoutError(f"bad item {i}")
        if i == 6:
            raise OSError("truncated file")
        return SyntheticShapes(10, resolution=32)[i]


def test_robust_skips_and_counts():
    ds = Robust(_Flaky())
    out = [ds[i] for i in range(len(ds))]
    assert [i for i, s in enumerate(out) if s is None] == [1, 5, 6, 9]
    assert ds.skipped == 4
    assert ds.reasons["OSError: truncated file"] == 1
    assert sum(n for r, n in ds.reasons.items() if r.startswith("LayoutError: bad item")) == 3
    assert ("item6", "OSError: truncated file") in list(ds.failures)
    assert len(list(ds)) == 10  # out-of-range indices still end plain iteration
    capped = Robust(_Flaky(), max_reasons=2)
    [capped[i] for i in range(10)]
    assert capped.skipped == 4 and len(capped.reasons) == 4
    assert capped.reasons["OSError: (other messages)"] == capped.reasons["LayoutError: (other messages)"] == 1

    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=collate_samples)
    got = list(loader)
    assert [n for _, n in got] == [1, 2, 1]
    assert [len(b) for b, _ in got] == [3, 2, 1]
    assert all(s.image.shape == (32, 32, 3) for b, _ in got for s in b)


# ----------------------------------------------------------------------------------------------
# synthetic shapes


def _hand_shape(kind, cx, cy, size, r):
    """Rasterise at pixel centres, written apart from the library (vertices and half-planes)."""
    yy, xx = np.meshgrid(np.arange(r) + 0.5, np.arange(r) + 0.5, indexing="ij")
    h = size / 2
    if kind == "circle":
        return np.hypot(xx - cx, yy - cy) <= h
    if kind == "square":
        return (xx >= cx - h) & (xx <= cx + h) & (yy >= cy - h) & (yy <= cy + h)
    if kind == "diamond":  # rotate 45 degrees: a square of half-diagonal h
        u, v = (xx - cx) + (yy - cy), (xx - cx) - (yy - cy)
        return (np.abs(u) <= h) & (np.abs(v) <= h)
    # triangle, apex up, base as wide as the shape is tall: inside all three edges (clockwise on screen)
    pts = [(cx, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    inside = np.ones_like(xx, dtype=bool)
    for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1]):
        inside &= (x1 - x0) * (yy - y0) - (y1 - y0) * (xx - x0) >= 0
    return inside


def test_synthetic_deterministic_and_seed_dependent():
    a, b, c = SyntheticShapes(20, seed=3), SyntheticShapes(20, seed=3), SyntheticShapes(20, seed=4)
    for i in [0, 7, 19]:
        sa, sb, sc = a[i], b[i], c[i]
        assert np.array_equal(sa.image, sb.image) and np.array_equal(sa.layout.masks, sb.layout.masks)
        assert sa.layout.prompts == sb.layout.prompts and sa.layout.global_prompt == sb.layout.global_prompt
        assert sa.layout.seed == sb.layout.seed and a.attributes(i) == b.attributes(i)
        assert not np.array_equal(sa.image, sc.image)
    assert np.array_equal(a[5].image, a[5].image)  # no hidden state between calls


def test_synthetic_masks_are_the_visible_pixels_of_hand_drawn_shapes():
    r = 128
    ds = SyntheticShapes(60, resolution=r, seed=11)
    pal, bgs = palette(), background_colours()
    kinds_seen, textures_seen = set(), set()
    for i in range(len(ds)):
        s, scene = ds[i], ds.scene(i)
        masks = s.layout.masks
        attrs = ds.attributes(i)
        bg_name, bg = ds.background(i)
        assert bg == bgs[bg_name] and 1 <= len(masks) <= 4 and len(attrs) == len(masks)
        assert masks.shape == (len(masks), r, r) and (masks.sum(axis=0) <= 1).all()  # no overlaps
        assert (masks.sum(axis=(1, 2)) >= 0.03 * r * r).all()
        fulls = [_hand_shape(sh.kind, sh.cx, sh.cy, sh.size, r) for sh in scene.shapes]
        for k, (sh, a) in enumerate(zip(scene.shapes, attrs)):
            above = np.zeros((r, r), dtype=bool)
            for f in fulls[k + 1 :]:
                above |= f
            assert np.array_equal(masks[k], fulls[k] & ~above), (i, k, sh.kind)
            assert a["color"] == sh.color and a["rgb"] == pal[sh.color][0] and a["dark_rgb"] == pal[sh.color][1]
            assert a["rgb"] != bg
            px = s.image[masks[k]]
            is_main = (px == a["rgb"]).all(axis=1)
            is_dark = (px == a["dark_rgb"]).all(axis=1)
            assert (is_main | is_dark).all()
            frac = is_dark.mean()
            assert frac == 0 if a["texture"] == "plain" else 0.15 < frac < 0.85
            _check_texture_geometry(s.image, masks[k], a, r)
            kinds_seen.add(a["kind"])
            textures_seen.add(a["texture"])
            p = s.layout.prompts[k]
            assert a["color"] in p and a["kind"] in p and (a["texture"] in p or a["texture"] == "plain")
            assert _core(p) in _core(s.layout.global_prompt)
        assert len({a["color"] for a in attrs}) == len(attrs)  # distinct colours per image
        assert (s.image[~masks.any(axis=0)] == bg).all()
        assert s.layout.global_prompt.endswith(f"on a {bg_name} background")
    assert kinds_seen == {"circle", "square", "triangle", "diamond"}
    assert textures_seen == {"plain", "striped", "dotted"}


def _core(text):
    return re.sub(r"\b(an?|plain) ", "", text)


def _check_texture_geometry(image, mask, attr, r):
    """Stripes run along anti-diagonals; dots repeat with the grid period in x and y."""
    dark = (image == attr["dark_rgb"]).all(axis=2)
    if attr["texture"] == "striped":
        both = mask[1:, :-1] & mask[:-1, 1:]  # (y+1, x) and (y, x+1) lie on one anti-diagonal
        assert np.array_equal(dark[1:, :-1][both], dark[:-1, 1:][both])
        assert not np.array_equal(dark[:, 1:][mask[:, 1:] & mask[:, :-1]], dark[:, :-1][mask[:, 1:] & mask[:, :-1]])
    elif attr["texture"] == "dotted":
        p = r // 16
        both = mask[:, p:] & mask[:, :-p]
        assert np.array_equal(dark[:, p:][both], dark[:, :-p][both])
        both = mask[p:] & mask[:-p]
        assert np.array_equal(dark[p:][both], dark[:-p][both])


def test_synthetic_is_fast():
    ds = SyntheticShapes(200, resolution=128)
    ds[0]
    t = time.perf_counter()
    for i in range(len(ds)):
        ds[i]
    assert (time.perf_counter() - t) / len(ds) < 0.010


def test_colour_map_round_trips_through_layout_from_segmentation():
    ds = SyntheticShapes(25, seed=5)
    for i in range(len(ds)):
        s = ds[i]
        seg, spec = colour_map(s)
        assert seg.dtype == np.uint8 and seg.shape == s.image.shape
        assert (seg[~s.layout.masks.any(axis=0)] == 0).all()
        back = layout_from_segmentation(seg, json.dumps(spec))
        assert np.array_equal(back.masks, s.layout.masks)
        assert back.prompts == s.layout.prompts
        assert back.global_prompt == s.layout.global_prompt and back.seed == s.layout.seed
        assert all("[0, 0, 0]" in n for n in back.notes)  # the only unlisted colour is the black background
        colours = [tuple(e["color"]) for e in spec["segments_info"]]
        assert len(set(colours)) == len(colours) and (0, 0, 0) not in colours


def test_colour_map_refuses_overlaps():
    from seg2any.layout.layout import layout_from_masks
    from training.data import Sample

    m = np.zeros((2, 8, 8), dtype=bool)
    m[0, :5] = True
    m[1, 3:] = True
    lay = layout_from_masks("x", list(m), ["a", "b"])
    with pytest.raises(LayoutError, match="overlap"):
        colour_map(Sample("k", np.zeros((8, 8, 3), np.uint8), lay))


# ----------------------------------------------------------------------------------------------
# folder


def _write_item(root, name, image, seg, spec, ext="png"):
    Image.fromarray(image).save(root / f"{name}.{ext}")
    Image.fromarray(seg).save(root / f"{name}.seg.png")
    (root / f"{name}.json").write_text(json.dumps(spec))


def test_folder_dataset(tmp_path):
    h, w = 30, 40
    img = np.full((h, w, 3), 200, dtype=np.uint8)
    seg = np.zeros((h, w, 3), dtype=np.uint8)
    seg[:, :10] = (250, 0, 0)
    seg[5:20, 20:35] = (0, 0, 250)
    spec = {
        "caption": "two boxes",
        "seed": 7,
        "segments_info": [{"color": [250, 0, 0], "text": "red"}, {"color": [0, 0, 250], "text": "blue"}],
    }
    _write_item(tmp_path, "a", img, seg, spec)
    _write_item(tmp_path, "b", img, seg, spec, ext="jpg")
    _write_item(tmp_path, "c", img, seg, spec)
    (tmp_path / "c.json").unlink()
    _write_item(tmp_path, "d", img, seg, spec)
    (tmp_path / "d.seg.png").unlink()
    _write_item(tmp_path, "e", img[:, :30], seg, spec)  # segmentation 40 wide, image 30 wide
    (tmp_path / "notes.txt").write_text("ignored")

    ds = FolderDataset(str(tmp_path), 16)
    assert [it[0] for it in ds.items] == ["a", "b", "e"]
    assert [n for n, _ in ds.missing] == ["c", "d"]
    assert "c.json" in dict(ds.missing)["c"] and "d.seg.png" in dict(ds.missing)["d"]

    s = ds[0]
    assert s.key == "a" and s.image.shape == (16, 16, 3) and s.layout.global_prompt == "two boxes" and s.layout.seed == 7
    assert s.layout.prompts == ["blue", "red"]  # sorted RGB order: (0,0,250) < (250,0,0)
    want = np.stack([(seg == (0, 0, 250)).all(axis=2), (seg == (250, 0, 0)).all(axis=2)])
    assert np.array_equal(s.layout.masks, _torch_nearest_exact(want, 16))
    assert ds[1].layout.prompts == ["blue", "red"]
    with pytest.raises(LayoutError, match=r"^e: .*40x30.*30x30"):
        ds[2]

    rob = Robust(ds)
    assert [x is None for x in (rob[i] for i in range(len(rob)))] == [False, False, True]
    assert rob.skipped == 1 and rob.failures[0][0] == "e"


def test_folder_dataset_names_item_for_bad_json(tmp_path):
    img = np.zeros((8, 8, 3), dtype=np.uint8)
    seg = np.zeros((8, 8, 3), dtype=np.uint8)
    seg[:4] = (9, 9, 9)
    _write_item(tmp_path, "x", img, seg, {"caption": "c", "segments_info": [{"color": [1, 2, 3], "text": "gone"}]})
    with pytest.raises(LayoutError, match=r"^x: colour \[1, 2, 3\]"):
        FolderDataset(str(tmp_path), 8)[0]


# ----------------------------------------------------------------------------------------------
# COCO RLE


def _encode_rle(mask: np.ndarray) -> dict:
    """Independent reference encoder: column-major runs from a zero-run, deltas from the 4th count on."""
    h, w = mask.shape
    flat = [bool(mask[y, x]) for x in range(w) for y in range(h)]
    counts, cur, run = [], False, 0
    for v in flat:
        if v == cur:
            run += 1
        else:
            counts.append(run)
            cur, run = v, 1
    counts.append(run)
    chars = []
    for i, c in enumerate(counts):
        x = c - counts[i - 2] if i > 2 else c
        while True:
            group = x & 0x1F
            x >>= 5
            more = x != -1 if group & 0x10 else x != 0
            chars.append(chr(48 + (group | (0x20 if more else 0))))
            if not more:
                break
    return {"size": [h, w], "counts": "".join(chars)}


def test_rle_counts_hand_encoded():
    assert rle_counts("231").tolist() == [2, 3, 1]
    assert rle_counts("T3").tolist() == [100]  # 100 = 4 + 3*32: 'T' = 48+4+0x20, '3' = 48+3
    assert rle_counts("1211").tolist() == [1, 2, 1, 3]  # 4th value: delta 1 on top of counts[1] = 2
    assert rle_counts("050L").tolist() == [0, 5, 0, 1]  # 'L' = 48+28: 28 has the sign bit -> -4; 5 - 4 = 1
    assert rle_counts("").tolist() == []


def test_rle_decode_hand_mask():
    # column-major pixels 0,0 | 1,1 | 1,0 -> runs 2 zeros, 3 ones, 1 zero
    assert rle_decode({"size": [2, 3], "counts": "231"}).tolist() == [[False, True, True], [False, True, False]]
    # column-major 1,1,0 | 0,0,1 starts with ones -> runs 0, 2, 3, 1; the 4th is stored as 1 - 2 = -1,
    # one group 0x1f (sign bit set) -> 'O'. Uncompressed counts take the same path.
    want = np.array([[1, 0], [1, 0], [0, 1]], dtype=bool)
    assert np.array_equal(rle_decode({"size": [3, 2], "counts": "023O"}), want)
    assert np.array_equal(rle_decode({"size": [3, 2], "counts": [0, 2, 3, 1]}), want)
    assert _encode_rle(want)["counts"] == "023O"
    with pytest.raises(LayoutError, match="cover"):
        rle_decode({"size": [3, 3], "counts": "231"})
    with pytest.raises(LayoutError):
        rle_decode({"size": [2, 3], "counts": "2\x7f1"})


def test_rle_round_trip_with_reference_encoder():
    rng = np.random.default_rng(1)
    cases = [np.zeros((5, 7), bool), np.ones((5, 7), bool)]
    for _ in range(30):
        h, w = (int(v) for v in rng.integers(1, 120, size=2))
        m = np.zeros((h, w), dtype=bool)
        for _ in range(int(rng.integers(0, 5))):
            y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
            m[y0 : y0 + int(rng.integers(1, h + 1)), x0 : x0 + int(rng.integers(1, w + 1))] ^= True
        cases.append(m)
    cases.append(rng.random((60, 50)) < 0.5)  # many short runs
    big = np.zeros((700, 900), dtype=bool)
    big[100:650, 30:870] = True  # long runs: multi-char values and negative deltas
    cases.append(big)
    for m in cases:
        rle = _encode_rle(m)
        assert np.array_equal(rle_decode(rle), m)
    assert rle_counts(_encode_rle(big)["counts"]).max() > 2**10  # three 5-bit groups


# ----------------------------------------------------------------------------------------------
# SACap


def _sacap_fixture(tmp_path, with_group=True):
    h, w = 24, 20
    group_dir = tmp_path / "img" / ("sa_000000" if with_group else "")
    group_dir.mkdir(parents=True, exist_ok=True)
    masks = {11: np.zeros((h, w), bool), 12: np.zeros((h, w), bool), 13: np.zeros((h, w), bool)}
    masks[11][:12] = True
    masks[12][6:18, 4:16] = True  # overlaps 11
    masks[13][20:, :] = True
    anns = [{"id": aid, "segmentation": _encode_rle(m)} for aid, m in masks.items()]
    Image.fromarray(np.full((h, w, 3), 90, np.uint8)).save(group_dir / "sa_1.png")
    (group_dir / "sa_1.json").write_text(json.dumps({"image": {"height": h, "width": w}, "annotations": anns}))
    Image.fromarray(np.full((h, w, 3), 90, np.uint8)).save(group_dir / "sa_3.png")
    (group_dir / "sa_3.json").write_text(json.dumps({"annotations": anns}))
    seg_type = pa.list_(pa.struct([("anno_id", pa.int64()), ("caption", pa.string())]))
    cols = {
        "imagename": ["sa_1.png", "sa_2.png", "sa_3.png"],
        "caption": ["a scene", "missing image", "bad id"],
        "segments_info": pa.array(
            [
                [{"anno_id": 13, "caption": "floor"}, {"anno_id": 11, "caption": "sky"}, {"anno_id": 12, "caption": "bird"}],
                [{"anno_id": 11, "caption": "sky"}],
                [{"anno_id": 11, "caption": "sky"}, {"anno_id": 99, "caption": "ghost"}],
            ],
            type=seg_type,
        ),
    }
    if with_group:
        cols["image_group"] = ["sa_000000"] * 3
    path = tmp_path / "anno.parquet"
    pq.write_table(pa.table(cols), path)
    return str(path), str(tmp_path / "img"), masks


@pytest.mark.parametrize("with_group", [True, False])
def test_sacap_reader(tmp_path, with_group):
    path, root, masks = _sacap_fixture(tmp_path, with_group)
    ds = SACapDataset(path, root, resolution=16)
    assert len(ds) == 3 and ds.key(1) == "sa_2.png"
    s = ds[0]
    assert s.key == "sa_1.png" and s.image.shape == (16, 16, 3) and s.layout.global_prompt == "a scene"
    assert s.layout.prompts == ["sky", "bird", "floor"]  # SA-1B annotation order, not segments_info order
    want = np.stack([masks[11], masks[12], masks[13]])
    assert np.array_equal(s.layout.masks, _torch_nearest_exact(want, 16))
    assert (s.layout.masks.sum(axis=0) > 1).any()  # overlaps kept
    with pytest.raises(LayoutError, match="sa_2.png.*image not found"):
        ds[1]
    with pytest.raises(LayoutError, match=r"sa_3.png.*\[99\]"):
        ds[2]
    rob = Robust(ds)
    assert [rob[i] is None for i in range(3)] == [False, True, True] and rob.skipped == 2


def test_sacap_rejects_parquet_without_columns(tmp_path):
    pq.write_table(pa.table({"imagename": ["a.jpg"]}), tmp_path / "x.parquet")
    with pytest.raises(LayoutError, match="caption"):
        SACapDataset(str(tmp_path / "x.parquet"), str(tmp_path))


# ----------------------------------------------------------------------------------------------
# buckets


def _lengths(n=203, seed=0):
    rng = np.random.default_rng(seed)
    cond = rng.choice([10, 60, 120, 400], size=n)
    txt = rng.choice([5, 70], size=n)
    return [(int(c + rng.integers(0, 40)), int(t + rng.integers(0, 20))) for c, t in zip(cond, txt)]


def test_bucket_flag():
    assert bucket_flag(49, 49) == 0 and bucket_flag(50, 0) == 1 and bucket_flag(120, 100) == 2_000_002


@pytest.mark.parametrize("replicas,bs", [(1, 4), (2, 3), (3, 2)])
def test_bucket_sampler_global_steps_are_single_bucket(replicas, bs):
    lengths = _lengths()
    flags = [bucket_flag(c, t) for c, t in lengths]
    samplers = [BucketBatchSampler(lengths, bs, num_replicas=replicas, rank=r, seed=5) for r in range(replicas)]
    per_bucket = Counter(flags)
    g = bs * replicas
    assert all(len(s) == sum(-(-n // g) for n in per_bucket.values()) for s in samplers)
    for epoch in (0, 1):
        for s in samplers:
            s.set_epoch(epoch)
        runs = [list(s) for s in samplers]
        assert all(len(r) == len(samplers[0]) for r in runs)
        seen = Counter()
        for step in zip(*runs):
            assert all(len(b) == bs for b in step)
            idx = [i for b in step for i in b]
            assert len({flags[i] for i in idx}) == 1
            seen.update(idx)
        assert set(seen) == set(range(len(lengths)))  # every index appears
        dup = sum(seen.values()) - len(lengths)  # only the top-ups repeat
        assert dup == sum((-n) % g for n in per_bucket.values())


def test_bucket_sampler_determinism_and_epochs():
    lengths = _lengths()
    a, b = BucketBatchSampler(lengths, 4, seed=1), BucketBatchSampler(lengths, 4, seed=1)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first and list(a) == list(a)
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(BucketBatchSampler(lengths, 4, seed=2)) != first
    flags = [bucket_flag(*lengths[b[0]]) for b in first]
    assert flags != sorted(flags) and len(set(flags)) > 4  # steps of different buckets are interleaved


def test_bucket_sampler_drop_last_has_no_duplicates():
    lengths = _lengths()
    s = BucketBatchSampler(lengths, 4, num_replicas=2, rank=1, drop_last=True)
    batches = list(s)
    flat = [i for b in batches for i in b]
    assert len(batches) == len(s) and all(len(b) == 4 for b in batches)
    assert len(flat) == len(set(flat))
    with pytest.raises(ValueError):
        BucketBatchSampler(lengths, 4, num_replicas=2, rank=2)


def test_bucket_sampler_tiny_bucket_is_padded_with_duplicates():
    lengths = [(0, 0)] * 5 + [(500, 0)]  # the second bucket has one sample but a step needs 8
    s = BucketBatchSampler(lengths, 4, num_replicas=2)
    steps = s.global_steps()
    assert len(steps) == 2 and sorted(len(set(x.tolist())) for x in steps) == [1, 5]


# ----------------------------------------------------------------------------------------------
# metrics


def test_metrics_perfect_and_noisy_images():
    ds = SyntheticShapes(30, seed=2)
    rng = np.random.default_rng(0)
    for i in range(len(ds)):
        s = ds[i]
        _, bg = ds.background(i)
        for img in (s.image, np.clip(s.image.astype(int) + rng.integers(-15, 16, s.image.shape), 0, 255).astype(np.uint8)):
            recs, agg = shape_metrics(img, s.layout, ds.attributes(i), bg)
            assert agg == {
                "miou": 1.0,
                "colour_acc": 1.0,
                "leakage": 0.0,
                "texture_acc": 1.0,
                "n_entities": len(s.layout.entities),
            }
            assert [r["majority"] for r in recs] == [a["color"] for a in ds.attributes(i)]


def _two_box_case():
    from seg2any.layout.layout import layout_from_masks

    pal = palette()
    gray = background_colours()["gray"]
    a = np.zeros((10, 10), bool)
    a[:5, :5] = True
    b = np.zeros((10, 10), bool)
    b[5:, 5:] = True
    lay = layout_from_masks("x", [a, b], ["a red square", "a blue square"])
    attrs = [
        {"kind": "square", "color": "red", "texture": "plain", "rgb": pal["red"][0], "dark_rgb": pal["red"][1]},
        {"kind": "square", "color": "blue", "texture": "striped", "rgb": pal["blue"][0], "dark_rgb": pal["blue"][1]},
    ]
    img = np.empty((10, 10, 3), np.uint8)
    img[:] = gray
    return lay, attrs, img, a, b, pal, gray


def test_metrics_colour_swap_by_hand():
    lay, attrs, img, a, b, pal, gray = _two_box_case()
    img[a] = pal["blue"][0]  # A painted with B's colour
    img[b] = pal["blue"][0]
    img[5:, 5::2] = pal["blue"][1]  # B: stripes of the dark shade in 3 of 5 columns (15/25 = 0.6)
    recs, agg = shape_metrics(img, lay, attrs, gray)
    ra, rb = recs
    assert ra["iou"] == 0.0 and not ra["colour_ok"] and ra["majority"] == "blue" and ra["leakage"] == 1.0
    assert rb["iou"] == 25 / 50 and rb["colour_ok"] and rb["leakage"] == 0.0
    assert ra["texture_ok"] and ra["dark_fraction"] == 0.0
    assert rb["dark_fraction"] == 15 / 25 and rb["texture_ok"]
    assert agg == {"miou": 0.25, "colour_acc": 0.5, "leakage": 0.5, "texture_acc": 1.0, "n_entities": 2}


def test_metrics_partial_leak_and_texture_by_hand():
    lay, attrs, img, a, b, pal, gray = _two_box_case()
    img[a] = pal["red"][0]
    img[:2, :5] = pal["blue"][0]  # 10 of A's 25 pixels leak blue
    img[b] = pal["blue"][0]  # B plain although the prompt says striped
    img[0, 9] = (30, 70, 200)  # a stray blue-ish pixel in the background, nearest to blue
    recs, agg = shape_metrics(img, lay, attrs, gray)
    ra, rb = recs
    assert ra["colour_ok"] and ra["leakage"] == 10 / 25 and ra["iou"] == 15 / 25
    assert rb["iou"] == 25 / 36 and rb["leakage"] == 0.0 and not rb["texture_ok"] and rb["dark_fraction"] == 0.0
    assert agg["texture_acc"] == 0.5 and agg["leakage"] == pytest.approx(0.2)


def test_metrics_exact_tie_goes_to_earlier_family():
    lay, attrs, img, a, b, pal, gray = _two_box_case()
    # A's 25 pixels: 10 green, 10 red, the last column (5) background
    img[:5, :2] = pal["green"][0]
    img[:5, 2:4] = pal["red"][0]
    img[b] = pal["blue"][0]
    recs, _ = shape_metrics(img, lay, attrs, gray)
    assert recs[0]["majority"] == "red" and recs[0]["colour_ok"]  # red precedes green in the palette
    attrs_g = [dict(attrs[0], color="green", rgb=pal["green"][0], dark_rgb=pal["green"][1]), attrs[1]]
    recs, _ = shape_metrics(img, lay, attrs_g, gray)
    assert recs[0]["majority"] == "red" and not recs[0]["colour_ok"]


def test_metrics_reject_mismatches():
    lay, attrs, img, *_ = _two_box_case()
    with pytest.raises(LayoutError):
        shape_metrics(img[:5], lay, attrs, (128, 128, 128))
    with pytest.raises(LayoutError):
        shape_metrics(img, lay, attrs[:1], (128, 128, 128))
