"""Token-graph construction (GLOT step 1), vectorised over a packed batch.

For each sentence, S_ij = cos(x_i, x_j) over its REAL tokens and edge (i, j) iff S_ij > tau (Mantri et al.,
ICLR 2026, arXiv 2603.03389, Sec. 3.1). The reference code keeps the diagonal (cos = 1 > tau), so every token has
a self-loop; here that is explicit (``self_loops=True``) so it also holds for zero vectors and tau = 1.

No Python loop runs over sentences: sentences are grouped into length buckets, each bucket is padded once and its
similarities come from one batched matmul, processed in row blocks so that at most ``max_block_elems`` similarity
entries exist at a time (a 32K-token document never materialises a dense 32K x 32K matrix). Padding never enters
a graph. The output is an ``edge_index`` in packed coordinates, ready for PyG layers.

A bucket's padded width is a function of its sentences' own length (:func:`bucket_width`: the length rounded up
to one of four widths per octave), never of the other sentences in the batch: a sentence's similarity matmul
then always has the same shape, so its cosines -- and its graph -- are bit-identical in whatever batch it is
built. That is what lets graphs built once for a cache (:mod:`glot.pooling.graph_cache`) equal on-the-fly ones.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from glot.pooling.config import GraphConfig
from glot.pooling.packing import check_packed

DEFAULT_BLOCK_ELEMS = 1 << 24  # 16M similarity entries (64 MB fp32) per block


class TokenGraph(NamedTuple):
    """Edges in packed coordinates. Shapes: edge_index (2, E) int64, edge_weight (E,) or None."""

    edge_index: Tensor
    edge_weight: Tensor | None


def cosine_similarity(x: Tensor) -> Tensor:
    """Cosine similarity of one sentence's tokens; zero vectors give 0, never NaN. Shapes: x (L, D) -> (L, L)."""
    xn = F.normalize(x.float(), dim=-1)
    return (xn @ xn.T).clamp_(-1.0, 1.0)


def bucket_width(length: int) -> int:
    """Padded width of a sentence of ``length`` tokens: rounded up to a multiple of 2^(bits - 3), i.e. one of
    four widths per octave (1..8 exact, then 10, 12, 14, 16, 20, 24, 28, 32, 40, ...): padding adds < 25%."""
    step = max(int(length).bit_length() - 3, 0)
    return -(-int(length) >> step) << step


def length_buckets(lengths: Tensor, max_block_elems: int) -> list[Tensor]:
    """Group sentence ids, longest first, into buckets of one :func:`bucket_width` each.

    A bucket also closes when adding a sentence would exceed the budget (count * width^2 similarity entries).
    Always at least one sentence per bucket; the concatenated groups are the stable longest-first order.
    """
    order = torch.argsort(lengths, descending=True, stable=True)
    widths = [bucket_width(n) for n in lengths[order].tolist()]
    groups, start = [], 0
    while start < len(widths):
        width = widths[start]
        cap = max(1, max_block_elems // (width * width))
        end = start + 1
        while end < len(widths) and end - start < cap and widths[end] == width:
            end += 1
        groups.append(order[start:end])
        start = end
    return groups


def padded_bucket(ptr: Tensor, group: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
    """Slot layout of one bucket: ``slots`` the packed row of each slot (``num_nodes`` for padding: one past the
    last row, where the dense GAT path appends a zero row) and ``mask`` the real slots.

    Shapes: ptr (B + 1,), group (b,) -> slots (b, W), mask (b, W), W = bucket_width of the longest.
    """
    lengths = ptr[group + 1] - ptr[group]
    pos = torch.arange(bucket_width(int(lengths.max())), device=ptr.device)
    mask = pos[None, :] < lengths[:, None]
    slots = torch.where(mask, ptr[group][:, None] + pos[None, :], num_nodes)
    return slots, mask


#: F.normalize's epsilon: a token whose norm is below it counts as the zero vector (cosine 0 with everything).
NORM_EPS = 1e-12


def bucket_states(x: Tensor, slots: Tensor, mask: Tensor) -> Tensor:
    """A bucket's padded states, raw (not normalised): row ``slots[b, l]`` of ``x`` (the packed states as fp32,
    detached: graphs are not differentiated through), padding slots filled with row 0 (any row:
    :func:`bucket_cosines` zeroes every cosine a padding slot takes part in). One index_select.
    Shapes: x (N, D), slots (b, W), mask (b, W) -> (b, W, D)."""
    return x.index_select(0, slots.masked_fill(~mask, 0).reshape(-1)).view(*slots.shape, x.shape[1])


def inverse_norms(xp: Tensor, mask: Tensor) -> Tensor:
    """1 / max(|x|, eps) of every slot of a padded bucket, 0 for padding. Shapes: (b, W, D), (b, W) -> (b, W)."""
    return torch.linalg.vector_norm(xp, dim=-1).clamp_min_(NORM_EPS).reciprocal_().mul_(mask)


def bucket_cosines(xp: Tensor, mask: Tensor, rows: slice, inv: Tensor | None = None) -> Tensor:
    """Cosines of rows ``rows`` of a padded bucket against all its slots; exactly 0 wherever padding is involved.

    One batched matmul of the raw states, then scaled by the inverse norms (``inv`` from :func:`inverse_norms`;
    None when ``rows`` is the whole bucket: the squared norms are then the Gram matrix's own diagonal), so no
    normalised copy of the states is ever written. Shapes: xp (b, W, D), mask (b, W) -> (b, r, W).
    """
    gram = torch.bmm(xp[:, rows], xp.transpose(1, 2))  # (b, r, W)
    if inv is None:
        if rows.stop - rows.start != xp.shape[1]:
            raise ValueError("bucket_cosines: a row block needs the bucket's inverse norms (inv)")
        inv = gram.diagonal(dim1=1, dim2=2).clamp_min(NORM_EPS * NORM_EPS).rsqrt_().mul_(mask)
    return gram.mul_(inv[:, rows, None]).mul_(inv[:, None, :]).clamp_(-1.0, 1.0)


def block_adjacency(
    xp: Tensor, mask: Tensor, rows: slice, cfg: GraphConfig, inv: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """The graph rule on rows ``rows`` of a padded bucket: adj[b, i, j] = token i receives from token j.

    Shapes: xp (b, L, D) raw states (:func:`bucket_states`), mask (b, L), inv (b, L) or None (see
    :func:`bucket_cosines`) -> adj (b, r, L) bool, sim (b, r, L) cosines.
    """
    sim = bucket_cosines(xp, mask, rows, inv)
    threshold = cfg.threshold()
    adj = sim > threshold  # then edited in place: one (b, r, L) tensor, no temporaries of its size
    if threshold < 0:  # padding cosines are 0, so only a negative threshold lets padding through
        adj &= mask[:, rows, None]
        adj &= mask[:, None, :]
    diag = adj[:, :, rows].diagonal(dim1=1, dim2=2)  # (b, r): row i's own column rows.start + i
    diag.fill_(False)
    if cfg.knn is not None:
        k = min(cfg.knn, xp.shape[1])
        scores = sim.masked_fill(~(mask[:, rows, None] & mask[:, None, :]), float("-inf"))
        scores[:, :, rows].diagonal(dim1=1, dim2=2).fill_(float("-inf"))
        top = torch.zeros_like(adj)
        top.scatter_(2, scores.topk(k, dim=2).indices, True)
        adj &= top
    if cfg.self_loops:
        diag.copy_(mask[:, rows])  # a real token's own slot (the diagonal of a real row is a real column)
    return adj, sim


def _block_edges(
    xp: Tensor, mask: Tensor, rows: slice, cfg: GraphConfig, inv: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """Edges whose source row lies in ``rows`` for a padded bucket, with their cosines when ``cfg.weighted``.

    Shapes: xp (b, L, D) raw states, mask (b, L), inv (b, L) or None -> (bucket idx, i, j, cos or None) each
    (E_block,).
    """
    adj, sim = block_adjacency(xp, mask, rows, cfg, inv)
    b, i, j = adj.nonzero(as_tuple=True)
    return b, i + rows.start, j, sim[b, i, j] if cfg.weighted else None


def build_token_graph(
    x: Tensor,
    ptr: Tensor,
    config: GraphConfig | None = None,
    *,
    max_block_elems: int = DEFAULT_BLOCK_ELEMS,
) -> TokenGraph:
    """Build every sentence's token graph at once.

    Shapes: x (N, D) packed real tokens, ptr (B + 1,) -> edge_index (2, E), edge_weight (E,) or None.
    """
    cfg = config or GraphConfig()
    cfg.validate()
    check_packed(x, ptr)
    lengths = ptr[1:] - ptr[:-1]
    xf = x.detach().float()
    srcs, dsts, weights = [], [], []
    for group in length_buckets(lengths, max_block_elems):
        slots, mask = padded_bucket(ptr, group, x.shape[0])  # (b, W): packed row of each slot, real slots
        lmax = mask.shape[1]
        xp = bucket_states(xf, slots, mask)
        rows_per_block = max(1, max_block_elems // (len(group) * lmax))
        inv = inverse_norms(xp, mask) if rows_per_block < lmax else None  # one block: norms from the Gram
        for r0 in range(0, lmax, rows_per_block):
            b, i, j, w = _block_edges(xp, mask, slice(r0, min(lmax, r0 + rows_per_block)), cfg, inv)
            srcs.append(slots[b, j])  # PyG flow: messages go edge_index[0] -> edge_index[1]; with kNN the
            dsts.append(slots[b, i])  # row token i receives from its top-k neighbours j
            if w is not None:
                weights.append(w)
    edge_index = (
        torch.stack([torch.cat(srcs), torch.cat(dsts)]) if srcs else x.new_zeros(2, 0, dtype=torch.long)
    )
    edge_weight = torch.cat(weights) if (cfg.weighted and weights) else None
    return TokenGraph(edge_index.long(), edge_weight)
