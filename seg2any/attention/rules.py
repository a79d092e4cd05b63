"""Seg2Any attention rules in compact form: per-token tags plus small per-sample tables.

The official code builds a dense L x L float bias per sample (and a second one for attribute
isolation). The rules only depend on a few facts per token, so we keep exactly those:

* ``kind``: global text, entity text, image, condition, padding;
* ``ent``:  for entity-text tokens, which entity the caption belongs to;
* ``grp``:  for image tokens, the id of the *set* of entities covering the token (0 = none).
  Overlapping masks make a token belong to several entities; distinct membership sets are
  enumerated per sample, with ``has[g, i]`` (set g contains entity i) and ``share[g, h]``
  (sets g and h intersect) as lookup tables.

The same :func:`visible` / :func:`score_bias` functions evaluate the rules on any broadcastable
index tensors, so the SDPA path (a per-sample boolean mask, heads broadcast) and the
FlexAttention path (``mask_mod`` / ``score_mod``) cannot disagree. A dense float64 builder that
follows the official algorithm step by step lives in :mod:`tests.support.reference_mask` for tests.

Rules (q attends to k), "base" mode (Semantic Alignment, every layer):
  image/condition <-> image/condition; image<->condition pairs get + log(alpha)
  global text <-> global text, global text <-> image (both ways)
  entity text i <-> entity text i, entity text i <-> image tokens of entity i (both ways)
  padding -> itself only; nothing else attends padding. Text never sees condition tokens.
"hard" mode (Attribute Isolation, in the configured layers) changes two things:
  a foreground image query sees only image tokens sharing one of its entities (background
  queries still see every image token), and foreground image queries no longer see the global
  text (the official code does this; the paper words it the other way round).
"place" mode: entity text <-> image pairs get + log(fraction of the token inside the mask).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import ModelMismatchError
from ..layout.token_grid import area_fractions, token_masks

MODES = ("hard", "base", "place")


class Kind:
    """Token kinds. Plain ints on purpose: FlexAttention traces the rules, and an IntEnum
    compared with a traced tensor collapses to a Python bool there."""

    GLOBAL = 0
    ENTITY = 1
    IMAGE = 2
    COND = 3
    PAD = 4


# ----------------------------------------------------------------------------------------------
# one sample


@dataclass(frozen=True, eq=False)
class RowLayout:
    """Token bookkeeping of one sample before batch padding.

    ``text_lens`` = (len T0, len T1, ..., len TN); T0 may be 0 (no global caption).
    ``token_group`` gives each image token (row-major) its membership-set id; row 0 of
    ``group_members`` is the empty set. ``place_frac`` (N, n_img) is only set for "place".
    """

    text_lens: tuple[int, ...]
    token_group: np.ndarray
    group_members: np.ndarray
    n_cond: int
    place_frac: np.ndarray | None = None

    @property
    def n_entities(self) -> int:
        return len(self.text_lens) - 1

    @property
    def n_text(self) -> int:
        return int(sum(self.text_lens))

    @property
    def n_img(self) -> int:
        return int(self.token_group.shape[0])


def membership_groups(member: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, n_img) bool -> (group id per token, (G, N) bool members) with the empty set as group 0."""
    n, n_img = member.shape
    pats = np.concatenate([np.zeros((1, n), dtype=bool), member.T], axis=0)
    uniq, inv = np.unique(pats, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    # np.unique sorts rows lexicographically with False < True, so the empty set is row 0.
    assert not uniq[0].any()
    return inv[1:].astype(np.int64), uniq.astype(bool)


def row_layout(
    text_lens: tuple[int, ...] | list[int],
    masks: np.ndarray,
    grid: tuple[int, int],
    n_cond: int,
    mode: str = "hard",
) -> RowLayout:
    """Build one sample's bookkeeping from its pixel masks (N, H, W) and the token grid."""
    text_lens = tuple(int(t) for t in text_lens)
    if len(text_lens) != masks.shape[0] + 1:
        raise ModelMismatchError(f"{len(text_lens) - 1} entity captions but {masks.shape[0]} masks")
    gh, gw = grid
    if mode == "place":
        frac = area_fractions(masks, gh, gw)
        member = frac > 0
    elif mode in ("base", "hard"):
        frac = None
        member = token_masks(masks, gh, gw)
    else:
        raise ValueError(f"unknown attention mode {mode!r}; expected one of {MODES}")
    grp, members = membership_groups(member)
    return RowLayout(text_lens, grp, members, int(n_cond), frac)


# ----------------------------------------------------------------------------------------------
# a batch


def entity_order(token_group: np.ndarray) -> np.ndarray:
    """Permutation (new position -> old index) that makes every membership set contiguous.

    Stable, so raster order survives inside each set. Used to make FlexAttention block
    sparsity pay; attention is permutation-equivariant once positions travel with the tokens.
    """
    return np.argsort(token_group, kind="stable")


@dataclass(eq=False)
class SequencePlan:
    """Joint sequence of a batch: [text (padded to T) | image (n_img) | condition (padded to C)].

    ``perm[b]`` (or None) reorders row b's image tokens (new -> old); ``cond_len`` may exceed the
    longest row to round L up to a bucket, the extra tokens being padding.
    """

    rows: list[RowLayout]
    n_img: int
    text_len: int
    cond_len: int
    perm: list[np.ndarray | None] = field(default_factory=list)

    @classmethod
    def build(cls, rows: list[RowLayout], *, bucket: int = 1, reorder: bool = False) -> SequencePlan:
        if not rows:
            raise ValueError("a plan needs at least one row")
        n_img = rows[0].n_img
        for r in rows:
            if r.n_img != n_img:
                raise ModelMismatchError(f"rows disagree on the image token count ({r.n_img} vs {n_img})")
        text_len = max(r.n_text for r in rows)
        cond_len = max(r.n_cond for r in rows)
        if bucket > 1:
            total = text_len + n_img + cond_len
            cond_len += (-total) % bucket
        perm = [entity_order(r.token_group) if reorder else None for r in rows]
        return cls(rows, n_img, text_len, cond_len, perm)

    @property
    def length(self) -> int:
        return self.text_len + self.n_img + self.cond_len

    @property
    def batch(self) -> int:
        return len(self.rows)

    @property
    def reordered(self) -> bool:
        return any(p is not None for p in self.perm)

    def tags(self, device: torch.device | str = "cpu") -> SequenceTags:
        b, L, T, n_img = self.batch, self.length, self.text_len, self.n_img
        kind = np.full((b, L), Kind.PAD, dtype=np.int8)
        ent = np.full((b, L), -1, dtype=np.int64)
        grp = np.zeros((b, L), dtype=np.int64)
        g_max = max(r.group_members.shape[0] for r in self.rows)
        n_max = max(max(r.n_entities for r in self.rows), 1)
        has = np.zeros((b, g_max, n_max), dtype=bool)
        share = np.zeros((b, g_max, g_max), dtype=bool)
        any_place = any(r.place_frac is not None for r in self.rows)
        frac = np.zeros((b, n_max, n_img), dtype=np.float64) if any_place else None
        for i, r in enumerate(self.rows):
            pos = 0
            for s, n in enumerate(r.text_lens):
                kind[i, pos : pos + n] = Kind.GLOBAL if s == 0 else Kind.ENTITY
                if s > 0:
                    ent[i, pos : pos + n] = s - 1
                pos += n
            order = self.perm[i] if self.perm and self.perm[i] is not None else slice(None)
            kind[i, T : T + n_img] = Kind.IMAGE
            grp[i, T : T + n_img] = r.token_group[order]
            kind[i, T + n_img : T + n_img + r.n_cond] = Kind.COND
            g, n = r.group_members.shape
            has[i, :g, :n] = r.group_members
            m = r.group_members.astype(np.int64)
            share[i, :g, :g] = (m @ m.T) > 0
            if frac is not None and r.place_frac is not None:
                frac[i, :n] = r.place_frac[:, order]
        dev = torch.device(device)
        return SequenceTags(
            kind=torch.from_numpy(kind).to(dev),
            ent=torch.from_numpy(ent).to(dev),
            grp=torch.from_numpy(grp).to(dev),
            has=torch.from_numpy(has).to(dev),
            share=torch.from_numpy(share).to(dev),
            frac=None if frac is None else torch.from_numpy(frac).to(dev),
            text_len=T,
            n_img=n_img,
        )


@dataclass(eq=False)
class SequenceTags:
    """Device tensors the kernels read: (B, L) tags and (B, G, N) / (B, G, G) tables."""

    kind: torch.Tensor
    ent: torch.Tensor
    grp: torch.Tensor
    has: torch.Tensor
    share: torch.Tensor
    frac: torch.Tensor | None
    text_len: int
    n_img: int

    @property
    def length(self) -> int:
        return int(self.kind.shape[1])


# ----------------------------------------------------------------------------------------------
# the rules, on broadcastable index tensors


def visible(tags: SequenceTags, b, q, k, isolate: bool) -> torch.Tensor:
    """Boolean 'q may attend k' for sample index ``b`` and token indices ``q``, ``k``.

    ``b``, ``q`` and ``k`` are integer tensors (or ints) that broadcast together; this is called
    both with full index grids (SDPA masks) and with FlexAttention's scalar-like indices.
    """
    kq, kk = tags.kind[b, q], tags.kind[b, k]
    eq, ek = tags.ent[b, q], tags.ent[b, k]
    gq, gk = tags.grp[b, q], tags.grp[b, k]
    img_q, img_k = kq == Kind.IMAGE, kk == Kind.IMAGE
    cond_q, cond_k = kq == Kind.COND, kk == Kind.COND
    glob_q, glob_k = kq == Kind.GLOBAL, kk == Kind.GLOBAL
    ent_q, ent_k = kq == Kind.ENTITY, kk == Kind.ENTITY

    vis = (img_q | cond_q) & (img_k | cond_k)
    img_to_global = img_q & glob_k
    if isinstance(isolate, torch.Tensor) or isolate:
        bg_q = gq == 0
        cut = img_q & img_k & ~bg_q & ~tags.share[b, gq, gk]
        keep_global = bg_q
        if isinstance(isolate, torch.Tensor):
            # a 0-d bool tensor: compiled FlexAttention traces one graph for both rules
            cut, keep_global = cut & isolate, bg_q | ~isolate
        vis = vis & ~cut
        img_to_global = img_to_global & keep_global
    vis = vis | (glob_q & (glob_k | img_k)) | img_to_global
    vis = vis | (ent_q & ent_k & (eq == ek))
    vis = vis | (ent_q & img_k & tags.has[b, gk, eq.clamp(min=0)])
    vis = vis | (img_q & ent_k & tags.has[b, gq, ek.clamp(min=0)])
    vis = vis | ((kq == Kind.PAD) & (kk == Kind.PAD) & (q == k))
    return vis


def score_bias(tags: SequenceTags, b, q, k, log_alpha, place: bool, dtype=torch.float32):
    """Additive logit bias for allowed pairs: log(alpha) on image<->condition, log(fraction) in place mode.

    ``log_alpha`` may be a float or a 0-d tensor; FlexAttention passes a tensor, because a captured
    Python float turns into a symbolic float when it retraces for a new length.
    """
    kq, kk = tags.kind[b, q], tags.kind[b, k]
    pair = ((kq == Kind.IMAGE) & (kk == Kind.COND)) | ((kq == Kind.COND) & (kk == Kind.IMAGE))
    zero = torch.zeros((), dtype=dtype, device=tags.kind.device)
    la = (
        log_alpha.to(dtype) if isinstance(log_alpha, torch.Tensor) else torch.full((), log_alpha, dtype=dtype, device=zero.device)
    )
    bias = torch.where(pair, la, zero)
    if place and tags.frac is not None:
        T, n = tags.text_len, tags.n_img
        ent_q, ent_k = kq == Kind.ENTITY, kk == Kind.ENTITY
        img_q, img_k = kq == Kind.IMAGE, kk == Kind.IMAGE
        eq, ek = tags.ent[b, q].clamp(min=0), tags.ent[b, k].clamp(min=0)
        qi, ki = _image_index(q, T, n), _image_index(k, T, n)
        fk = tags.frac[b, eq, ki].to(dtype)
        fq = tags.frac[b, ek, qi].to(dtype)
        bias = bias + torch.where(ent_q & img_k & (fk > 0), torch.log(fk.clamp(min=1e-30)), zero)
        bias = bias + torch.where(img_q & ent_k & (fq > 0), torch.log(fq.clamp(min=1e-30)), zero)
    return bias


def _image_index(i, T, n):
    """Token index -> image-token index clamped to [0, n). ``T`` and ``n`` may be 0-d tensors
    (compiled FlexAttention); a clamp bound given as a tensor would leave the traced graph."""
    if not isinstance(i, torch.Tensor):
        return min(max(i - T, 0), n - 1)
    return torch.minimum((i - T).clamp(min=0), torch.as_tensor(n - 1, device=i.device))


@dataclass(frozen=True)
class MaskRule:
    """Which rule set a layer uses, plus the shape-strength bias."""

    isolate: bool
    log_alpha: float = 0.0
    place: bool = False

    @property
    def needs_bias(self) -> bool:
        return self.place or self.log_alpha != 0.0


def dense_mask(
    tags: SequenceTags,
    rule: MaskRule,
    dtype: torch.dtype = torch.bool,
    chunk: int = 2048,
    align: int = 1,
) -> torch.Tensor:
    """Per-sample mask (B, 1, L, L) for SDPA: bool (True = attend) or additive in ``dtype``.

    Built query-chunk by query-chunk so temporaries stay at (chunk x L); heads are broadcast.
    ``align`` pads the storage of the last dimension (the result is a view of width L).
    """
    B, L = tags.kind.shape
    dev = tags.kind.device
    additive = dtype != torch.bool
    width = L + (-L) % align
    out = torch.empty((B, 1, L, width), dtype=dtype, device=dev)[..., :L]
    k = torch.arange(L, device=dev)[None, :]
    for b in range(B):
        bt = torch.tensor(b, device=dev)
        for s in range(0, L, chunk):
            q = torch.arange(s, min(s + chunk, L), device=dev)[:, None]
            vis = visible(tags, bt, q, k, rule.isolate)
            if not additive:
                out[b, 0, s : s + q.shape[0]] = vis
                continue
            work = torch.float64 if dtype == torch.float64 else torch.float32
            bias = score_bias(tags, bt, q, k, rule.log_alpha, rule.place, work) if rule.needs_bias else 0.0
            val = torch.where(vis, bias, -math.inf)
            out[b, 0, s : s + q.shape[0]] = val.to(dtype)
    return out


# ----------------------------------------------------------------------------------------------
# which layers isolate


_RANGE = re.compile(r"^\s*(\d+)\s*(?:-|\.\.|:|,)\s*(\d+)\s*$")


def isolation_layers(spec: str, n_double: int, n_single: int) -> tuple[int, int] | None:
    """Inclusive (first, last) joint-block range for attribute isolation, or None.

    Blocks are numbered over both kinds: double 0..D-1, then single D..D+S-1 (FLUX: 0..56).
    "auto" is the official 19..37 for FLUX (the first half of the single blocks), scaled to
    other depths as [D, D + max(1, S // 2) - 1]; "none" disables it; "A-B" is explicit.
    """
    spec = (spec or "auto").strip().lower()
    total = n_double + n_single
    if spec == "none":
        return None
    if spec == "auto":
        if n_single == 0:
            return None
        return (n_double, n_double + max(1, n_single // 2) - 1)
    m = _RANGE.match(spec)
    if not m:
        raise ModelMismatchError(f"isolation block range must be 'auto', 'none' or 'first-last' (e.g. '19-37'), got {spec!r}")
    a, b = int(m.group(1)), int(m.group(2))
    if a > b or b >= total:
        raise ModelMismatchError(f"isolation block range {a}-{b} is outside this model's blocks 0-{total - 1}")
    return (a, b)
