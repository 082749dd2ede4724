"""Token graphs built once for a cache: the same edges, bit for bit, as building them per batch, and the same
training run (losses, metric) with and without them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import glot
import glot.pooling.gnn as gnn
import glot.pooling.graph_cache as graph_cache
from glot.pooling.config import GraphConfig
from glot.pooling.graph import bucket_width, build_token_graph
from glot.pooling.graph_cache import SentenceGraphs, shared_graphs
from glot.pooling.packing import lengths_to_ptr


class Store:
    """A state store like CachedStates: ``lengths`` and ``packed(ids)``; token states repeat a few "words" so
    that cosines of exactly 1 (and of mixed words) occur, as with a real backbone."""

    def __init__(self, lengths: list[int], seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.lengths = np.asarray(lengths)
        words = torch.randn(12, 16, generator=g)
        self.items = [words[torch.randint(0, 12, (n,), generator=g)] + 0.3 * torch.randn(n, 16, generator=g)
                      for n in lengths]  # fmt: skip

    def packed(self, ids: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        ids = np.asarray(ids)
        return torch.cat([self.items[i] for i in ids]), lengths_to_ptr(torch.from_numpy(self.lengths[ids]))


LENGTHS = [1, 5, 70, 33, 2, 64, 17, 9, 1, 48, 130, 12, 12, 300, 7, 40]
CONFIGS = [
    GraphConfig(tau=0.6),
    GraphConfig(tau=0.3, weighted=True),
    GraphConfig(tau=0.2, knn=3, self_loops=False),
    GraphConfig(tau=-1.0, weighted=True),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"tau{c.tau}-knn{c.knn}-w{c.weighted}")
def test_cached_batch_graph_is_bit_identical_to_building_it(config: GraphConfig) -> None:
    """Random batches (repeats, singletons, several buckets) assembled from graphs built once in other chunks:
    edge_index and edge weights torch.equal to build_token_graph on the batch itself."""
    store = Store(LENGTHS)
    graphs = SentenceGraphs.build(store.packed, store.lengths, config, chunk_tokens=100)  # many small chunks
    rng = np.random.default_rng(0)
    for size in (1, 3, 8, 16, 24):
        ids = rng.choice(len(LENGTHS), size=size, replace=size > len(LENGTHS))
        x, ptr = store.packed(ids)
        got, ref = graphs.batch(ids, ptr).edges, build_token_graph(x, ptr, config)
        assert torch.equal(got.edge_index, ref.edge_index)
        assert (got.edge_weight is None) == (ref.edge_weight is None)
        if ref.edge_weight is not None:
            assert torch.equal(got.edge_weight, ref.edge_weight)
    assert graphs.src.dtype == np.int16  # local indices: every sentence < 32768 tokens
    per_edge = 2 * 2 + (4 if config.weighted else 0)
    assert graphs.nbytes == graphs.num_edges * per_edge + (len(LENGTHS) + 1) * 8


def test_bucket_widths_depend_on_the_sentence_alone() -> None:
    """Four widths per octave, never below the length, padding under 25%."""
    assert [bucket_width(n) for n in (1, 8, 9, 10, 11, 17, 100, 130, 4097)] == [
        1,
        8,
        10,
        10,
        12,
        20,
        112,
        160,
        5120,
    ]
    assert all(n <= bucket_width(n) < 1.25 * n + 1 for n in range(1, 3000))


def test_a_graph_for_another_batch_or_config_is_refused() -> None:
    """Internal invariants: a graph is used only for the ptr and the config it was built for; another config,
    or the same config object edited after building, is another key and never reuses stale graphs."""
    store = Store(LENGTHS[:6])
    config = GraphConfig(tau=0.6)
    graphs = shared_graphs(store, config)
    assert shared_graphs(store, GraphConfig(tau=0.6)) is graphs  # content-keyed: equal configs share
    other = shared_graphs(store, GraphConfig(tau=0.5))
    assert other is not graphs and other.config.tau == 0.5
    ids = np.array([2, 0, 4])
    x, ptr = store.packed(ids)
    pooler = glot.build_pooler("glot", 16, tau=0.6, hidden_dim=8)
    batch = graphs.batch(ids, ptr)
    assert torch.equal(pooler.forward_packed(x, ptr, graph=batch), pooler.forward_packed(x, ptr))
    with pytest.raises(AssertionError, match="another ptr"):
        pooler.forward_packed(x[:-1], lengths_to_ptr(torch.tensor([70, 1, 1])), graph=batch)
    with pytest.raises(AssertionError, match="the pooler uses"):
        glot.build_pooler("glot", 16, tau=0.5, hidden_dim=8).forward_packed(x, ptr, graph=batch)
    config.tau = 0.7  # edited in place after building: the stored copy still says 0.6
    with pytest.raises(AssertionError, match="the pooler uses"):
        batch.check(ptr, config)
    with pytest.raises(AssertionError, match="lengths"):
        graphs.batch(np.array([1, 0, 4]), ptr)
    with pytest.raises(AssertionError, match="no token graph"):
        glot.build_pooler("mean", 16).forward_packed(x, ptr, graph=batch)


def _cache(tmp_path):  # noqa: ANN202
    from glot.training.loop import cache_task
    from test_train import WordBackbone, _stress

    return cache_task(_stress(160, 40), WordBackbone(), cache_dir=tmp_path / "cache", progress=False)


def _fit_twice(tmp_path, monkeypatch, options: dict, cached=None) -> tuple[list[dict], list[int]]:  # noqa: ANN001
    """The same run (same seed) with graphs built once for the cache, then built per batch; returns both
    results and how many per-batch graph builds the pooler ran in each."""
    from glot.training.loop import TrainConfig, fit

    cached = cached if cached is not None else _cache(tmp_path)
    config = TrainConfig(pooler="glot", lr=1e-2, epochs=2, batch_size=16, pooler_options=options)
    calls: list[int] = []
    for name in ("build_token_graph", "build_dense_graph"):
        real = getattr(gnn, name)
        monkeypatch.setattr(gnn, name, lambda *a, real=real, **k: calls.append(1) or real(*a, **k))
    runs, builds = [], []
    for enabled in (True, False):
        monkeypatch.setattr(graph_cache, "ENABLED", enabled)
        runs.append(fit(cached, config, tmp_path / f"run-{enabled}-{options['tau']}", progress=False))
        builds.append(len(calls))
        calls.clear()
    return runs, builds


@pytest.mark.parametrize(
    "options",
    [{"tau": 0.1, "hidden_dim": 8}, {"tau": 0.3, "hidden_dim": 8, "weighted": True, "num_layers": 1}],
)
def test_training_with_cached_graphs_equals_building_them(tmp_path, monkeypatch, options) -> None:
    """End to end (cache -> fit, 2 epochs, validation, eval): identical per-epoch losses, validation and eval
    metric; with cached graphs the pooler builds no graph in any step or validation batch."""
    runs, builds = _fit_twice(tmp_path, monkeypatch, options)
    assert builds[0] == 0 and builds[1] > 0
    cached_run, built_run = runs
    assert [h["train_loss"] for h in cached_run["history"]] == [h["train_loss"] for h in built_run["history"]]
    assert [h["val"] for h in cached_run["history"]] == [h["val"] for h in built_run["history"]]
    assert cached_run["eval"] == built_run["eval"]


def test_a_changed_tau_builds_new_graphs(tmp_path, monkeypatch) -> None:
    """Two runs over ONE cache object with different tau: each uses graphs of its own tau (its numbers equal
    the per-batch run of that tau), and the store keeps one graph set per config."""
    cached = _cache(tmp_path)
    first, _ = _fit_twice(tmp_path, monkeypatch, {"tau": 0.1, "hidden_dim": 8, "num_layers": 1}, cached)
    second, _ = _fit_twice(tmp_path, monkeypatch, {"tau": 0.4, "hidden_dim": 8, "num_layers": 1}, cached)
    for cached_run, built_run in (first, second):
        assert [h["train_loss"] for h in cached_run["history"]] == [
            h["train_loss"] for h in built_run["history"]
        ]
    assert first[0]["history"][-1]["train_loss"] != second[0]["history"][-1]["train_loss"]
    kept = {config: graphs for (config, _norm), graphs in graph_cache._SHARED[cached.states].items()}
    assert sorted(config[0] for config in kept) == [0.1, 0.4]  # keyed by (graph config, input normalisation)
    assert (
        kept[dataclasses.astuple(GraphConfig(tau=0.1))].num_edges
        > kept[dataclasses.astuple(GraphConfig(tau=0.4))].num_edges
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA absent (run benchmarks/gpu_check.sh)")
def test_cuda_pooler_on_cached_graphs_equals_building_them() -> None:
    """A pooler on CUDA takes the CPU-built cached graph (moved to its device) and gives the vectors it builds
    itself on CUDA, on either GAT path."""
    store = Store(LENGTHS)
    config = GraphConfig(tau=0.6)
    graphs = SentenceGraphs.build(store.packed, store.lengths, config)
    ids = np.arange(len(LENGTHS))
    x, ptr = store.packed(ids)
    torch.manual_seed(0)
    pooler = glot.build_pooler("glot", 16, tau=0.6, hidden_dim=8).cuda()
    with torch.no_grad():
        for choice in ("dense", "edge"):
            pooler.gnn.dense_choice = choice
            got = pooler.forward_packed(x.cuda(), ptr.cuda(), graph=graphs.batch(ids, ptr))
            torch.testing.assert_close(got, pooler.forward_packed(x.cuda(), ptr.cuda()), rtol=1e-5, atol=1e-5)
