"""The edge-chunked GAT path (bounded memory for long documents) against PyG's GATConv itself."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.nn import GATConv

import glot
import glot.pooling.gnn as gnn


def random_graph(n: int = 40, e: int = 300, d: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    edge_index = torch.randint(0, n, (2, e), generator=g)  # includes self-loops and repeated edges
    return x, edge_index, torch.rand(e, 1, generator=g)


@pytest.mark.parametrize("heads,concat,weighted", [(1, False, False), (3, False, True), (2, True, False)])
def test_gat_edge_chunked_equals_gatconv(heads: int, concat: bool, weighted: bool) -> None:
    torch.manual_seed(0)
    x, edge_index, attr = random_graph()
    conv = GATConv(12, 8, heads=heads, concat=concat, edge_dim=1 if weighted else None).eval()
    attr = attr if weighted else None
    with torch.no_grad():
        expected = conv(x, edge_index, edge_attr=attr)
        for chunk in (1, 7 * 8 * heads, 10**9):  # one edge at a time, several edges, everything at once
            got = gnn.gat_edge_chunked(conv, x, edge_index, attr, chunk_elems=chunk)
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_glot_takes_the_chunked_path_only_without_autograd(monkeypatch) -> None:
    torch.manual_seed(0)
    hidden = torch.randn(3, 30, 16)
    mask = torch.ones(3, 30, dtype=torch.bool)
    pooler = glot.build_pooler("glot", 16, hidden_dim=8, tau=0.0).eval()
    pooler.gnn.dense_max_tokens = 0  # the edge-list path (short sentences would take the dense GAT path)
    with torch.no_grad():
        expected = pooler(hidden, mask)
    calls = []
    real = gnn.gat_edge_chunked
    monkeypatch.setattr(gnn, "MESSAGE_ELEMS", 64)  # every layer's messages now count as "large"
    monkeypatch.setattr(gnn, "gat_edge_chunked", lambda *a, **k: calls.append(1) or real(*a, **k))
    with torch.no_grad():
        got = pooler(hidden, mask)
    assert len(calls) == pooler.gnn.config.num_layers
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    calls.clear()
    pooler(hidden, mask).sum().backward()  # training keeps PyG's own path (its autograd is the same anyway)
    assert not calls


@pytest.mark.parametrize("weighted", [False, True])
def test_gat_edge_chunked_under_bf16_autocast_matches_pygs_own_path(weighted: bool) -> None:
    """bf16 head inference (head_dtype auto on bf16 hardware) of a large graph: the chunked messages (bf16 states
    times fp32 attention) are summed in PyG's dtype; before, index_add_ refused the mix and eval crashed."""
    torch.manual_seed(0)
    x, edge_index, attr = random_graph()
    conv = GATConv(12, 8, heads=2, edge_dim=1 if weighted else None).eval()
    attr = attr if weighted else None
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = conv(x, edge_index, edge_attr=attr)
        got = gnn.gat_edge_chunked(conv, x, edge_index, attr, chunk_elems=7 * 8 * 2)
    assert got.dtype == expected.dtype
    torch.testing.assert_close(got.float(), expected.float(), rtol=2e-2, atol=2e-2)


def test_gat_edge_chunked_rejects_bipartite_conv() -> None:
    conv = GATConv((12, 10), 8)
    x, edge_index, _ = random_graph()
    with pytest.raises(ValueError, match="int in_channels"):
        gnn.gat_edge_chunked(conv, x, edge_index)


@pytest.mark.parametrize("jk", ["cat", "max", "mean", "none"])
def test_glot_pools_its_token_blocks_as_it_would_their_concatenation(jk: str) -> None:
    """GLOT hands the readout u as column blocks ([states, layers] under JK cat); pooling them must give the
    outputs and parameter gradients of the readout on the concatenated u (the paper's z = sum_i pi_i u_i)."""
    import glot

    torch.manual_seed(3)
    pooler = glot.build_pooler("glot", 12, tau=0.1, num_layers=2, hidden_dim=5, readout_hidden=6, jk=jk)
    pooler = pooler.double()  # float64: the two sums differ only in rounding order
    torch.nn.init.normal_(pooler.readout.score.weight)
    x = torch.randn(17, 12, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    ptr = torch.tensor([0, 5, 6, 13, 17])
    blocks = pooler.token_blocks(x, ptr)
    assert len(blocks) == (2 if jk == "cat" else 1)
    outs = [pooler.forward_packed(x, ptr), pooler.readout(pooler.token_states(x, ptr), ptr)]
    params = list(pooler.parameters())
    grads = [torch.autograd.grad(out.square().sum(), params, allow_unused=True) for out in outs]
    torch.testing.assert_close(outs[0], outs[1])
    for a, b in zip(*grads, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b)
