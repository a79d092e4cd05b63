"""FlexAttention over the Seg2Any rules, compiled once per kind of rule rather than once per layout.

Why the structure: ``torch.compile`` guards on everything a graph bakes in. A ``mask_mod`` that
closes over Python ints or a rule flag, tensors whose sizes are static, or a BlockMask whose
sequence length is a static int, makes every new layout a new graph; after dynamo's recompile
limit flex silently runs unfused (O(L^2) memory, 5x slower). Here:

* the compiled function is ``flex_attention``; sequence lengths become symbolic (below);
* ``mask_mod`` / ``score_mod`` are built by one factory each and read only tensors: the tags,
  the rule's ``isolate`` flag and ``log(alpha)`` are 0-d tensors, the text/image offsets too, so a
  new layout or rule changes graph *inputs*, never constants. The only Python constant is
  ``place`` (a different score formula), so there are two kinds of rule: standard and place;
* the BlockMask is built from our own tile classification (:func:`tile_classes`) with
  ``BlockMask.from_kv_blocks``; ``create_block_mask`` would vmap the mask_mod over L x L
  eagerly (gigabytes at 2048 px) or compile once more per layout;
* entity sets are int64 bit masks per token (``has`` / ``share`` become bit tests), so the mods
  only gather per-token values: no lookup table whose size a graph could depend on;
* every sample runs as its own batch-1 call, so the batch size never reaches a guard (and the
  Inductor CPU template, which fails to build for a symbolic batch, is not asked to).

``torch.compile(dynamic=None)``: the first layout compiles a static graph, the first *different*
length turns the lengths symbolic (automatic dynamic). (``dynamic=True`` from the start also makes
heads and head dim symbolic, which Inductor's CPU flex template fails to build.)

Bound: at most 2 graphs per (kind of rule, dtype, heads, head dim, device): one static for the
first length, one symbolic for all others; i.e. <= 4 for any number of layouts, sizes, entity
counts (<= 62), batch sizes and shape strengths. ``tests/core/test_flex_compile.py`` counts them on
the CPU for the standard kind, ``tests/gpu/test_many_layouts_cuda.py`` for both on CUDA. (Inductor's
CPU flex template fails to build the symbolic "place" kernel; that raises, and MaskedAttention
falls back to SDPA unless SEG2ANY_STRICT_FLEX is set.)
"""

from __future__ import annotations

import dataclasses
import functools
import os

import torch

from .rules import MaskRule, SequenceTags, score_bias, visible

FLEX_BLOCK = 128
MAX_GRAPHS = 4  # 2 kinds of rule (standard, place) x (first specialised + general) graph


def flex_available() -> bool:
    try:
        from torch.nn.attention.flex_attention import BlockMask, flex_attention  # noqa: F401
    except Exception:
        return False
    return True


def compiled_wanted(device: torch.device) -> bool:
    """CUDA always compiles; elsewhere only with SEG2ANY_FLEX_COMPILE=1 (Inductor's CPU path needs a
    C++ compiler and seconds per graph, so the default CPU backend stays SDPA; CI sets it to guard
    the compile count)."""
    return device.type == "cuda" or os.environ.get("SEG2ANY_FLEX_COMPILE", "") == "1"


@functools.cache
def compiled_flex():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=None)


@functools.cache
def eager_flex():
    from torch.nn.attention.flex_attention import flex_attention

    return flex_attention


def flex_fn(device: torch.device):
    return compiled_flex() if compiled_wanted(device) else eager_flex()


# ----------------------------------------------------------------------------------------------
# per-sample tensors the mods read


MAX_ENTITIES = 62  # entity sets travel as int64 bit masks


class _Bits:
    """``has[b, set, entity]`` and ``share[b, set, set]`` on bit-mask set ids, no lookup table.

    Inductor's CPU flex template fails to build gathers from a 3-D table whose sizes are
    symbolic, and table sizes would otherwise be compile-time facts of every layout.
    """

    def __init__(self, op: str):
        self.op = op

    def __getitem__(self, idx):
        _, x, y = idx
        if self.op == "has":
            return ((x >> y) & 1) == 1
        return (x & y) != 0


class _Frac:
    """``frac[b, entity, image index]`` from a (1, MAX_ENTITIES, L) table over token positions: its
    only varying size is L itself, which the graph has anyway (any other symbolic table size
    breaks Inductor's CPU flex template)."""

    def __init__(self, table: torch.Tensor, text_len: torch.Tensor):
        self.table, self.text_len = table, text_len

    def __getitem__(self, idx):
        b, e, i = idx
        return self.table[b, e, i + self.text_len]


def sample_tags(tags: SequenceTags, b: int) -> SequenceTags:
    """Sample ``b`` as a batch-1 SequenceTags the mods can read with only per-token gathers.

    ``grp`` becomes the bit mask of the token's entity set (0 = none, as group 0 is the empty
    set), so :func:`visible` works unchanged; offsets are 0-d tensors, never Python ints.
    """
    dev = tags.kind.device
    has = tags.has[b]
    if has.shape[1] > MAX_ENTITIES and bool(has[:, MAX_ENTITIES:].any()):
        raise NotImplementedError(f"FlexAttention path supports at most {MAX_ENTITIES} entities per image")
    weights = torch.ones(has.shape[1], dtype=torch.int64, device=dev) << torch.arange(has.shape[1], device=dev).clamp(max=62)
    set_bits = (has.to(torch.int64) * weights).sum(dim=1)  # (G,)
    s = slice(b, b + 1)
    text_len = torch.tensor(tags.text_len, device=dev)
    frac = None
    if tags.frac is not None:
        table = torch.zeros((1, MAX_ENTITIES, tags.length), dtype=tags.frac.dtype, device=dev)
        n = min(MAX_ENTITIES, tags.frac.shape[1])
        table[0, :n, tags.text_len : tags.text_len + tags.n_img] = tags.frac[b, :n]
        frac = _Frac(table, text_len)
    return dataclasses.replace(
        tags,
        kind=tags.kind[s],
        ent=tags.ent[s],
        grp=set_bits[tags.grp[s]],
        has=_Bits("has"),
        share=_Bits("share"),
        frac=frac,
        text_len=text_len,
        n_img=torch.tensor(tags.n_img, device=dev),
    )


def mods(tags: SequenceTags, rule: MaskRule):
    """(mask_mod, score_mod) for one batch-1 sample; the same code objects for every layout/rule."""
    dev = tags.kind.device
    iso = torch.tensor(rule.isolate, device=dev)
    log_alpha = torch.tensor(rule.log_alpha, dtype=torch.float32, device=dev)
    place = rule.place and tags.frac is not None

    def mask_mod(b, h, q, k):
        return visible(tags, b, q, k, iso)

    def score_mod(score, b, h, q, k):
        return score + score_bias(tags, b, q, k, log_alpha, place).to(score.dtype)

    return mask_mod, score_mod


# ----------------------------------------------------------------------------------------------
# block masks without create_block_mask


def tile_classes(tags: SequenceTags, rule: MaskRule, b: int, block: int = FLEX_BLOCK, rows: int = 2048):
    """(partial, full) bool (nq, nk) tile maps of sample ``b``: some / all pairs of a tile visible.

    Evaluated query-chunk by query-chunk with the shared :func:`visible`, so temporaries stay at
    rows x L. Tiles reaching past L are never "full" (their missing pairs are not visible).
    """
    L = tags.length
    dev = tags.kind.device
    n = -(-L // block)
    rows = max(block, rows - rows % block)
    part = torch.zeros((n, n), dtype=torch.bool, device=dev)
    full = torch.zeros((n, n), dtype=torch.bool, device=dev)
    k = torch.arange(L, device=dev)[None, :]
    bt = torch.tensor(b, device=dev)
    for s in range(0, L, rows):
        q = torch.arange(s, min(s + rows, L), device=dev)[:, None]
        vis = visible(tags, bt, q, k, rule.isolate)
        padded = torch.zeros((-(-q.shape[0] // block) * block, n * block), dtype=torch.bool, device=dev)
        padded[: vis.shape[0], :L] = vis
        t = padded.view(-1, block, n, block)
        anyv = t.any(dim=3).any(dim=1)
        allv = t.all(dim=3).all(dim=1)
        i0 = s // block
        full[i0 : i0 + anyv.shape[0]] = allv
        part[i0 : i0 + anyv.shape[0]] = anyv & ~allv
    return part, full


def _kv_lists(tiles: torch.Tensor):
    """(nq, nk) bool -> (1, 1, nq) counts and (1, 1, nq, nk) indices with the used ones first."""
    n_k = tiles.shape[1]
    counts = tiles.sum(dim=1).to(torch.int32)
    # stable sort on "not used" puts used tile indices first, in ascending order
    order = torch.sort((~tiles).to(torch.int8), dim=1, stable=True).indices.to(torch.int32)
    return counts[None, None], order[None, None].contiguous(), n_k


def block_mask(tags: SequenceTags, rule: MaskRule, b: int, mask_mod, block: int = FLEX_BLOCK):
    from torch.nn.attention.flex_attention import BlockMask

    part, full = tile_classes(tags, rule, b, block)
    kv_n, kv_i, _ = _kv_lists(part)
    f_n, f_i, _ = _kv_lists(full)
    L = tags.length
    return BlockMask.from_kv_blocks(kv_n, kv_i, f_n, f_i, BLOCK_SIZE=block, mask_mod=mask_mod, seq_lengths=(L, L))


@dataclasses.dataclass(eq=False)
class FlexState:
    """Per-generation flex inputs: one (block mask, score_mod) per sample and rule, built lazily."""

    tags: SequenceTags
    block: int = FLEX_BLOCK
    _cache: dict = dataclasses.field(default_factory=dict)

    def _for(self, b: int, rule: MaskRule):
        key = (b, rule)
        hit = self._cache.get(key)
        if hit is None:
            st = sample_tags(self.tags, b)
            mask_mod, score_mod = mods(st, rule)
            hit = (block_mask(self.tags, rule, b, mask_mod, self.block), score_mod)
            self._cache[key] = hit
        return hit

    def block_masks(self, rule: MaskRule):
        return [self._for(b, rule)[0] for b in range(self.tags.kind.shape[0])]

    def __call__(self, q, k, v, rule: MaskRule) -> torch.Tensor:
        fn = flex_fn(q.device)
        outs = []
        for b in range(q.shape[0]):
            bm, score_mod = self._for(b, rule)
            s = slice(b, b + 1)
            outs.append(fn(q[s], k[s], v[s], score_mod=score_mod, block_mask=bm))
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=0)
