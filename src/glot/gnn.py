"""Token GNN (GLOT step 2): K message-passing layers of width P over the token graph, then jumping knowledge.

As in the paper (Mantri et al., ICLR 2026, Sec. 3.2) and its reference code: ReLU after every layer (the last
included), no dropout, no normalisation, no input projection (layer 1 maps D -> P). Jumping knowledge ``cat``
concatenates the input with every layer (out dim D + K * P); ``max``/``mean`` reduce h_1..h_K (out dim P);
``none`` keeps h_K. Layers come from PyG; ``mlp`` is the paper's no-graph ablation (per-token Linear).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch_geometric.nn import GATConv, GATv2Conv, GCNConv, GINConv, GINEConv

from .config import GNNConfig


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
    """Call a layer with the edge information it understands."""
    if kind == "mlp":
        return conv(x)
    if kind == "gcn":
        return conv(x, edge_index, edge_weight=edge_weight)
    if kind == "gine":  # GINE needs edge attributes; an unweighted graph gets the constant 1
        attr = edge_weight if edge_weight is not None else x.new_ones(edge_index.shape[1])
        return conv(x, edge_index, edge_attr=attr[:, None].to(x.dtype))
    if kind in ("gat", "gatv2") and edge_weight is not None:
        return conv(x, edge_index, edge_attr=edge_weight[:, None].to(x.dtype))
    return conv(x, edge_index)


class TokenGNN(nn.Module):
    """K layers + jumping knowledge. Shapes: x (N, D), edge_index (2, E) -> u (N, out_dim)."""

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

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        layers: list[Tensor] = []
        h = x
        for conv in self.convs:
            h = torch.relu(_apply_conv(self.config.conv, conv, h, edge_index, edge_weight))
            layers.append(h)
        if not layers:
            return x
        jk = self.config.jk
        if jk == "cat":
            return torch.cat([x, *layers], dim=-1)
        if jk == "max":
            return torch.stack(layers).amax(dim=0)
        if jk == "mean":
            return torch.stack(layers).mean(dim=0)
        return layers[-1]
