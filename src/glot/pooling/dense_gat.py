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
from glot.pooling.graph import (
    DEFAULT_BLOCK_ELEMS,
    TokenGraph,
    block_adjacency,
    bucket_states,
    length_buckets,
    padded_bucket,
)
from glot.pooling.packing import check_packed
from glot.pooling.sparse_gat import attention_logits, supports_sparse

#: Longest sentence (tokens) for which TokenGNN may take the dense path (then the measured rule,
#: :func:`glot.pooling.path_rule.dense_is_faster`, decides); 0 = never. Above it a bucket's (b, heads, L, L)
#: scores cost more than the edge list saves.
DENSE_MAX_TOKENS = 512


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
    sqrt(max_block_elems) = 4096 tokens; TokenGNN uses it up to its ``dense_max_tokens``.
    Shapes: x (N, D) packed real tokens, ptr (B + 1,) -> buckets of (b, L, L) masks.
    """
    cfg = config or GraphConfig()
    cfg.validate()
    check_packed(x, ptr)
    xf, buckets = x.detach().float(), []
    for group in length_buckets(ptr[1:] - ptr[:-1], max_block_elems):
        slots, mask = padded_bucket(ptr, group, x.shape[0])
        adj, sim = block_adjacency(bucket_states(xf, slots, mask), mask, slice(0, mask.shape[1]), cfg)
        buckets.append((slots, mask, adj, sim if cfg.weighted else None))
    return _assemble(buckets, x.shape[0], ptr)


def dense_from_edges(
    graph: TokenGraph, ptr: Tensor, num_nodes: int, *, max_block_elems: int = DEFAULT_BLOCK_ELEMS
) -> DenseTokenGraph:
    """A prebuilt edge list (e.g. a cached graph) as bucket masks: what :func:`build_dense_graph` returns for
    the same batch, with the cosines kept on the edges only (all the dense path reads).

    Shapes: graph.edge_index (2, E) packed, edge_weight (E,) or None, ptr (B + 1,) -> buckets of masks.
    """
    src, dst = graph.edge_index.to(ptr.device)
    pos = torch.arange(num_nodes, device=ptr.device) - ptr[:-1].repeat_interleave(ptr[1:] - ptr[:-1])
    sentence_bucket = torch.empty(ptr.numel() - 1, dtype=torch.long, device=ptr.device)
    sentence_row = torch.empty_like(sentence_bucket)
    groups = length_buckets(ptr[1:] - ptr[:-1], max_block_elems)
    for k, group in enumerate(groups):
        sentence_bucket[group] = k
        sentence_row[group] = torch.arange(group.numel(), device=ptr.device)
    batch = torch.bucketize(dst, ptr[1:], right=True)  # sentence of each edge's target token
    buckets = []
    for k, group in enumerate(groups):
        slots, mask = padded_bucket(ptr, group, num_nodes)
        width = mask.shape[1]
        sel = (sentence_bucket[batch] == k).nonzero().squeeze(1)
        flat = (sentence_row[batch[sel]] * width + pos[dst[sel]]) * width + pos[src[sel]]
        adj = torch.zeros(mask.shape[0], width, width, dtype=torch.bool, device=ptr.device)
        adj.view(-1)[flat] = True
        sim = None
        if graph.edge_weight is not None:
            sim = torch.zeros(adj.shape, dtype=graph.edge_weight.dtype, device=ptr.device)
            sim.view(-1)[flat] = graph.edge_weight.to(ptr.device)[sel]
        buckets.append((slots, mask, adj, sim))
    return _assemble(buckets, num_nodes, ptr)


def _assemble(
    parts: list[tuple[Tensor, Tensor, Tensor, Tensor | None]], n: int, ptr: Tensor
) -> DenseTokenGraph:
    """Buckets (slots, mask, adj, sim) -> DenseTokenGraph with each token's row in the concatenated outputs."""
    buckets, rows = [], []
    for slots, mask, adj, sim in parts:
        real = mask.reshape(-1).nonzero().squeeze(1)
        buckets.append(DenseBucket(slots, mask, real, adj, sim))
        rows.append(slots[mask])
    order = (
        torch.argsort(torch.cat(rows)) if rows else ptr.new_zeros(0)
    )  # packed row r is row order[r] of the concatenated bucket outputs
    return DenseTokenGraph(buckets, order, n, {})


def edges_from_dense(graph: DenseTokenGraph) -> TokenGraph:
    """The edge list of a dense graph, exactly as :func:`build_token_graph` returns it for the same batch (same
    buckets, same masks, same row-major order). Shapes: -> edge_index (2, E), edge_weight (E,) or None."""
    srcs, dsts, weights = [], [], []
    for bucket in graph.buckets:
        b, i, j = bucket.adj.nonzero(as_tuple=True)
        srcs.append(bucket.slots[b, j])
        dsts.append(bucket.slots[b, i])
        if bucket.sim is not None:
            weights.append(bucket.sim[b, i, j])
    if not srcs:
        return TokenGraph(graph.order.new_zeros(2, 0), None)
    return TokenGraph(
        torch.stack([torch.cat(srcs), torch.cat(dsts)]), torch.cat(weights) if weights else None
    )


def supports_dense(conv: object) -> bool:
    """Whether :func:`dense_gat` reproduces this layer: one the edge path's sparse products run
    (:func:`glot.pooling.sparse_gat.supports_sparse`: a GATConv with one shared ``lin``), with a
    ``fill_value`` of 'mean' or a number and a bias-free one-feature ``lin_edge`` if any."""
    if not supports_sparse(conv):
        return False
    assert isinstance(conv, GATConv)
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
    attr = bucket.sim.to(dtype).masked_fill(~off, 0.0)  # as the edge path casts edge weights to x's dtype
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
    shared by every layer. ``dtype`` is the attention scores' (:func:`attention_logits`: fp32 under bf16
    autocast); a mask or attr in another would make their sums with the scores mixed-dtype kernels (no kernel
    mixes dtypes: tests/test_precision.py). Shapes: adj (b, 1, L, L) bool, mask (b, 1, L, L): 0 on edges,
    dtype's min elsewhere.
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
    a_src, a_dst = attention_logits(conv, hz)  # (N + 1, heads) each
    coef = None
    if conv.lin_edge is not None:  # lin_edge(a) = a * w for a one-feature attribute: alpha_edge = a * coef
        coef = (conv.lin_edge.weight.view(heads, width) * conv.att_edge.view(heads, width)).sum(-1)
    outs = []
    for k, bucket in enumerate(graph.buckets):
        edges, neg, attr = _bucket_terms(graph, k, conv, a_src.dtype)
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
    # in the dtype the edge path's aggregation returns (fp32 under bf16 autocast, whose bmm gave bf16), so
    # the bias add and the layers after it see one dtype on either path
    out = (torch.cat(outs) if outs else h[:0]).index_select(0, graph.order).to(a_src.dtype)
    out = out.reshape(-1, heads * width) if conv.concat else out.mean(dim=1)
    if conv.res is not None:
        out = out + conv.res(x)
    return out + conv.bias if conv.bias is not None else out
