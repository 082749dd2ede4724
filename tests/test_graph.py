"""Token-graph construction: vectorised result == per-sentence definition, options, edge cases."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from glot.pooling.config import GraphConfig
from glot.pooling.graph import build_token_graph, cosine_similarity
from glot.pooling.packing import lengths_to_ptr, pack


def edge_set(edge_index: torch.Tensor) -> set[tuple[int, int]]:
    return {(int(s), int(d)) for s, d in edge_index.T}


def naive_edges(x: torch.Tensor, ptr: torch.Tensor, tau: float, self_loops: bool = True) -> set:
    """Per-sentence loop, straight from the paper: edge iff cos > tau, plus the diagonal."""
    return naive_edges_with_ties(x, ptr, tau, self_loops)[0]


#: |cos - tau| below this is a tie: float rounding (kernel, CPU, thread count) may put the pair either side
TIE = 1e-5


def naive_edges_with_ties(
    x: torch.Tensor, ptr: torch.Tensor, tau: float, self_loops: bool = True
) -> tuple[set, set]:
    """(edges, ties): cosines in float64; a pair within TIE of tau counts as a tie, not as an edge."""
    edges, ties = set(), set()
    for b in range(ptr.numel() - 1):
        s, e = int(ptr[b]), int(ptr[b + 1])
        xn = F.normalize(x[s:e].double(), dim=-1)
        sim = xn @ xn.T
        for i in range(e - s):
            for j in range(e - s):
                if i == j:
                    if self_loops:
                        edges.add((s + j, s + i))
                elif abs(float(sim[i, j]) - tau) < TIE:
                    ties.add((s + j, s + i))
                elif sim[i, j] > tau:
                    edges.add((s + j, s + i))
    return edges, ties


def assert_same_edges(edge_index: torch.Tensor, x: torch.Tensor, ptr: torch.Tensor, tau: float) -> None:
    """The built graph equals the definition on every pair that is not a rounding tie."""
    want, ties = naive_edges_with_ties(x, ptr, tau)
    assert edge_set(edge_index) - ties == want


@pytest.mark.parametrize("tau", [-1.0, 0.0, 0.2, 0.6, 0.99])
def test_matches_per_sentence_definition(tau: float) -> None:
    torch.manual_seed(0)
    lengths = torch.tensor([5, 1, 9, 3])
    x = torch.randn(int(lengths.sum()), 8)
    x[3] = x[2] * 2.0  # exact duplicates have cos 1
    ptr = lengths_to_ptr(lengths)
    graph = build_token_graph(x, ptr, GraphConfig(tau=tau))
    assert_same_edges(graph.edge_index, x, ptr, tau)
    assert not naive_edges_with_ties(x, ptr, tau)[1]  # these random states have no tie: the test is exact
    assert graph.edge_weight is None


def test_edges_never_cross_sentences_or_touch_padding(minilm_states) -> None:
    hidden, mask = minilm_states
    x, ptr = pack(hidden, mask)
    graph = build_token_graph(x, ptr, GraphConfig(tau=-1.0))  # complete graph per sentence
    sent = torch.repeat_interleave(torch.arange(ptr.numel() - 1), ptr[1:] - ptr[:-1])
    assert torch.equal(sent[graph.edge_index[0]], sent[graph.edge_index[1]])
    lengths = ptr[1:] - ptr[:-1]
    assert graph.edge_index.shape[1] == int((lengths**2).sum())


def test_real_minilm_states_match_definition(minilm_states) -> None:
    x, ptr = pack(*minilm_states)
    for tau in (0.3, 0.6, 0.8):  # real states differ by rounding across machines: ties may go either way
        assert_same_edges(build_token_graph(x, ptr, GraphConfig(tau=tau)).edge_index, x, ptr, tau)


def test_blocked_construction_equals_one_shot() -> None:
    torch.manual_seed(1)
    lengths = torch.tensor([40, 3, 17, 25, 1])
    x, ptr = torch.randn(int(lengths.sum()), 6), lengths_to_ptr(lengths)
    cfg = GraphConfig(tau=0.3, weighted=True)
    full = build_token_graph(x, ptr, cfg)
    tiny = build_token_graph(x, ptr, cfg, max_block_elems=50)  # forces row blocks inside one sentence
    # the two paths take the norms differently (Gram diagonal vs vector_norm): exact only away from ties
    assert not naive_edges_with_ties(x, ptr, 0.3)[1]
    assert edge_set(full.edge_index) == edge_set(tiny.edge_index)
    w_full = dict(zip(map(tuple, full.edge_index.T.tolist()), full.edge_weight.tolist(), strict=True))
    w_tiny = dict(zip(map(tuple, tiny.edge_index.T.tolist()), tiny.edge_weight.tolist(), strict=True))
    assert all(abs(w_full[k] - w_tiny[k]) < 1e-6 for k in w_full)


def test_tau_one_leaves_only_self_loops_and_no_self_loops_option() -> None:
    x = torch.ones(6, 4)  # all tokens identical: cos = 1 everywhere (rounding may exceed 1)
    ptr = torch.tensor([0, 2, 6])
    graph = build_token_graph(x, ptr, GraphConfig(tau=1.0))
    assert edge_set(graph.edge_index) == {(i, i) for i in range(6)}
    no_loops = build_token_graph(x, ptr, GraphConfig(tau=0.5, self_loops=False))
    assert all(s != d for s, d in edge_set(no_loops.edge_index))
    assert no_loops.edge_index.shape[1] == 2 * 1 + 4 * 3


def test_zero_vectors_give_no_nan_and_keep_self_loops() -> None:
    x = torch.zeros(4, 5)
    graph = build_token_graph(x, torch.tensor([0, 4]), GraphConfig(tau=0.0, weighted=True))
    assert edge_set(graph.edge_index) == {(i, i) for i in range(4)}
    assert torch.isfinite(graph.edge_weight).all()
    assert torch.isfinite(cosine_similarity(x)).all()


def test_knn_keeps_top_k_neighbours_above_tau() -> None:
    torch.manual_seed(2)
    x, ptr = torch.randn(10, 4), torch.tensor([0, 10])
    graph = build_token_graph(x, ptr, GraphConfig(tau=-1.0, knn=3, self_loops=False))
    sim = cosine_similarity(x).fill_diagonal_(-2)
    expected = {(int(j), i) for i in range(10) for j in sim[i].topk(3).indices}
    assert edge_set(graph.edge_index) == expected  # source = neighbour j, target = token i


def test_weighted_edges_are_cosines() -> None:
    torch.manual_seed(3)
    x, ptr = torch.randn(7, 4), torch.tensor([0, 7])
    graph = build_token_graph(x, ptr, GraphConfig(tau=0.1, weighted=True))
    sim = cosine_similarity(x)
    src, dst = graph.edge_index
    assert torch.allclose(graph.edge_weight, sim[dst, src], atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, field",
    [({"tau": 1.5}, "tau"), ({"tau": -2}, "tau"), ({"knn": 0}, "knn"), ({"tau": True}, "tau")],
)
def test_bad_config_names_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        build_token_graph(torch.randn(3, 2), torch.tensor([0, 3]), GraphConfig(**kwargs))


def test_bad_ptr_is_explained() -> None:
    with pytest.raises(ValueError, match="ptr must start at 0"):
        build_token_graph(torch.randn(3, 2), torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="no token"):
        build_token_graph(torch.randn(3, 2), torch.tensor([0, 0, 3]))
