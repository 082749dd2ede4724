"""The parts of the heads beyond the paper: ``transformer``, ``pma`` and ``learned-graph``.

- ``transformer``: dense self-attention over each sentence's tokens (GLOT's graph made complete, soft and learned):
  Linear(D, P), K pre-norm Transformer encoder layers (FFN width 2P), jumping knowledge as GLOT's GNN, then the
  attention readout. Its defaults (K = 1, P = 200, 4 heads) make it parameter-matched to GLOT's defaults on
  MiniLM (D = 384: 570,312 vs 567,680 pooler parameters).
- ``pma``: Set-Transformer pooling (Lee et al., ICML 2019) with PyG's ``SetTransformerAggregation``: Linear(D, P),
  K set-attention blocks, then pooling by multi-head attention onto one learned seed. Defaults (K = 1, P = 208,
  4 heads): 560,144 parameters on MiniLM.
- ``learned-graph`` (the paper's future work): the token graph from a learned rank-r projection Q,
  edge (i, j) iff cos(Q x_i, Q x_j) > tau, each edge weighted by (cos - tau) / (1 - tau) so that it fades in and
  out continuously at the threshold; the weights are the GNN's edge attributes (GAT / GATv2 / GINE) or edge
  weights (GCN), so Q trains end to end through them. Then GLOT's GNN and readout.

Every head takes packed tokens; where it needs a dense batch it pads per length bucket and masks, so padding
never changes a result. The registered pooler classes (``glot.pooling.zoo_poolers``) are thin shells over these
modules: zoo_poolers imports this module, never the other way round.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn.aggr import SetTransformerAggregation

from glot.errors import InputError
from glot.pooling.config import PoolerConfig
from glot.pooling.gnn import join_blocks, jumping_knowledge
from glot.pooling.graph import TokenGraph, length_buckets

#: Largest number of (L x L) attention / similarity entries one padded bucket holds.
BUCKET_ELEMS = 1 << 22


def check_heads(name: str, width: int, heads: int) -> None:
    if width % heads:
        raise InputError(
            f"pooler {name!r}: hidden_dim={width} is not a multiple of heads={heads}; "
            "pick hidden_dim divisible by heads (e.g. --hidden-dim 256 --heads 4)"
        )


def _buckets(ptr: Tensor) -> list[Tensor]:
    """Sentence ids grouped by length (longest first): each bucket is padded once, to its own longest."""
    return length_buckets(ptr[1:] - ptr[:-1], BUCKET_ELEMS)


def _bucket_rows(ptr: Tensor, ids: Tensor) -> tuple[Tensor, Tensor]:
    """Packed row of every (sentence, position) slot of a bucket, and the slots' mask.

    Shapes: ptr (B + 1,), ids (b,) -> rows (b, L) int64 (0 where padding), mask (b, L) bool.
    """
    lengths = (ptr[1:] - ptr[:-1])[ids]
    pos = torch.arange(int(lengths.max()), device=ptr.device)
    mask = pos[None, :] < lengths[:, None]
    rows = torch.where(mask, ptr[ids][:, None] + pos[None, :], torch.zeros_like(pos)[None, :])
    return rows, mask


class TokenTransformer(nn.Module):
    """Linear(D, P) + K pre-norm encoder layers with masked dense attention per length bucket, then JK.

    Shapes: x (N, D), ptr (B + 1,) -> (N, out_dim), out_dim = D + K * P for JK cat, else P.
    """

    def __init__(self, in_dim: int, width: int, num_layers: int, heads: int, jk: str) -> None:
        super().__init__()
        self.in_dim, self.width, self.jk = in_dim, width, jk
        self.proj = nn.Linear(in_dim, width)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                width, heads, dim_feedforward=2 * width, dropout=0.0, batch_first=True, norm_first=True
            )
            for _ in range(num_layers)
        )

    @property
    def out_dim(self) -> int:
        return self.in_dim + len(self.layers) * self.width if self.jk == "cat" else self.width

    def forward(self, x: Tensor, ptr: Tensor) -> Tensor:
        return join_blocks(self.blocks(x, ptr))

    def blocks(self, x: Tensor, ptr: Tensor) -> list[Tensor]:
        """:meth:`forward`'s output as column blocks (:func:`glot.pooling.gnn.jumping_knowledge`)."""
        outs = [x.new_zeros(x.shape[0], self.width) for _ in self.layers]
        h0 = self.proj(x)
        for ids in _buckets(ptr):
            rows, mask = _bucket_rows(ptr, ids)
            h = h0[rows]
            for k, layer in enumerate(self.layers):
                h = layer(h, src_key_padding_mask=~mask)
                outs[k] = outs[k].index_put((rows[mask],), h[mask].to(outs[k].dtype))  # bf16 under autocast
        return jumping_knowledge(x, outs, self.jk)


class PMAHead(nn.Module):
    """Linear(D, P), K set-attention blocks, PMA onto one learned seed (PyG's SetTransformerAggregation).

    Shapes: x (N, D), ptr (B + 1,) -> (B, P).
    """

    def __init__(self, in_dim: int, width: int, num_layers: int, heads: int) -> None:
        super().__init__()
        self.width = width
        self.proj = nn.Linear(in_dim, width)
        self.aggr = SetTransformerAggregation(
            width, num_seed_points=1, num_encoder_blocks=num_layers, num_decoder_blocks=0, heads=heads,
            layer_norm=True,
        )  # fmt: skip

    def forward(self, x: Tensor, ptr: Tensor) -> Tensor:
        h = self.proj(x)
        z = x.new_zeros(ptr.numel() - 1, self.width)  # the input's dtype, also under bf16 autocast
        for ids in _buckets(ptr):  # one padded block per length bucket, masked inside PyG's blocks
            ids = ids.sort().values  # PyG wants sorted indices
            rows, mask = _bucket_rows(ptr, ids)
            index = torch.repeat_interleave(torch.arange(ids.numel(), device=x.device), mask.sum(1))
            pooled = self.aggr(h[rows[mask]], index=index, dim_size=ids.numel())
            z = z.index_put((ids,), pooled.to(z.dtype))
        return z


def learned_graph(z: Tensor, ptr: Tensor, tau: float, self_loops: bool) -> TokenGraph:
    """Edges (i, j) with cos(z_i, z_j) > tau within each sentence, weight (cos - tau) / (1 - tau) in (0, 1].

    Differentiable in ``z`` through the weights (an edge's weight is 0 where it appears). Self-loops (weight 1)
    where ``self_loops``. Shapes: z (N, r), ptr (B + 1,) -> edge_index (2, E), edge_weight (E,).
    """
    zn = F.normalize(z, dim=-1)
    srcs, dsts, weights = [], [], []
    for ids in _buckets(ptr):
        rows, mask = _bucket_rows(ptr, ids)
        zb = zn[rows] * mask[..., None]
        sim = zb @ zb.transpose(1, 2)
        pair = mask[:, :, None] & mask[:, None, :]
        eye = torch.eye(rows.shape[1], dtype=torch.bool, device=z.device)[None]
        keep = pair & (sim > tau) & ~eye
        b, i, j = keep.nonzero(as_tuple=True)
        srcs.append(rows[b, j])
        dsts.append(rows[b, i])
        weights.append((sim[b, i, j] - tau) / max(1.0 - tau, 1e-6))
    src, dst, weight = torch.cat(srcs), torch.cat(dsts), torch.cat(weights)
    if self_loops:
        loops = torch.arange(z.shape[0], device=z.device)
        src, dst = torch.cat([src, loops]), torch.cat([dst, loops])
        weight = torch.cat([weight, z.new_ones(z.shape[0])])
    return TokenGraph(torch.stack([src, dst]), weight)


#: the GNN layers that read edge weights: through them the learned graph's projection gets its gradient
WEIGHTED_CONVS = ("gat", "gatv2", "gcn", "gine")


def check_learned_graph(config: PoolerConfig) -> None:
    """The learned graph trains only through edge weights: refuse layers that ignore them."""
    if config.gnn.conv not in WEIGHTED_CONVS:
        raise InputError(
            f"pooler 'learned-graph': conv={config.gnn.conv!r} ignores edge weights, so the learned "
            f"projection would get no gradient; use one of {', '.join(WEIGHTED_CONVS)}"
        )
