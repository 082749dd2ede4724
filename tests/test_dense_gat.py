"""The dense, length-bucketed GAT path against PyG's GATConv on the explicit token graph, and in the GLOT pooler."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.nn import GATConv, GATv2Conv

import glot
import glot.pooling.dense_gat as dense_gat
import glot.pooling.gnn as gnn
import glot.pooling.path_rule as path_rule
import glot.pooling.sparse_gat as sparse_gat
from close import assert_close_normwise
from glot.pooling.config import GraphConfig
from glot.pooling.dense_gat import build_dense_graph, supports_dense
from glot.pooling.graph import build_token_graph
from glot.pooling.packing import lengths_to_ptr

#: mixed lengths 1..70 in one batch: several buckets, singletons, one-token sentences
LENGTHS = [1, 5, 70, 33, 2, 64, 17, 9, 1, 48]
TIE = 1e-5  # a cosine this close to tau could fall either side with another kernel or thread count


def batch(d: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(LENGTHS)
    return torch.randn(int(lengths.sum()), d, generator=g), lengths_to_ptr(lengths)


def assert_no_ties(x: torch.Tensor, ptr: torch.Tensor, tau: float) -> None:
    """No token pair has a cosine within TIE of tau, so every kernel builds the same graph."""
    for b in range(ptr.numel() - 1):
        xn = F.normalize(x[int(ptr[b]) : int(ptr[b + 1])].double(), dim=-1)
        off = ~torch.eye(xn.shape[0], dtype=torch.bool)
        assert ((xn @ xn.T - tau).abs()[off] >= TIE).all()


def run_both(conv: GATConv, x: torch.Tensor, ptr: torch.Tensor, cfg: GraphConfig):
    """(PyG on the edge list, dense path): outputs and gradients w.r.t. x and every parameter."""
    graph = build_token_graph(x, ptr, cfg)
    attr = None if graph.edge_weight is None else graph.edge_weight[:, None].to(x.dtype)
    dense = build_dense_graph(x, ptr, cfg)
    x_ref, x_new = x.clone().requires_grad_(), x.clone().requires_grad_()
    ref = conv(x_ref, graph.edge_index) if attr is None else conv(x_ref, graph.edge_index, edge_attr=attr)
    new = dense_gat.dense_gat(conv, x_new, dense)
    grad_out = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1), dtype=x.dtype).to(
        ref.device
    )
    params = [p for p in conv.parameters() if p.requires_grad]
    grads_ref = torch.autograd.grad(ref, [x_ref, *params], grad_out, materialize_grads=True)
    grads_new = torch.autograd.grad(new, [x_new, *params], grad_out, materialize_grads=True)
    return (ref, *grads_ref), (new, *grads_new)


CASES = list(itertools.product([1, 2], [False, True], [False, True], [False, True], [None, 3]))


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("heads,concat,weighted,self_loops,knn", CASES)
def test_dense_gat_equals_gatconv(heads, concat, weighted, self_loops, knn, dtype, tol) -> None:
    torch.manual_seed(0)
    x, ptr = batch()
    x = x.to(dtype)
    tau = 0.1
    assert_no_ties(x, ptr, tau)
    cfg = GraphConfig(tau=tau, knn=knn, weighted=weighted, self_loops=self_loops)
    conv = GATConv(16, 8, heads=heads, concat=concat, edge_dim=1 if weighted else None).to(dtype)
    with torch.no_grad():  # a non-zero bias and edge weights, so every parameter's gradient is exercised
        conv.bias.normal_()
    ref, new = run_both(conv, x, ptr, cfg)
    for a, b in zip(ref, new, strict=True):
        if dtype == torch.float32:  # rounding differs; sums with cancellation need a per-tensor scale
            assert_close_normwise(b, a, tol)
        else:
            torch.testing.assert_close(b, a, rtol=tol, atol=tol)


@pytest.mark.parametrize("tau", [-1.0, 0.5, 0.99])
def test_dense_gat_at_extreme_tau_and_without_added_loops(tau: float) -> None:
    """tau = -1: complete graphs; 0.99: (almost) only self-loops; a conv without add_self_loops, where a
    token with no incoming edge receives nothing (PyG: zero messages, only the bias)."""
    torch.manual_seed(0)
    x, ptr = batch(seed=2)
    x[3] = 0.0  # a zero vector: cosine 0 with everything, never NaN
    assert_no_ties(x, ptr, tau)
    for self_loops, add_loops in [(True, True), (False, False), (True, False)]:
        cfg = GraphConfig(tau=tau, self_loops=self_loops, weighted=True)
        conv = GATConv(16, 8, heads=2, concat=False, edge_dim=1, add_self_loops=add_loops)
        ref, new = run_both(conv, x, ptr, cfg)
        for a, b in zip(ref, new, strict=True):
            assert_close_normwise(b, a, 1e-5)


def test_supports_dense_only_for_what_it_reproduces() -> None:
    assert supports_dense(GATConv(8, 4, heads=2, edge_dim=1))
    assert not supports_dense(GATv2Conv(8, 4))
    assert not supports_dense(GATConv((8, 6), 4))  # bipartite: two linears
    assert not supports_dense(GATConv(8, 4, edge_dim=1, fill_value="add"))
    pooler = glot.build_pooler("glot", 16, conv="gatv2", hidden_dim=8)
    assert pooler.gnn.dense_graph(*batch(), GraphConfig()) is None and not pooler.gnn.prefers_dense(
        batch()[1]
    )


def glot_pooler(**options):
    torch.manual_seed(0)
    return glot.build_pooler("glot", 16, hidden_dim=8, readout_hidden=8, **options)


@pytest.mark.parametrize(
    "options",
    [
        {"tau": 0.1},
        {"tau": 0.3, "weighted": True, "heads": 2},
        {"tau": 0.1, "knn": 4, "self_loops": False},
        {"tau": 0.2, "jk": "max", "num_layers": 3},
    ],  # fmt: skip
)
def test_glot_pooler_dense_equals_edge_path(options, monkeypatch) -> None:
    """The whole GLOT head (graph -> K GAT layers -> JK -> readout): same vectors and gradients either way."""
    x, ptr = batch(seed=3)
    assert_no_ties(x, ptr, options["tau"])
    calls: list[int] = []
    real = dense_gat.dense_gat
    monkeypatch.setattr(gnn, "dense_gat", lambda *a, **k: calls.append(1) or real(*a, **k))
    results = []
    for limit in (256, 0):  # dense (every sentence <= 256 tokens), then the edge path
        pooler = glot_pooler(**options)
        pooler.gnn.dense_max_tokens = limit
        pooler.gnn.dense_choice = "dense" if limit else "auto"
        xi = x.clone().requires_grad_()
        out = pooler.forward_packed(xi, ptr)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append([out, xi.grad, *[p.grad for p in pooler.parameters()]])
        assert len(calls) == (pooler.gnn.config.num_layers if limit else 0)
        calls.clear()
    for a, b in zip(*results, strict=True):
        assert_close_normwise(a, b, 1e-5)


def test_dense_path_chosen_by_longest_sentence(monkeypatch) -> None:
    """Above the threshold (module constant or per-instance override) the edge list is used."""
    pooler = glot_pooler(tau=0.1)
    x, ptr = batch()
    assert pooler.gnn.prefers_dense(ptr)  # longest sentence 70 <= DENSE_MAX_TOKENS = 512
    monkeypatch.setattr(dense_gat, "DENSE_MAX_TOKENS", 69)
    assert not pooler.gnn.prefers_dense(ptr)
    pooler.gnn.dense_max_tokens = 70
    assert pooler.gnn.prefers_dense(ptr)
    assert not glot.build_pooler("adapool", 16).gnn.prefers_dense(ptr)  # no layers: nothing to do
    empty = torch.zeros(1, dtype=torch.long)  # B = 0: the edge path, an empty result
    assert not pooler.gnn.prefers_dense(empty)
    assert pooler.forward_packed(torch.zeros(0, 16), empty).shape == (0, pooler.out_dim)
    conv = pooler.gnn.convs[0]
    assert dense_gat.dense_gat(
        conv, torch.zeros(0, 16), build_dense_graph(torch.zeros(0, 16), empty)
    ).shape == (0, 8)
    with torch.no_grad():  # and the pooler's output does not depend on the path
        pooler.gnn.dense_choice = "dense"
        dense_out = pooler.forward_packed(x, ptr)
        pooler.gnn.dense_choice = "edge"
        torch.testing.assert_close(pooler.forward_packed(x, ptr), dense_out, rtol=1e-5, atol=1e-5)


def set_costs(monkeypatch: pytest.MonkeyPatch, **fields: float) -> None:
    """Every precision's rule constants changed alike, so the rule picks by them whatever dtype auto chose."""
    for dtype, costs in list(path_rule.COSTS.items()):
        monkeypatch.setitem(path_rule.COSTS, dtype, costs._replace(**fields))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_density_rule_picks_dense_for_dense_graphs_and_edges_for_sparse(dtype) -> None:
    """The measured rule, at each precision's constants: a complete graph goes dense, a self-loops-only graph
    (E' = N) stays an edge list; wider layers make the dense path win later (its batched matmul grows with the
    slots, the edge path's sparse products only with the edges; 256 sentences of 64 tokens: one bucket, big
    enough that the fixed per-bucket cost does not decide)."""
    x, ptr = (
        torch.randn(256 * 64, 16, generator=torch.Generator().manual_seed(4)),
        lengths_to_ptr(torch.full((256,), 64)),
    )
    complete = build_dense_graph(x, ptr, GraphConfig(tau=-1.0))
    loops = build_dense_graph(x, ptr, GraphConfig(tau=1.0))
    assert path_rule.dense_is_faster(complete, 64, dtype) and not path_rule.dense_is_faster(loops, 256, dtype)
    mid = build_dense_graph(x, ptr, GraphConfig(tau=0.4))  # E' = 9% of the slots
    assert path_rule.dense_is_faster(mid, 8, dtype) and not path_rule.dense_is_faster(mid, 1 << 16, dtype)


def test_the_path_rule_reads_the_precision_the_layers_run_in(monkeypatch) -> None:
    """TokenGNN asks the rule with the dtype its matmuls run in: fp32 outside autocast, bf16 under bf16 autocast
    and for a pooler cast to bf16 (as a sentence-transformers export of a bf16 model does), so each precision's
    constants decide its own forwards."""
    force_dense, force_edge = path_rule.PathCosts(1e9, 0, 0, 0), path_rule.PathCosts(0, 1e9, 1e9, 1e9)
    monkeypatch.setitem(path_rule.COSTS, torch.float32, force_edge)
    monkeypatch.setitem(path_rule.COSTS, torch.bfloat16, force_dense)
    calls: list[int] = []
    real = dense_gat.dense_gat
    monkeypatch.setattr(gnn, "dense_gat", lambda *a, **k: calls.append(1) or real(*a, **k))
    x, ptr = batch(seed=7)
    pooler = glot_pooler(tau=0.2)
    k = pooler.gnn.config.num_layers  # dense_gat calls per forward on the dense path
    with torch.no_grad():
        pooler.forward_packed(x, ptr)
        assert not calls  # fp32: the fp32 constants say edge list
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert path_rule.matmul_dtype(x) == torch.bfloat16
            pooler.forward_packed(x, ptr)
        assert len(calls) == k
        pooler.to(torch.bfloat16).forward_packed(x.bfloat16(), ptr)
        assert len(calls) == 2 * k and path_rule.matmul_dtype(x) == torch.float32


@pytest.mark.parametrize("weighted", [False, True])
def test_auto_chosen_path_equals_gatconv_with_gradients(weighted, monkeypatch) -> None:
    """Whatever the rule picks (forced each way by the cost constants), the pooler's GNN equals PyG's GATConv
    layers on build_token_graph's edge list, forward and gradients (edge attributes when weighted)."""
    x, ptr = batch(seed=5)
    assert_no_ties(x, ptr, 0.2)
    for bucket_cost, expect_dense in ((0.0, True), (1e12, False)):
        set_costs(
            monkeypatch,
            bucket=bucket_cost,
            slot=0.0 if expect_dense else 1.7,
            slot_width=0.0 if expect_dense else 0.3,
        )
        pooler = glot_pooler(tau=0.2, weighted=weighted, heads=2)
        graph = build_token_graph(x, ptr, pooler.config.graph)
        dense = build_dense_graph(x, ptr, pooler.config.graph)
        assert path_rule.dense_is_faster(dense, 16) == expect_dense
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        got = gnn.join_blocks(pooler.gnn.on_graph(xa, ptr, pooler.config.graph))
        with monkeypatch.context() as m:  # PyG's own GATConv.forward on the edge list
            m.setattr(sparse_gat, "ENABLED", False)
            ref = gnn.TokenGNN.forward(pooler.gnn, xb, graph.edge_index, graph.edge_weight)
        weights = torch.linspace(-1, 1, got.numel()).view_as(got)
        params = list(pooler.gnn.parameters())
        grads = torch.autograd.grad((got * weights).sum(), [xa, *params])
        grads_ref = torch.autograd.grad((ref * weights).sum(), [xb, *params])
        for a, b in zip([got, *grads], [ref, *grads_ref], strict=True):
            assert_close_normwise(a, b, 1e-5)


def test_dense_masks_from_cached_edges_equal_built_masks() -> None:
    """A prebuilt edge list converts to exactly the masks (and edge cosines) build_dense_graph builds, and back
    to exactly build_token_graph's edge list."""
    x, ptr = batch(seed=6)
    for cfg in (GraphConfig(tau=0.2, weighted=True), GraphConfig(tau=0.1, knn=3, self_loops=False)):
        edges = build_token_graph(x, ptr, cfg)
        built = build_dense_graph(x, ptr, cfg)
        converted = dense_gat.dense_from_edges(edges, ptr, x.shape[0])
        assert torch.equal(converted.order, built.order)
        for a, b in zip(converted.buckets, built.buckets, strict=True):
            assert torch.equal(a.adj, b.adj) and torch.equal(a.slots, b.slots)
            if cfg.weighted:
                assert torch.equal(a.sim[a.adj], b.sim[b.adj])
        back = dense_gat.edges_from_dense(built)
        assert torch.equal(back.edge_index, edges.edge_index)
        if cfg.weighted:
            assert torch.equal(back.edge_weight, edges.edge_weight)


def test_training_run_is_the_same_on_either_path(tmp_path, monkeypatch) -> None:
    """End to end through the training loop (cache -> GLOT train -> eval): the dense path changes no number
    beyond float rounding: the same losses every epoch and eval accuracy."""
    from glot.training.loop import TrainConfig, cache_task, fit
    from test_train import WordBackbone, _stress

    cached = cache_task(_stress(160, 40), WordBackbone(), cache_dir=tmp_path / "cache", progress=False)
    config = TrainConfig(pooler="glot", lr=1e-2, epochs=2, batch_size=16, pooler_options={"hidden_dim": 8})
    calls: list[int] = []
    real = dense_gat.dense_gat
    monkeypatch.setattr(gnn, "dense_gat", lambda *a, **k: calls.append(1) or real(*a, **k))
    runs, used = [], []
    for limit in (256, 0):  # sentences of <= 13 tokens: dense (forced by a zero cost), then the edge list
        monkeypatch.setattr(dense_gat, "DENSE_MAX_TOKENS", limit)
        set_costs(monkeypatch, bucket=0.0, slot=0.0, slot_width=0.0)
        runs.append(fit(cached, config, tmp_path / f"run{limit}", progress=False))
        used.append(len(calls))
        calls.clear()
    assert used[0] > 0 and used[1] == 0
    dense, edge = ([h["train_loss"] for h in r["history"]] for r in runs)
    assert dense == pytest.approx(edge, rel=1e-4)
    # at most one of the 40 eval items may flip, and only if its two logits tie to float rounding
    assert abs(runs[0]["eval"] - runs[1]["eval"]) <= 1 / 40 + 1e-9


needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="CUDA absent (run benchmarks/gpu_check.sh)"
)


@needs_cuda
@pytest.mark.parametrize("weighted", [False, True])
def test_cuda_dense_and_edge_paths_equal_gatconv(weighted) -> None:
    """On CUDA: the dense path and PyG's GATConv on the edge list agree (forward + gradients, fp32; torch keeps TF32 matmuls off by default),
    and both agree with the CPU."""
    x, ptr = batch(seed=7)
    assert_no_ties(x, ptr, 0.2)
    cfg = GraphConfig(tau=0.2, weighted=weighted)
    torch.manual_seed(0)
    conv = GATConv(16, 8, heads=2, concat=False, edge_dim=1 if weighted else None)
    cpu_ref, cpu_new = run_both(conv, x, ptr, cfg)
    gpu_ref, gpu_new = run_both(conv.cuda(), x.cuda(), ptr.cuda(), cfg)
    for a, b, c, d in zip(gpu_ref, gpu_new, cpu_ref, cpu_new, strict=True):
        assert_close_normwise(b, a, 1e-5)
        assert_close_normwise(a.cpu(), c, 1e-4)
        assert_close_normwise(b.cpu(), d, 1e-4)


@needs_cuda
def test_cuda_graph_and_pooler_equal_cpu() -> None:
    """On CUDA: build_token_graph gives the CPU's edges, and the GLOT pooler (either path) the CPU's vectors."""
    x, ptr = batch(seed=8)
    assert_no_ties(x, ptr, 0.2)
    cfg = GraphConfig(tau=0.2)
    assert torch.equal(
        build_token_graph(x.cuda(), ptr.cuda(), cfg).edge_index.cpu(),
        build_token_graph(x, ptr, cfg).edge_index,
    )
    pooler = glot_pooler(tau=0.2)
    with torch.no_grad():
        ref = pooler.forward_packed(x, ptr)
        gpu = pooler.cuda()
        for choice in ("dense", "edge"):
            gpu.gnn.dense_choice = choice
            torch.testing.assert_close(
                gpu.forward_packed(x.cuda(), ptr.cuda()).cpu(), ref, rtol=1e-4, atol=1e-4
            )
