"""GAT on an edge list by sparse matrix products: PyG's ``GATConv`` without its per-edge message tensor.

PyG's GATConv gathers one (E', heads, P) message tensor per layer (x_j times its attention coefficient),
scatter-adds it onto the receivers, and under autograd keeps it for backward, whose gathers and scatters walk
it again: about ten passes over E' x P elements per layer, each an indexed (memory-bound) one. Here the
attention coefficients come from the layer's own ``edge_updater`` (so self-loops, edge attributes, leaky ReLU,
the softmax over each token's incoming edges and attention dropout are PyG's), and only the aggregation
out_i = sum_j alpha_ij h_j changes: it is the product of the sparse (N, N) attention matrix A in CSR form with
h, and its backward is A^T times the output gradient (for h) and the output gradient times h^T sampled at A's
pattern (for alpha, ``torch.sparse.sampled_addmm``). No (E', P) tensor is ever built, in training or inference,
so peak memory does not grow with E' x P either (a 32K-token document's 1.77M edges at P = 256 would need
1.8 GB of messages).

The CSR pattern (edges sorted by receiver, then sender; duplicates merged, their coefficients summed, which is
the same sum) depends only on the graph, so :func:`gat_edges` builds it once per batch and every layer reuses
it. tests/test_sparse_gat.py checks outputs and gradients against GATConv itself.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch_geometric.nn import GATConv
from torch_geometric.utils import add_self_loops, remove_self_loops

#: False: GAT layers on an edge list run PyG's own GATConv.forward instead (the per-edge message path, as the
#: reference code does; benchmarks/bench_step.py times the two side by side).
ENABLED = True


class GatEdges(NamedTuple):
    """A graph as the GAT layers see it, with its CSR pattern. Shapes: edge_index (2, E') after GATConv's
    self-loop handling, sorted by (receiver, sender); edge_attr (E', F) or None; merge (E',) slot of each edge
    in the pattern, or None when no edge repeats; crow (N + 1,), col (U,) the pattern of A (row = receiver);
    t_crow (N + 1,), t_col (U,), t_order (U,) the pattern of A^T and where its values sit in A's."""

    edge_index: Tensor
    edge_attr: Tensor | None
    merge: Tensor | None
    crow: Tensor
    col: Tensor
    t_crow: Tensor
    t_col: Tensor
    t_order: Tensor

    @property
    def num_nodes(self) -> int:
        return self.crow.numel() - 1


def supports_sparse(conv: object) -> bool:
    """Whether :func:`sparse_gat` runs this layer: a GATConv (not v2) with one shared ``lin`` (an int
    in_channels; a bipartite layer keeps PyG's own path)."""
    return isinstance(conv, GATConv) and conv.lin is not None


def gat_edges(edge_index: Tensor, edge_attr: Tensor | None, num_nodes: int, conv: GATConv) -> GatEdges:
    """The edges ``conv`` attends over (its ``add_self_loops`` and ``fill_value`` applied, as in GATConv's
    forward) and their CSR pattern. Shapes: edge_index (2, E), edge_attr (E, F) or None."""
    if conv.add_self_loops:
        edge_index, edge_attr = remove_self_loops(edge_index, edge_attr)
        edge_index, edge_attr = add_self_loops(
            edge_index, edge_attr, fill_value=conv.fill_value, num_nodes=num_nodes
        )
    with torch.no_grad():
        keys = edge_index[1] * num_nodes + edge_index[0]  # (receiver, sender), one int each
        keys, order = torch.sort(keys)
        unique, merge = torch.unique_consecutive(keys, return_inverse=True)
        rows, col = unique // num_nodes, unique % num_nodes
        t_order = torch.argsort(col * num_nodes + rows)
    edge_index = edge_index[:, order]
    edge_attr = None if edge_attr is None else edge_attr[order]  # a learned graph's weights keep their grad
    return GatEdges(
        edge_index, edge_attr, merge if unique.numel() < keys.numel() else None,
        _crow(rows, num_nodes), col, _crow(col[t_order], num_nodes), rows[t_order], t_order,
    )  # fmt: skip


def _crow(rows: Tensor, num_nodes: int) -> Tensor:
    """CSR row pointers of sorted row indices."""
    crow = rows.new_zeros(num_nodes + 1)
    crow[1:] = torch.bincount(rows, minlength=num_nodes).cumsum(0)
    return crow


def _csr(crow: Tensor, col: Tensor, values: Tensor, n: int) -> Tensor:
    """The (n, n) CSR matrix of ``values`` on a pattern (torch's "CSR is beta" warning, printed once per
    process, is silenced: there is nothing for a user to do about it)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, values, (n, n), check_invariants=False)


class _Aggregate(torch.autograd.Function):
    """out = A h with A the (N, N) CSR matrix of coefficients ``values`` on ``edges``' pattern. Backward:
    dh = A^T dout, dvalues = (dout h^T) sampled at the pattern."""

    @staticmethod
    def forward(ctx: Any, values: Tensor, h: Tensor, edges: GatEdges) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(values, h)
        ctx.edges = edges
        return _csr(edges.crow, edges.col, values, edges.num_nodes) @ h

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:  # type: ignore[override]
        values, h = ctx.saved_tensors
        edges: GatEdges = ctx.edges
        grad = grad.to(h.dtype).contiguous()  # autocast may hand back a bf16 gradient
        grad_values = grad_h = None
        with torch.autocast(h.device.type, enabled=False):  # a backward called under autocast: keep fp32
            if ctx.needs_input_grad[0]:
                pattern = _csr(edges.crow, edges.col, torch.zeros_like(values), edges.num_nodes)
                grad_values = torch.sparse.sampled_addmm(pattern, grad, h.t(), beta=0.0).values()
            if ctx.needs_input_grad[1]:
                grad_h = _csr(edges.t_crow, edges.t_col, values[edges.t_order], edges.num_nodes) @ grad
        return grad_values, grad_h, None


def aggregate(alpha: Tensor, h: Tensor, edges: GatEdges) -> Tensor:
    """sum_j alpha_ij h_j for every receiver i. Shapes: alpha (E',), h (N, C) -> (N, C) in the promoted dtype
    of the two, as PyG's propagate returns it (bf16 for a layer cast to bf16, fp32 under bf16 autocast, whose
    softmax is fp32); the products run in at least fp32, as CPU sparse kernels have no bf16."""
    result = torch.result_type(alpha, h)
    dtype = torch.promote_types(result, torch.float32)
    if edges.merge is not None:  # repeated edges share one slot; their coefficients add up
        alpha = alpha.new_zeros(edges.col.numel(), dtype=dtype).index_add_(0, edges.merge, alpha.to(dtype))
    with torch.autocast(h.device.type, enabled=False):
        out: Tensor = _Aggregate.apply(alpha.to(dtype).contiguous(), h.to(dtype).contiguous(), edges)
    return out.to(result)


def attention_logits(conv: GATConv, h: Tensor) -> tuple[Tensor, Tensor]:
    """GATConv's per-token attention logits ``(h * att_src).sum(-1)`` and ``(h * att_dst).sum(-1)`` as one
    matmul, in the dtype PyG's products give (h's and the attention vectors' promoted dtype).

    One GEMM against the (heads * P, 2 * heads) block-diagonal stack of the two vectors, with autocast off: under
    bf16 autocast h is bf16 and the vectors fp32, and PyG's two mixed-dtype products took 2x the time of the
    cast and the fp32 GEMM (1.00 vs 0.49 ms per layer at 4,113 tokens, P = 256; with backward 1.88 vs 1.49 ms;
    benchmarks/bench_kernels.py). The values are PyG's up to the order of the fp32 sums.
    Shapes: h (N, heads, P) -> two (N, heads).
    """
    heads, width = conv.heads, conv.out_channels
    dtype = torch.promote_types(h.dtype, conv.att_src.dtype)
    pairs = torch.stack([conv.att_src.view(heads, width), conv.att_dst.view(heads, width)], dim=1)
    # (2 heads, heads P) then transposed: row 2k + s of head k (s = 0 src, 1 dst); BLAS runs the transposed
    # operand of 2 * heads rows 2.3x faster than a contiguous (heads P, 2 heads) one (bench_kernels.py)
    weight = (pairs[0] if heads == 1 else torch.block_diag(*pairs)).t()
    with torch.autocast(h.device.type, enabled=False):
        logits = (h.reshape(-1, heads * width).to(dtype) @ weight.to(dtype)).view(-1, heads, 2)
    return logits[..., 0], logits[..., 1]


def sparse_gat(conv: GATConv, x: Tensor, edges: GatEdges) -> Tensor:
    """``conv(x, edge_index, edge_attr)`` on :func:`gat_edges`' graph, aggregated by sparse products.

    Shapes: x (N, D) -> (N, heads * P) if ``conv.concat`` else (N, P).
    """
    heads, width = conv.heads, conv.out_channels
    h = conv.lin(x).view(-1, heads, width)
    logits = attention_logits(conv, h)
    with torch.autocast(
        x.device.type, enabled=False
    ):  # lin_edge in the edge weights' dtype (x's), not a bf16
        alpha = conv.edge_updater(edges.edge_index, alpha=logits, edge_attr=edges.edge_attr, size=None)
    if heads == 1:
        out = aggregate(alpha[:, 0], h[:, 0], edges)  # (N, P): concat and head mean agree
    else:
        out = torch.stack([aggregate(alpha[:, k], h[:, k], edges) for k in range(heads)], dim=1)
        out = out.reshape(-1, heads * width) if conv.concat else out.mean(dim=1)
    if conv.res is not None:
        out = out + conv.res(x)
    return out + conv.bias if conv.bias is not None else out
