"""The pooler benchmark's contenders: glot, a per-sentence loop and the reference code's structure.

Graph builders and head forwards of each, plus the checks that they agree (graphs, outputs, gradients) before
``bench_pooler.py`` times them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from torch_geometric.utils import dense_to_sparse

from glot import GraphConfig, build_token_graph
from glot.pooling.graph import DEFAULT_BLOCK_ELEMS, length_buckets
from glot.pooling.packing import pack

NAMES = ("glot", "loop", "ref")


# ---------------------------------------------------------------------------------------------- naive
def loop_graph(hidden: Tensor, mask: Tensor, tau: float) -> list[tuple[Tensor, Tensor]]:
    """Per sentence: real tokens, dense cosine, threshold, nonzero. Shapes: -> [(x_b (L_b, D), ei (2, E_b))]."""
    graphs = []
    for b in range(hidden.shape[0]):
        x = hidden[b][mask[b]]
        xn = F.normalize(x, dim=-1)
        graphs.append((x, (xn @ xn.T > tau).nonzero().T))
    return graphs


def loop_forward(pooler: nn.Module, hidden: Tensor, mask: Tensor, tau: float) -> Tensor:
    """The whole head, one sentence at a time. Shapes: (B, L, D), (B, L) -> (B, out_dim)."""
    out = []
    for x, ei in loop_graph(hidden, mask, tau):
        states, h = [x], x
        for conv in pooler.gnn.convs:
            h = torch.relu(conv(h, ei))
            states.append(h)
        u = torch.cat(states, dim=-1)
        scores = pooler.readout.score(torch.tanh(pooler.readout.proj(u))).squeeze(-1)
        out.append((torch.softmax(scores, dim=0)[:, None] * u).sum(dim=0))
    return torch.stack(out)


def ref_graph(hidden: Tensor, mask: Tensor, tau: float) -> Batch:
    """The reference code's structure: per-sentence broadcast cosine + dense_to_sparse, then a PyG Batch."""
    graphs = []
    for b in range(hidden.shape[0]):
        x = hidden[b][mask[b]]
        sim = F.cosine_similarity(x[:, None, :], x[None, :, :], dim=-1)
        graphs.append(Data(x=x, edge_index=dense_to_sparse((sim > tau).float())[0]))
    return Batch.from_data_list(graphs)


def ref_forward(pooler: nn.Module, hidden: Tensor, mask: Tensor, tau: float) -> Tensor:
    """Per-sentence graphs, then one batched GNN + readout call on the PyG Batch."""
    batch = ref_graph(hidden, mask, tau)
    return pooler.readout(pooler.gnn(batch.x, batch.edge_index), batch.ptr)


def glot_graph(hidden: Tensor, mask: Tensor, tau: float) -> Tensor:
    """glot: pack once, vectorised graph. Shapes: -> edge_index (2, E) in packed coordinates."""
    x, ptr = pack(hidden, mask)
    return build_token_graph(x, ptr, GraphConfig(tau=tau)).edge_index


# ---------------------------------------------------------------------------------------------- checks
def _edge_keys(edge_index: Tensor, n: int) -> Tensor:
    return torch.sort(edge_index[0] * n + edge_index[1]).values


def check_same(pooler: nn.Module, hidden: Tensor, mask: Tensor, tau: float) -> dict[str, Any]:
    """Assert all three contenders give the same graph and the same pooled vectors; return graph stats."""
    x, ptr = pack(hidden, mask)
    n = x.shape[0]
    ours = glot_graph(hidden, mask, tau)
    loop = torch.cat([ei + int(ptr[b]) for b, (_, ei) in enumerate(loop_graph(hidden, mask, tau))], dim=1)
    ref = ref_graph(hidden, mask, tau).edge_index
    keys = _edge_keys(ours, n)
    for name, other in (("loop", loop), ("ref", ref)):
        diff = set(keys.tolist()) ^ set(_edge_keys(other, n).tolist())
        if diff:  # float noise may flip an edge whose cosine sits on tau; anything else is a bug
            xn = F.normalize(x, dim=-1)
            cos = torch.tensor([float(xn[k // n] @ xn[k % n]) for k in diff])
            assert bool(((cos - tau).abs() < 1e-5).all()), f"{name} graph differs beyond float noise"
    with torch.no_grad():
        z = pooler(hidden, mask)
        for name in NAMES[1:]:
            other = forward_of(name, pooler, tau)(hidden, mask)
            assert torch.allclose(z, other, atol=1e-4, rtol=1e-4), f"{name} output differs from glot"
    lengths = ptr[1:] - ptr[:-1]
    padded = sum(len(g) * int(lengths[g].max()) ** 2 for g in length_buckets(lengths, DEFAULT_BLOCK_ELEMS))
    waste = padded / float(
        (lengths.float() ** 2).sum()
    )  # glot's length buckets vs real-token similarity FLOPs
    return {"edges": int(ours.shape[1]), "sentences": int(lengths.numel()), "padding_waste": waste}


def train_parts(pooler: nn.Module, out: int = 3) -> tuple[nn.Module, nn.Module, torch.optim.Optimizer]:
    """The pooler, a seeded Linear head on it and Adam over both: the same start for every contender."""
    torch.manual_seed(1)  # every contender gets the same head
    head = nn.Linear(pooler.out_dim, out).to(next(pooler.parameters()).device)
    return pooler, head, torch.optim.Adam([*pooler.parameters(), *head.parameters()], lr=2e-4)


def train_step(forward: Callable[[Tensor, Tensor], Tensor], head: nn.Module, opt: Any, batch: Any) -> Tensor:
    """One training step (forward, cross-entropy, backward, Adam) on a (hidden, mask, labels) batch."""
    hidden, mask, labels = batch
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(head(forward(hidden, mask)), labels)
    loss.backward()
    opt.step()
    return loss.detach()


def forward_of(name: str, pooler: nn.Module, tau: float) -> Callable[[Tensor, Tensor], Tensor]:
    """The head forward of contender ``name`` bound to ``pooler``'s weights. Shapes: (B, L, D), (B, L) -> z."""
    if name == "glot":
        return pooler
    loop = loop_forward if name == "loop" else ref_forward
    return lambda h, m: loop(pooler, h, m, tau)


def check_train(pooler: nn.Module, batch: Any, tau: float) -> None:
    """One backward per contender from identical weights: every gradient must agree with glot's."""
    grads = {}
    for name in NAMES:
        p, head, _ = train_parts(copy.deepcopy(pooler).train())
        F.cross_entropy(head(forward_of(name, p, tau)(batch[0], batch[1])), batch[2]).backward()
        grads[name] = [q.grad for q in [*p.parameters(), *head.parameters()]]
    for name in NAMES[1:]:
        for a, b in zip(grads["glot"], grads[name], strict=True):
            assert torch.allclose(a, b, atol=1e-4, rtol=1e-3), f"{name} gradient differs from glot"
