"""Token-graph construction (GLOT step 1), vectorised over a packed batch.

For each sentence, S_ij = cos(x_i, x_j) over its REAL tokens and edge (i, j) iff S_ij > tau (Mantri et al.,
ICLR 2026, arXiv 2603.03389, Sec. 3.1). The reference code keeps the diagonal (cos = 1 > tau), so every token has
a self-loop; here that is explicit (``self_loops=True``) so it also holds for zero vectors and tau = 1.

No Python loop runs over sentences: sentences are grouped into length buckets, each bucket is padded once and its
similarities come from one batched matmul, processed in row blocks so that at most ``max_block_elems`` similarity
entries exist at a time (a 32K-token document never materialises a dense 32K x 32K matrix). Padding never enters
a graph. The output is an ``edge_index`` in packed coordinates, ready for PyG layers.
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


def length_buckets(lengths: Tensor, max_block_elems: int, shrink: float = 0.75) -> list[Tensor]:
    """Group sentence ids, longest first, into padded buckets.

    A bucket closes when adding a sentence would exceed the budget (count * L_max^2 similarity entries) or when
    the next sentence is shorter than ``shrink * L_max``, so padding waste stays bounded (mixed-length batches
    otherwise spend most similarity FLOPs on padding). Always at least one sentence per bucket.
    """
    order = torch.argsort(lengths, descending=True, stable=True)
    sorted_len = lengths[order].tolist()
    groups, start = [], 0
    while start < len(sorted_len):
        lmax = sorted_len[start]
        cap = max(1, max_block_elems // max(1, lmax * lmax))
        end = start + 1
        while end < len(sorted_len) and end - start < cap and sorted_len[end] >= shrink * lmax:
            end += 1
        groups.append(order[start:end])
        start = end
    return groups


def block_adjacency(xp: Tensor, mask: Tensor, rows: slice, cfg: GraphConfig) -> tuple[Tensor, Tensor]:
    """The graph rule on rows ``rows`` of a padded bucket: adj[b, i, j] = token i receives from token j.

    Shapes: xp (b, L, D) unit-norm, mask (b, L) -> adj (b, r, L) bool, sim (b, r, L) cosines.
    """
    sim = torch.bmm(xp[:, rows], xp.transpose(1, 2)).clamp_(-1.0, 1.0)  # (b, r, L)
    r_idx = torch.arange(rows.start, rows.stop, device=xp.device)
    diag = r_idx[:, None] == torch.arange(xp.shape[1], device=xp.device)[None, :]  # (r, L)
    valid = mask[:, rows, None] & mask[:, None, :]
    adj = (sim > cfg.threshold()) & valid & ~diag
    if cfg.knn is not None:
        k = min(cfg.knn, xp.shape[1])
        scores = sim.masked_fill(~valid | diag, float("-inf"))
        top = torch.zeros_like(adj)
        top.scatter_(2, scores.topk(k, dim=2).indices, True)
        adj &= top
    if cfg.self_loops:
        adj |= diag & valid
    return adj, sim


def _block_edges(
    xp: Tensor, mask: Tensor, rows: slice, cfg: GraphConfig
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Edges whose source row lies in ``rows`` for a padded bucket.

    Shapes: xp (b, L, D) unit-norm, mask (b, L) -> (bucket idx, i, j, cos) each (E_block,).
    """
    adj, sim = block_adjacency(xp, mask, rows, cfg)
    b, i, j = adj.nonzero(as_tuple=True)
    return b, i + rows.start, j, sim[b, i, j]


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
    xn = F.normalize(x.detach().float(), dim=-1)  # graphs are not differentiated through
    lengths = ptr[1:] - ptr[:-1]
    srcs, dsts, weights = [], [], []
    for group in length_buckets(lengths, max_block_elems):
        lmax = int(lengths[group[0]])
        pos = torch.arange(lmax, device=x.device)
        mask = pos[None, :] < lengths[group][:, None]  # (b, L)
        gidx = (ptr[group][:, None] + pos[None, :]).clamp_max(x.shape[0] - 1)  # packed row of each slot
        xp = xn[gidx] * mask[..., None]
        rows_per_block = max(1, max_block_elems // (len(group) * lmax))
        for r0 in range(0, lmax, rows_per_block):
            b, i, j, w = _block_edges(xp, mask, slice(r0, min(lmax, r0 + rows_per_block)), cfg)
            srcs.append(gidx[b, j])  # PyG flow: messages go edge_index[0] -> edge_index[1]; with kNN the
            dsts.append(gidx[b, i])  # row token i receives from its top-k neighbours j
            weights.append(w)
    edge_index = (
        torch.stack([torch.cat(srcs), torch.cat(dsts)]) if srcs else x.new_zeros(2, 0, dtype=torch.long)
    )
    edge_weight = torch.cat(weights) if (cfg.weighted and weights) else None
    return TokenGraph(edge_index.long(), edge_weight)
