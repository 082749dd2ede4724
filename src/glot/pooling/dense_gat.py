"""Dense, length-bucketed GAT: PyG's ``GATConv`` on the token graph without an edge list.

For sentences up to a few hundred tokens a GAT layer over the token graph is, per length bucket (the buckets of
:func:`glot.pooling.graph.length_buckets`), a masked (b, heads, L, L) softmax and one batched matmul: no
gather of per-edge messages, no scatter-add, no self-loop removal and re-insertion on an edge list. The
adjacency comes from the same rule on the same buckets as :func:`glot.pooling.graph.build_token_graph`
(:func:`glot.pooling.graph.block_adjacency`), and :func:`dense_gat` reuses the ``GATConv`` module's own
parameters, so both paths compute the same function (tests/test_dense_gat.py: forward and gradients to 1e-5).

GATConv semantics reproduced: ``lin`` on the packed tokens (padding never enters it), ``att_src``/``att_dst``,
``add_self_loops`` (the graph's self-loops are dropped and one loop per token is added, its edge attribute the
mean of the token's incoming attributes, PyG's ``fill_value='mean'``), ``lin_edge``/``att_edge`` for the
cosine edge attribute when the graph is weighted, leaky ReLU with ``negative_slope``, softmax over each token's
incoming edges, attention dropout, ``concat`` or head mean, ``res`` and ``bias``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import GATConv

from glot.pooling.config import GraphConfig
from glot.pooling.graph import DEFAULT_BLOCK_ELEMS, block_adjacency, length_buckets
from glot.pooling.packing import check_packed

#: Longest sentence (tokens) for which TokenGNN takes the dense path; 0 = never (the default). Opt-in because it
#: is not faster everywhere: benchmarks/bench_dense_gat.py measured the GAT layers 1.1-1.5x faster for the stress
#: demo head (K=4, P=64, tau=0.6) but 0.9-1.0x for the tweets head (K=2, P=256, tau=0.8, very sparse graphs).
#: A density-aware choice is future work; set 256 (or ``pooler.gnn.dense_max_tokens``) to use it.
DENSE_MAX_TOKENS = 0


class DenseBucket(NamedTuple):
    """One padded length bucket. Shapes: slots (b, L) packed row of each slot (N for padding), mask (b, L),
    real (n_b,) flat positions of the real slots, adj (b, L, L) bool with adj[., i, j] = token i receives from
    token j, sim (b, L, L) cosines or None."""

    slots: Tensor
    mask: Tensor
    real: Tensor
    adj: Tensor
    sim: Tensor | None


class DenseTokenGraph(NamedTuple):
    """The token graph as padded buckets. Shapes: order (N,) row of each packed token in the buckets' output."""

    buckets: list[DenseBucket]
    order: Tensor
    num_nodes: int
    memo: dict[Any, Any]  # per-conv-rule masks, filled by the first layer that needs them


def build_dense_graph(
    x: Tensor, ptr: Tensor, config: GraphConfig | None = None, *, max_block_elems: int = DEFAULT_BLOCK_ELEMS
) -> DenseTokenGraph:
    """The graph :func:`build_token_graph` builds, kept as bucket adjacency masks (no edge list).

    Each bucket's (b, L, L) similarities exist whole (no row blocks), so this is for sentences well below
    sqrt(max_block_elems) = 4096 tokens; TokenGNN uses it up to :data:`DENSE_MAX_TOKENS`.
    Shapes: x (N, D) packed real tokens, ptr (B + 1,) -> buckets of (b, L, L) masks.
    """
    cfg = config or GraphConfig()
    cfg.validate()
    check_packed(x, ptr)
    n = x.shape[0]
    xn = F.normalize(x.detach().float(), dim=-1)  # graphs are not differentiated through
    lengths = ptr[1:] - ptr[:-1]
    buckets, rows = [], []
    for group in length_buckets(lengths, max_block_elems):
        lmax = int(lengths[group[0]])
        pos = torch.arange(lmax, device=x.device)
        mask = pos[None, :] < lengths[group][:, None]  # (b, L)
        gidx = (ptr[group][:, None] + pos[None, :]).clamp_max(n - 1)
        adj, sim = block_adjacency(xn[gidx] * mask[..., None], mask, slice(0, lmax), cfg)
        slots = torch.where(mask, gidx, n)
        real = mask.reshape(-1).nonzero().squeeze(1)
        buckets.append(DenseBucket(slots, mask, real, adj, sim if cfg.weighted else None))
        rows.append(slots[mask])
    order = (
        torch.argsort(torch.cat(rows)) if rows else ptr.new_zeros(0)
    )  # packed row r is row order[r] of the concatenated bucket outputs
    return DenseTokenGraph(buckets, order, n, {})


def supports_dense(conv: object) -> bool:
    """Whether :func:`dense_gat` reproduces this layer: a GATConv (not v2) with one shared ``lin``, a
    ``fill_value`` of 'mean' or a number, and a bias-free one-feature ``lin_edge`` if any."""
    if not isinstance(conv, GATConv) or conv.lin is None:
        return False
    fill = conv.fill_value
    if not (fill == "mean" or isinstance(fill, (int, float))):
        return False
    return conv.lin_edge is None or (conv.lin_edge.in_channels == 1 and conv.lin_edge.bias is None)


def _loop_adjacency(bucket: DenseBucket, conv: GATConv, dtype: torch.dtype) -> tuple[Tensor, Tensor | None]:
    """The edges GATConv attends over, with their edge attributes (self-loop handling of ``add_self_loops``).

    Shapes: -> adj (b, L, L) bool, attr (b, L, L) or None.
    """
    adj, mask = bucket.adj, bucket.mask
    if conv.add_self_loops:
        length = mask.shape[1]
        eye = torch.eye(length, dtype=torch.bool, device=adj.device)
        off = adj & ~eye
        loops = eye & mask[:, :, None]
        adj = off | loops
    else:
        off, loops = adj, None
    if bucket.sim is None or conv.lin_edge is None:
        return adj, None
    attr = bucket.sim.to(dtype).masked_fill(~off, 0.0)  # the edge path casts edge weights to x's dtype too
    if loops is not None:
        if conv.fill_value == "mean":  # mean of each token's incoming attributes, 0 where it has none
            fill = attr.sum(-1) / off.sum(-1).clamp_min(1)
        else:
            fill = torch.full_like(attr[..., 0], float(conv.fill_value))
        attr = torch.where(loops, fill[..., None], attr)
    return adj, attr


def _bucket_terms(
    graph: DenseTokenGraph, k: int, conv: GATConv, dtype: torch.dtype
) -> tuple[Tensor, Tensor, Tensor | None]:
    """(adj, additive mask, attr) of bucket ``k`` for this conv's self-loop rule, computed once per graph and
    shared by every layer. Shapes: adj (b, 1, L, L) bool, mask (b, 1, L, L): 0 on edges, dtype's min elsewhere.
    """
    key = (k, conv.add_self_loops, str(conv.fill_value), conv.lin_edge is not None, dtype)
    if key not in graph.memo:
        adj, attr = _loop_adjacency(graph.buckets[k], conv, dtype)
        neg = torch.zeros(adj.shape, dtype=dtype, device=adj.device).masked_fill_(
            ~adj, torch.finfo(dtype).min
        )
        graph.memo[key] = (adj[:, None], neg[:, None], None if attr is None else attr[:, None])
    return graph.memo[key]


def dense_gat(conv: GATConv, x: Tensor, graph: DenseTokenGraph) -> Tensor:
    """``conv(x, edge_index[, edge_attr])`` on the token graph that ``graph`` holds, bucket by bucket.

    Shapes: x (N, D) -> (N, P), or (N, heads * P) if ``conv.concat``.
    """
    assert supports_dense(conv), f"dense_gat cannot reproduce {conv!r}"
    assert x.shape[0] == graph.num_nodes, "the dense graph was built for another batch"
    heads, width = conv.heads, conv.out_channels
    h = conv.lin(x).view(-1, heads, width)
    hz = torch.cat([h, h.new_zeros(1, heads, width)])  # padding slots point at the zero row N
    a_src = (hz * conv.att_src).sum(-1)  # (N + 1, heads)
    a_dst = (hz * conv.att_dst).sum(-1)
    coef = None
    if conv.lin_edge is not None:  # lin_edge(a) = a * w for a one-feature attribute: alpha_edge = a * coef
        coef = (conv.lin_edge.weight.view(heads, width) * conv.att_edge.view(heads, width)).sum(-1)
    outs = []
    for k, bucket in enumerate(graph.buckets):
        edges, neg, attr = _bucket_terms(graph, k, conv, h.dtype)
        b, length = bucket.slots.shape
        flat = bucket.slots.reshape(-1)  # index_select, not x[idx]: its backward is one index_add, no sort
        src = a_src.index_select(0, flat).view(b, length, heads).transpose(1, 2)
        dst = a_dst.index_select(0, flat).view(b, length, heads).transpose(1, 2)
        score = dst[..., :, None] + src[..., None, :]  # (b, heads, L_dst, L_src)
        if attr is not None and coef is not None:
            score = score + attr * coef[None, :, None, None]
        alpha = torch.softmax(F.leaky_relu(score, conv.negative_slope) + neg, dim=-1)  # neg: non-edges -> 0
        if not conv.add_self_loops:  # a token without any incoming edge receives nothing (with loops, only
            alpha = alpha * edges  # padding rows have none, and they are dropped below)
        alpha = F.dropout(alpha, p=conv.dropout, training=conv.training)
        msg = hz.index_select(0, flat).view(b, length, heads, width).transpose(1, 2)
        out = (alpha @ msg).transpose(1, 2).reshape(b * length, heads, width)
        outs.append(out.index_select(0, bucket.real))  # (n_b, heads, P)
    out = (torch.cat(outs) if outs else h[:0]).index_select(0, graph.order)
    out = out.reshape(-1, heads * width) if conv.concat else out.mean(dim=1)
    if conv.res is not None:
        out = out + conv.res(x)
    return out + conv.bias if conv.bias is not None else out
