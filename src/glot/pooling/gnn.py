"""Token GNN (GLOT step 2): K message-passing layers of width P over the token graph, then jumping knowledge.

As in the paper (Mantri et al., ICLR 2026, Sec. 3.2) and its reference code: ReLU after every layer (the last
included), no dropout, no normalisation, no input projection (layer 1 maps D -> P). Jumping knowledge ``cat``
concatenates the input with every layer (out dim D + K * P); ``max``/``mean`` reduce h_1..h_K (out dim P);
``none`` keeps h_K. Layers come from PyG; ``mlp`` is the paper's no-graph ablation (per-token Linear).

Edge lists: a GATConv layer runs :func:`glot.pooling.sparse_gat.sparse_gat`, the same function with PyG's own
attention coefficients but the aggregation as a sparse (CSR) matrix product, so no (E, heads, P) message tensor
is built (PyG's would take 1.8 GB for the 1.77M edges of a 32K-token document at P = 256) and training makes
a few sparse products per layer instead of ~10 indexed passes over E x P. Other layers are PyG's own.

Short sentences: when every layer is a GATConv and the longest sentence has at most ``dense_max_tokens`` tokens
(default :data:`glot.pooling.dense_gat.DENSE_MAX_TOKENS`), :meth:`TokenGNN.on_graph` builds the graph as bucket
masks and runs the dense, length-bucketed path (:mod:`glot.pooling.dense_gat`: the same function, without an
edge list) where :func:`glot.pooling.path_rule.dense_is_faster` says it is (a density-, width- and
precision-aware rule measured with benchmarks/bench_dense_gat.py), else the edge list taken from the same masks.
A prebuilt edge list (a cached graph, :mod:`glot.pooling.graph_cache`) goes either way too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch_geometric.nn import GATConv, GATv2Conv, GCNConv, GINConv, GINEConv

import glot.pooling.dense_gat as dense_path
import glot.pooling.sparse_gat as sparse_path
from glot.pooling.config import GNNConfig, GraphConfig
from glot.pooling.dense_gat import (
    DenseTokenGraph,
    build_dense_graph,
    dense_from_edges,
    dense_gat,
    edges_from_dense,
    supports_dense,
)
from glot.pooling.graph import TokenGraph, build_token_graph
from glot.pooling.path_rule import dense_is_faster, matmul_dtype
from glot.pooling.sparse_gat import GatEdges, gat_edges, sparse_gat, supports_sparse


def _gin_mlp(in_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.ReLU(), nn.Linear(out_dim, out_dim))


# One registry of layer builders: (in_dim, out_dim, heads, weighted) -> module.
CONV_BUILDERS: dict[str, Callable[[int, int, int, bool], nn.Module]] = {
    "gat": lambda i, o, h, w: GATConv(i, o, heads=h, concat=False, edge_dim=1 if w else None),
    "gatv2": lambda i, o, h, w: GATv2Conv(i, o, heads=h, concat=False, edge_dim=1 if w else None),
    "gcn": lambda i, o, h, w: GCNConv(i, o),
    "gin": lambda i, o, h, w: GINConv(_gin_mlp(i, o)),
    "gine": lambda i, o, h, w: GINEConv(_gin_mlp(i, o), edge_dim=1),
    "mlp": lambda i, o, h, w: nn.Linear(i, o),
}


def _apply_conv(
    kind: str, conv: nn.Module, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None
) -> Tensor:
    """Call a layer with the edge information it understands, in the dtype of its input ``x`` (a layer cast
    to bf16 must not promote its messages to the fp32 cosines)."""
    if kind == "mlp":
        return conv(x)
    if kind == "gcn":
        return conv(x, edge_index, edge_weight=None if edge_weight is None else edge_weight.to(x.dtype))
    if kind == "gine":  # GINE needs edge attributes; an unweighted graph gets the constant 1
        ones = edge_weight if edge_weight is not None else x.new_ones(edge_index.shape[1])
        return conv(x, edge_index, edge_attr=ones[:, None].to(x.dtype))
    attr = _gat_attr(kind, x, edge_weight)
    return conv(x, edge_index) if attr is None else conv(x, edge_index, edge_attr=attr)


def _gat_attr(kind: str, x: Tensor, edge_weight: Tensor | None) -> Tensor | None:
    """The (E, 1) edge attribute a GAT layer reads (the cosine of a weighted graph), or None."""
    return None if edge_weight is None or kind not in ("gat", "gatv2") else edge_weight[:, None].to(x.dtype)


class TokenGNN(nn.Module):
    """K layers + jumping knowledge. Shapes: x (N, D), edge_index (2, E) -> u (N, out_dim).

    ``dense_max_tokens`` (instance attribute; None = :data:`glot.pooling.dense_gat.DENSE_MAX_TOKENS`) is the
    longest sentence for which :meth:`dense_graph` builds a dense graph (the dense GAT path); 0 turns it off.
    """

    dense_max_tokens: int | None = None
    #: "auto" (the measured rule :func:`glot.pooling.path_rule.dense_is_faster`), "dense" or "edge" (forced)
    dense_choice: str = "auto"

    def __init__(self, in_dim: int, config: GNNConfig, weighted: bool = False) -> None:
        super().__init__()
        config.validate()
        self.config, self.in_dim = config, in_dim
        dims = [in_dim] + [config.hidden_dim] * config.num_layers
        build = CONV_BUILDERS[config.conv]
        self.convs = nn.ModuleList(
            [build(dims[k], dims[k + 1], config.heads, weighted) for k in range(config.num_layers)]
        )

    @property
    def out_dim(self) -> int:
        k, p = self.config.num_layers, self.config.hidden_dim
        if k == 0:
            return self.in_dim
        return self.in_dim + k * p if self.config.jk == "cat" else p

    def prefers_dense(self, ptr: Tensor) -> bool:
        """Whether this batch may take the dense GAT path: every layer a GATConv it reproduces and the longest
        sentence within ``dense_max_tokens`` (whether it then does is :meth:`on_graph`'s density rule).
        Shapes: ptr (B + 1,)."""
        limit = dense_path.DENSE_MAX_TOKENS if self.dense_max_tokens is None else self.dense_max_tokens
        if not self.convs or limit <= 0 or not all(supports_dense(conv) for conv in self.convs):
            return False
        lengths = ptr[1:] - ptr[:-1]
        return lengths.numel() > 0 and int(lengths.max()) <= limit

    def dense_graph(self, x: Tensor, ptr: Tensor, graph: GraphConfig) -> DenseTokenGraph | None:
        """The batch's token graph in dense form where :meth:`prefers_dense`, else None (use an edge list).

        Shapes: x (N, D), ptr (B + 1,) -> buckets of (b, L, L) masks, see :mod:`glot.pooling.dense_gat`.
        """
        return build_dense_graph(x, ptr, graph) if self.prefers_dense(ptr) else None

    def on_graph(
        self, x: Tensor, ptr: Tensor, graph: GraphConfig, edges: TokenGraph | None = None
    ) -> list[Tensor]:
        """The K layers on the batch's token graph, built here from ``graph`` unless ``edges`` is given
        (a prebuilt edge list in packed coordinates), on the faster of the dense and edge-list paths; the output
        as column blocks (see :meth:`blocks`).

        Shapes: x (N, D), ptr (B + 1,) -> blocks whose concatenation is u (N, out_dim).
        """
        assert self.dense_choice in ("auto", "dense", "edge"), self.dense_choice
        if edges is not None and edges.edge_index.device != x.device:  # cached graphs live on the CPU
            weight = None if edges.edge_weight is None else edges.edge_weight.to(x.device)
            edges = TokenGraph(edges.edge_index.to(x.device), weight)
        if self.dense_choice == "edge" or not self.prefers_dense(ptr):
            with torch.autocast(x.device.type, enabled=False):  # fp32 cosines vs tau under bf16 autocast too
                edges = edges if edges is not None else build_token_graph(x, ptr, graph)
            return self.blocks(x, edges.edge_index, edges.edge_weight)
        with torch.autocast(x.device.type, enabled=False):
            dense = (
                dense_from_edges(edges, ptr, x.shape[0])
                if edges is not None
                else build_dense_graph(x, ptr, graph)
            )
        conv = self.convs[0]
        width = int(getattr(conv, "heads", 1)) * int(getattr(conv, "out_channels", 1))
        choice = self.dense_choice
        if choice == "dense" or (choice == "auto" and dense_is_faster(dense, width, matmul_dtype(x))):
            return self.blocks(x, dense=dense)
        edges = edges if edges is not None else edges_from_dense(dense)
        return self.blocks(x, edges.edge_index, edges.edge_weight)

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor | None = None,
        edge_weight: Tensor | None = None,
        *,
        dense: DenseTokenGraph | None = None,
    ) -> Tensor:
        """Shapes: x (N, D) and either edge_index (2, E) [+ edge_weight (E,)] or ``dense`` -> u (N, out_dim)."""
        return join_blocks(self.blocks(x, edge_index, edge_weight, dense=dense))

    def blocks(
        self,
        x: Tensor,
        edge_index: Tensor | None = None,
        edge_weight: Tensor | None = None,
        *,
        dense: DenseTokenGraph | None = None,
    ) -> list[Tensor]:
        """:meth:`forward`'s output u as column blocks, unconcatenated (see :func:`jumping_knowledge`)."""
        if dense is None and edge_index is None:
            edge_index = x.new_zeros(2, 0, dtype=torch.long)
        layers: list[Tensor] = []
        prepared: dict[tuple[bool, object], GatEdges] = {}  # the CSR pattern, built once for all GAT layers
        h = x
        for conv in self.convs:
            if dense is not None:
                h = dense_gat(conv, h, dense)
            elif sparse_path.ENABLED and supports_sparse(conv):
                assert edge_index is not None
                key = (bool(conv.add_self_loops), conv.fill_value)
                if key not in prepared:
                    attr = _gat_attr(self.config.conv, x, edge_weight)
                    prepared[key] = gat_edges(edge_index, attr, x.shape[0], conv)
                h = sparse_gat(conv, h, prepared[key])
            else:
                assert edge_index is not None
                h = _apply_conv(self.config.conv, conv, h, edge_index, edge_weight)
            h = torch.relu(h)
            layers.append(h)
        return jumping_knowledge(x, layers, self.config.jk)


def jumping_knowledge(x: Tensor, layers: Sequence[Tensor], jk: str) -> list[Tensor]:
    """Jumping knowledge (Xu et al., 2018) over K layer outputs, as column blocks whose concatenation is the
    refined states u: "cat" -> [x, the K layers side by side], "max" / "mean" -> [element-wise over the
    layers], "none" -> [the last layer]; no layers -> [x].

    Kept apart so that the attention readout multiplies each block by its own slice of W (glot.pooling.readout):
    under "cat" no (N, D + K P) copy of u is written, and backward computes no input gradient for x, the frozen
    states, which the concatenated u would have forced. Shapes: x (N, D), layers K x (N, P) -> blocks (N, *).
    """
    if not layers:
        return [x]
    if jk == "cat":
        return [x, layers[0] if len(layers) == 1 else torch.cat(list(layers), dim=-1)]
    if jk == "max":
        return [torch.stack(list(layers)).amax(dim=0)]
    if jk == "mean":
        return [torch.stack(list(layers)).mean(dim=0)]
    return [layers[-1]]


def join_blocks(blocks: Sequence[Tensor]) -> Tensor:
    """Column blocks -> the one tensor they stand for. Shapes: blocks (N, F_j) -> (N, sum F_j)."""
    return blocks[0] if len(blocks) == 1 else torch.cat(list(blocks), dim=-1)
