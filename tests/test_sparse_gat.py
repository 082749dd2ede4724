"""The sparse-product GAT edge path (glot.pooling.sparse_gat) against PyG's GATConv itself: outputs and
gradients, every GATConv option the token graph uses, repeated edges, empty graphs, bf16 autocast."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.nn import GATConv

import glot
import glot.pooling.gnn as gnn
import glot.pooling.sparse_gat as sparse_gat_module
from close import assert_close_normwise
from glot.pooling.sparse_gat import gat_edges, sparse_gat, supports_sparse


def random_graph(n: int = 40, e: int = 300, d: int = 12, seed: int = 0, dtype: torch.dtype = torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=dtype)
    edge_index = torch.randint(0, n, (2, e), generator=g)  # includes self-loops and repeated edges
    return x, edge_index, torch.rand(e, 1, generator=g, dtype=dtype)


def outputs_and_grads(conv: GATConv, run, x: torch.Tensor, attr: torch.Tensor | None = None):
    """run(x, attr)'s output and its gradients w.r.t. x, every parameter and the edge attributes (a learned
    graph's weights carry gradients)."""
    x = x.clone().requires_grad_(True)
    attr = None if attr is None else attr.clone().requires_grad_(True)
    out = run(x, attr)
    weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(9), dtype=out.dtype).to(
        out.device
    )
    params = [p for p in conv.parameters() if p.requires_grad]
    grads = torch.autograd.grad((out * weight).sum(), [x, *params, *([] if attr is None else [attr])])
    return out, grads


def on_both_paths(conv: GATConv, x, edge_index, attr):
    """(PyG's GATConv, sparse_gat): outputs and gradients."""
    want = outputs_and_grads(conv, lambda v, a: conv(v, edge_index, edge_attr=a), x, attr)
    got = outputs_and_grads(
        conv, lambda v, a: sparse_gat(conv, v, gat_edges(edge_index, a, v.shape[0], conv)), x, attr
    )
    return want, got


CASES = [  # heads, concat, weighted, add_self_loops, fill_value
    (1, False, False, True, "mean"),
    (3, False, True, True, "mean"),
    (2, True, False, True, "mean"),
    (2, True, True, True, 0.5),
    (1, False, True, False, "mean"),
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("heads,concat,weighted,loops,fill", CASES)
def test_sparse_gat_equals_gatconv(heads, concat, weighted, loops, fill, dtype) -> None:
    torch.manual_seed(0)
    x, edge_index, attr = random_graph(dtype=dtype)
    attr = attr if weighted else None
    conv = GATConv(12, 8, heads=heads, concat=concat, edge_dim=1 if weighted else None,
                   add_self_loops=loops, fill_value=fill).to(dtype)  # fmt: skip
    torch.nn.init.normal_(conv.bias)  # nonzero, so a missing bias would show
    assert gat_edges(edge_index, attr, x.shape[0], conv).merge is not None  # repeated edges share a slot
    (want, want_grads), (got, got_grads) = on_both_paths(conv, x, edge_index, attr)
    assert got.dtype == want.dtype
    for a, b in zip([got, *got_grads], [want, *want_grads], strict=True):
        if dtype == torch.float32:  # rounding differs; sums with cancellation need a per-tensor scale
            assert_close_normwise(a, b, 1e-5)
        else:
            torch.testing.assert_close(a, b)


def test_sparse_gat_on_an_empty_graph_without_self_loops_is_the_bias() -> None:
    conv = GATConv(12, 8, add_self_loops=False)
    torch.nn.init.normal_(conv.bias)
    x = torch.randn(5, 12)
    empty = torch.zeros(2, 0, dtype=torch.long)
    (want, want_grads), (got, got_grads) = on_both_paths(conv, x, empty, None)
    torch.testing.assert_close(got, want)
    for a, b in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("weighted", [False, True])
def test_sparse_gat_under_bf16_autocast_matches_pygs_own_path(weighted: bool) -> None:
    """bf16 head training/inference (head_dtype auto on bf16 hardware): bf16 states times fp32 attention are
    summed in fp32, as PyG's propagate does."""
    torch.manual_seed(0)
    x, edge_index, attr = random_graph()
    attr = attr if weighted else None
    conv = GATConv(12, 8, heads=2, edge_dim=1 if weighted else None)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        (want, want_grads), (got, got_grads) = on_both_paths(conv, x, edge_index, attr)
    assert got.dtype == want.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-2)
    for a, b in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(a.float(), b.float(), rtol=5e-2, atol=5e-2)


def test_a_bipartite_gat_keeps_pygs_own_path() -> None:
    assert supports_sparse(GATConv(12, 8)) and not supports_sparse(GATConv((12, 10), 8))


@pytest.mark.parametrize("weighted", [False, True])
def test_glot_on_an_edge_list_equals_pygs_gat_and_builds_the_pattern_once(
    weighted: bool, monkeypatch
) -> None:
    """The whole GLOT pooler on the edge-list path, training: outputs and every parameter gradient as with PyG's
    own GATConv forward (float64: the sums differ only in rounding order), and the K layers share one CSR
    pattern."""
    torch.manual_seed(0)
    hidden = torch.randn(3, 30, 16, dtype=torch.float64)
    mask = torch.arange(30)[None, :] < torch.tensor([[30], [17], [9]])
    pooler = glot.build_pooler("glot", 16, hidden_dim=8, num_layers=3, tau=0.1, weighted=weighted).double()
    pooler.gnn.dense_choice = "edge"
    torch.nn.init.normal_(pooler.readout.score.weight)

    def run() -> tuple[torch.Tensor, list[torch.Tensor]]:
        out = pooler(hidden, mask)
        params = list(pooler.parameters())
        return out, list(torch.autograd.grad(out.square().sum(), params))

    calls = []
    real = gnn.gat_edges
    monkeypatch.setattr(gnn, "gat_edges", lambda *a, **k: calls.append(1) or real(*a, **k))
    got, got_grads = run()
    assert calls == [1]
    monkeypatch.setattr(sparse_gat_module, "ENABLED", False)  # PyG's GATConv.forward
    want, want_grads = run()
    torch.testing.assert_close(got, want)
    for a, b in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA absent (run benchmarks/gpu_check.sh)")
@pytest.mark.parametrize("weighted", [False, True])
def test_cuda_sparse_gat_equals_gatconv_and_the_cpu(weighted: bool) -> None:
    """On CUDA (cuSPARSE products): sparse_gat and PyG's GATConv agree (fp32, forward + gradients), and both
    agree with the CPU."""
    torch.manual_seed(0)
    x, edge_index, attr = random_graph()
    attr = attr if weighted else None
    conv = GATConv(12, 8, heads=2, edge_dim=1 if weighted else None)
    cpu = on_both_paths(conv, x, edge_index, attr)
    gpu = on_both_paths(conv.cuda(), x.cuda(), edge_index.cuda(), None if attr is None else attr.cuda())
    for (g_out, g_grads), (c_out, c_grads) in zip(gpu, cpu, strict=True):
        for a, b in zip([g_out, *g_grads], [c_out, *c_grads], strict=True):
            assert_close_normwise(a.cpu(), b, 1e-4)
    for a, b in zip([gpu[0][0], *gpu[0][1]], [gpu[1][0], *gpu[1][1]], strict=True):
        assert_close_normwise(b, a, 1e-5)
