"""Pooler contract: packed == padded, invariances, naive-reference parity, special cases, save/load."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import glot
from glot.pooling import packing
from glot.pooling.config import OPTION_SECTION
from glot.pooling.packing import lengths_to_ptr, pack
from glot.pooling.poolers import Pooler, from_config, register_pooler

ALL = sorted(glot.POOLERS)
SMALL = {
    "glot": {"hidden_dim": 16, "tau": 0.2},
    "mlp": {"hidden_dim": 16},
    "transformer": {"hidden_dim": 16},
    "pma": {"hidden_dim": 16},
    "learned-graph": {"hidden_dim": 16, "rank": 4, "tau": 0.2},
}


def random_batch(seed: int = 0, b: int = 5, lmax: int = 11, d: int = 12):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(b, lmax, d, generator=g)
    lengths = torch.randint(1, lmax + 1, (b,), generator=g)
    lengths[0] = lmax
    mask = torch.arange(lmax)[None, :] < lengths[:, None]
    return hidden, mask


def left_pad(hidden: torch.Tensor, mask: torch.Tensor, extra: int = 0):
    """Same sentences, padded on the left with ``extra`` more columns; padding slots hold (seeded) garbage."""
    b, lmax, d = hidden.shape
    new_h = torch.randn(b, lmax + extra, d, generator=torch.Generator().manual_seed(99)) * 100
    new_m = torch.zeros(b, lmax + extra, dtype=torch.bool)
    for i in range(b):
        n = int(mask[i].sum())
        new_h[i, lmax + extra - n :] = hidden[i, mask[i]]
        new_m[i, lmax + extra - n :] = True
    return new_h, new_m


@pytest.mark.parametrize("name", ALL)
def test_packed_equals_padded_and_padding_invariance(name: str) -> None:
    torch.manual_seed(0)
    pooler = glot.build_pooler(name, 12, **SMALL.get(name, {})).eval()
    hidden, mask = random_batch()
    padded = pooler(hidden, mask)
    x, ptr = pack(hidden, mask)
    assert torch.allclose(pooler.forward_packed(x, ptr), padded, atol=1e-5)
    assert padded.shape == (5, pooler.out_dim)
    assert torch.allclose(pooler(*left_pad(hidden, mask, extra=4)), padded, atol=1e-5)


@pytest.mark.parametrize("name", ALL)
def test_batch_order_invariance(name: str) -> None:
    torch.manual_seed(0)
    pooler = glot.build_pooler(name, 12, **SMALL.get(name, {})).eval()
    hidden, mask = random_batch(seed=1)
    perm = torch.tensor([3, 0, 4, 2, 1])
    assert torch.allclose(pooler(hidden[perm], mask[perm]), pooler(hidden, mask)[perm], atol=1e-5)


def naive_glot(pooler: glot.Pooler, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The reference code's way: one sentence at a time, dense similarity, PyG convs, JK cat, softmax readout."""
    tau, outs = pooler.config.graph.tau, []
    for b in range(hidden.shape[0]):
        xs = hidden[b][mask[b]]
        xn = F.normalize(xs, dim=-1)
        adj = (xn @ xn.T) > tau
        adj.fill_diagonal_(True)
        edge_index = adj.nonzero().T
        h, layers = xs, [xs]
        for conv in pooler.gnn.convs:
            h = torch.relu(conv(h, edge_index))
            layers.append(h)
        u = torch.cat(layers, dim=-1)
        m = pooler.readout.score(torch.tanh(pooler.readout.proj(u))).squeeze(-1)
        outs.append((torch.softmax(m, dim=0)[:, None] * u).sum(dim=0))
    return torch.stack(outs)


def threshold_margin(hidden: torch.Tensor, mask: torch.Tensor, tau: float) -> float:
    """Smallest |cos - tau| over token pairs (float64): above ~1e-4 every implementation (kernel, CPU, thread
    count) puts every pair on the same side of tau, so comparing two graphs' outputs is exact, not lucky."""
    gaps = []
    for b in range(hidden.shape[0]):
        xn = F.normalize(hidden[b][mask[b]].double(), dim=-1)
        sim = xn @ xn.T
        off = ~torch.eye(sim.shape[0], dtype=torch.bool)
        if off.any():
            gaps.append(float((sim[off] - tau).abs().min()))
    return min(gaps, default=1.0)


@pytest.mark.parametrize("conv", ["gat", "gatv2", "gcn", "gin"])
def test_glot_equals_naive_reference_random(conv: str) -> None:
    torch.manual_seed(0)
    pooler = glot.build_pooler("glot", 12, conv=conv, num_layers=2, hidden_dim=16, tau=0.1).eval()
    hidden, mask = random_batch(seed=2)
    assert threshold_margin(hidden, mask, 0.1) > 1e-4  # no pair at the threshold: see threshold_margin
    with torch.no_grad():
        assert torch.allclose(pooler(hidden, mask), naive_glot(pooler, hidden, mask), atol=1e-5)


@pytest.mark.parametrize("tau", [0.3, 0.8])
def test_glot_equals_naive_reference_real_minilm(minilm_states, tau: float) -> None:
    torch.manual_seed(0)
    hidden, mask = minilm_states
    pooler = glot.build_pooler("glot", hidden.shape[-1], tau=tau).eval()  # paper defaults: GAT, K=2, P=256
    assert threshold_margin(hidden, mask, tau) > 1e-4  # no pair at the threshold: see threshold_margin
    with torch.no_grad():
        assert torch.allclose(pooler(hidden, mask), naive_glot(pooler, hidden, mask), atol=1e-5)


@pytest.mark.parametrize("name", ALL)
def test_real_minilm_packed_equals_padded(minilm_states, name: str) -> None:
    torch.manual_seed(0)
    hidden, mask = minilm_states
    pooler = glot.build_pooler(name, hidden.shape[-1]).eval()
    x, ptr = pack(hidden, mask)
    with torch.no_grad():
        assert torch.allclose(pooler(hidden, mask), pooler.forward_packed(x, ptr), atol=1e-5)
        assert torch.allclose(pooler(*left_pad(hidden, mask, extra=3)), pooler(hidden, mask), atol=1e-5)


def test_glot_k0_equals_adapool_with_same_scorer() -> None:
    torch.manual_seed(0)
    ada = glot.build_pooler("adapool", 12)
    k0 = glot.build_pooler("glot", 12, num_layers=0, readout_hidden=128)
    k0.load_state_dict(ada.state_dict())
    hidden, mask = random_batch(seed=3)
    assert torch.allclose(k0(hidden, mask), ada(hidden, mask), atol=1e-6)


def test_simple_poolers_match_definitions() -> None:
    hidden, mask = random_batch(seed=4)
    lengths = mask.sum(1)
    rows = range(hidden.shape[0])
    cls = torch.stack([hidden[i, 0] for i in rows])
    eos = torch.stack([hidden[i, int(lengths[i]) - 1] for i in rows])
    mean = torch.stack([hidden[i, : int(lengths[i])].mean(0) for i in rows])
    mx = torch.stack([hidden[i, : int(lengths[i])].amax(0) for i in rows])
    for name, want in [("cls", cls), ("eos", eos), ("mean", mean), ("max", mx)]:
        assert torch.allclose(glot.build_pooler(name, 12)(hidden, mask), want, atol=1e-6), name
    # EOS with left padding still picks the last real token
    assert torch.allclose(glot.build_pooler("eos", 12)(*left_pad(hidden, mask, 2)), eos, atol=1e-6)
    assert torch.allclose(glot.build_pooler("cls", 12)(*left_pad(hidden, mask, 2)), cls, atol=1e-6)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("case", ["one_token", "batch_of_one", "zeros", "tau_one", "identical_tokens"])
def test_degenerate_inputs_are_finite(name: str, case: str) -> None:
    torch.manual_seed(0)
    opts = dict(SMALL.get(name, {}))
    if case == "tau_one" and name == "glot":
        opts["tau"] = 1.0
    pooler = glot.build_pooler(name, 12, **opts)
    hidden, mask = random_batch(seed=5)
    if case == "one_token":
        mask = torch.zeros_like(mask)
        mask[:, 0] = True
    elif case == "batch_of_one":
        hidden, mask = hidden[:1], mask[:1]
    elif case == "zeros":
        hidden = torch.zeros_like(hidden)
    elif case == "identical_tokens":
        hidden = hidden[:, :1].expand_as(hidden).contiguous()
    out = pooler(hidden, mask)
    assert torch.isfinite(out).all()
    if not out.requires_grad:  # parameter-free poolers: nothing to differentiate
        return
    out.sum().backward()  # gradients must be finite too
    assert all(torch.isfinite(p.grad).all() for p in pooler.parameters() if p.grad is not None)


#: (pooler, parameter) pairs whose gradient is zero by the math on the inputs below, each with its reason.
#: Empty: the readout's score bias (it cancels in the softmax) was dropped from the model instead.
ZERO_BY_MATH: dict[tuple[str, str], str] = {}


@pytest.mark.parametrize(
    "name, opts",
    [
        ("glot", {}),
        ("glot", {"conv": "gine", "weighted": True}),
        ("glot", {"conv": "gatv2", "heads": 2}),
        ("glot", {"conv": "gcn", "weighted": True, "jk": "mean", "tau": 0.0}),  # GCN needs weights >= 0
        ("mlp", {"jk": "max"}),
        ("adapool", {}),
        ("transformer", {"num_layers": 2, "jk": "max"}),
        ("pma", {"num_layers": 2}),
        ("learned-graph", {"tau": -1.0}),
        ("learned-graph", {"conv": "gcn", "tau": 0.0, "jk": "mean"}),
        ("mean", {"mix_layers": 3}),
        ("glot", {"mix_layers": 2}),
    ],
)
def test_gradients_reach_every_parameter(name: str, opts: dict) -> None:
    torch.manual_seed(0)
    # tau = -1: complete token graphs, so attention runs over several neighbours (over a lone self-loop its
    # softmax is 1 whatever the parameters, and att_src / att_dst get exactly zero gradient: see next test)
    pooler = (
        glot.build_pooler(name, 12, hidden_dim=16, **{"tau": -1.0, **opts})
        if name == "glot"
        else (glot.build_pooler(name, 12, **{**SMALL.get(name, {}), **opts}))
    )
    # the scorer starts at zero (uniform weights = mean pooling), where W's gradient is zero by the math:
    # give it a random value so that the wiring of every parameter is tested
    if hasattr(pooler, "readout"):  # pma and the parameter-free poolers have no attention readout
        torch.nn.init.normal_(pooler.readout.score.weight)
    hidden, mask = random_batch(seed=6)
    assert int(mask.sum(1).max()) > 1  # at least one sentence with several tokens
    (pooler(hidden, mask) ** 2).sum().backward()
    for pname, p in pooler.named_parameters():
        if (name, pname) in ZERO_BY_MATH:
            continue
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


def test_gat_attention_over_only_self_loops_has_zero_gradient_by_the_math() -> None:
    """Why the test above uses complete graphs: a softmax over one neighbour is exactly 1."""
    torch.manual_seed(0)
    pooler = glot.build_pooler("glot", 12, hidden_dim=16, tau=1.0)  # tau = 1: self-loops only
    hidden, mask = random_batch(seed=6)
    (pooler(hidden, mask) ** 2).sum().backward()
    att = {n: p.grad for n, p in pooler.named_parameters() if n.endswith(("att_src", "att_dst"))}
    assert len(att) == 4 and all(g is None or not g.any() for g in att.values())


def test_readout_has_no_score_bias_because_a_constant_cancels_in_the_softmax() -> None:
    torch.manual_seed(0)
    readout = glot.build_pooler("adapool", 12).readout
    assert readout.score.bias is None
    x, ptr = pack(*random_batch(seed=6))
    m = readout.score(readout.proj(x).tanh()).squeeze(-1)
    from torch_geometric.utils import softmax

    torch.testing.assert_close(softmax(m + 3.7, ptr=ptr), softmax(m, ptr=ptr))


@pytest.mark.parametrize("name", ["adapool", "mlp", "glot"])
def test_old_checkpoint_with_score_bias_loads_and_gives_same_outputs(tmp_path, name: str) -> None:
    """Checkpoints written before the dead bias was dropped hold ``readout.score.bias``: they still load."""
    from glot.io import atomic_save_tensors, load_tensors

    torch.manual_seed(0)
    pooler = glot.build_pooler(name, 12, **SMALL.get(name, {})).eval()
    pooler.save_pretrained(tmp_path)
    old_state = {**load_tensors(tmp_path / "model.safetensors"), "readout.score.bias": torch.tensor([0.37])}
    atomic_save_tensors(tmp_path / "model.safetensors", old_state)  # what an older glot wrote
    hidden, mask = random_batch(seed=7)
    with torch.no_grad():
        want = pooler(hidden, mask)
        torch.testing.assert_close(glot.load_pooler(tmp_path).eval()(hidden, mask), want)
        fresh = glot.build_pooler(name, 12, **SMALL.get(name, {})).eval()
        fresh.load_state_dict(old_state, strict=True)  # every other load path (runs, hub, ST) too
        torch.testing.assert_close(fresh(hidden, mask), want)
    assert "readout.score.bias" in old_state  # the caller's dict is not modified


@pytest.mark.parametrize("name", ALL)
def test_save_load_round_trip(tmp_path, name: str) -> None:
    torch.manual_seed(0)
    pooler = glot.build_pooler(name, 12, **SMALL.get(name, {})).eval()
    pooler.save_pretrained(tmp_path / name)
    loaded = glot.load_pooler(tmp_path / name).eval()
    assert type(loaded) is type(pooler) and loaded.config == pooler.config
    hidden, mask = random_batch(seed=7)
    assert torch.equal(loaded(hidden, mask), pooler(hidden, mask))
    assert sorted(p.name for p in (tmp_path / name).iterdir()) == ["model.safetensors", "pooler_config.json"]


def test_load_rejects_mismatched_weights(tmp_path) -> None:
    from glot.io import atomic_save_tensors

    glot.build_pooler("glot", 12, hidden_dim=16).save_pretrained(tmp_path / "a")
    glot.build_pooler("glot", 12, hidden_dim=8).save_pretrained(tmp_path / "b")
    (tmp_path / "b" / "model.safetensors").replace(tmp_path / "a" / "model.safetensors")
    with pytest.raises(
        glot.errors.InputError, match=r"a/model.safetensors does not fit its config \(tensor sh"
    ):
        glot.load_pooler(tmp_path / "a")
    state = glot.build_pooler("glot", 12, hidden_dim=16).state_dict()
    del state["gnn.convs.1.bias"]
    atomic_save_tensors(tmp_path / "a" / "model.safetensors", state)  # right shapes, one tensor missing
    with pytest.raises(glot.errors.InputError, match=r"config \(missing \['gnn.convs.1.bias'\], unexp"):
        glot.load_pooler(tmp_path / "a")


@pytest.mark.parametrize("damage", ["truncated", "pickled", "empty"])
def test_load_names_a_damaged_weight_file(tmp_path, damage: str) -> None:
    glot.build_pooler("glot", 12, hidden_dim=8).save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    if damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:-100])
    elif damage == "pickled":
        torch.save({"w": torch.ones(3)}, weights)
    else:
        weights.write_bytes(b"")
    with pytest.raises(
        glot.errors.InputError, match="model.safetensors is not a valid safetensors file"
    ) as info:
        glot.load_pooler(tmp_path)
    assert str(weights) in str(info.value) and "\n" not in str(info.value)


def test_registry_names_and_errors() -> None:
    paper = {"cls", "eos", "mean", "max", "adapool", "mlp", "glot"}
    assert set(ALL) == paper | {"transformer", "pma", "learned-graph"}  # + glot.pooling.zoo
    with pytest.raises(
        ValueError, match="valid names: adapool, cls, eos, glot, learned-graph, max, mean, mlp"
    ):
        glot.build_pooler("attention", 12)
    with pytest.raises(ValueError, match="does not take option"):
        glot.build_pooler("mean", 12, tau=0.5)


def test_defaults_are_the_papers_glue_settings() -> None:
    pooler = glot.build_pooler("glot", 768)
    cfg = pooler.config
    assert (cfg.gnn.conv, cfg.gnn.num_layers, cfg.gnn.hidden_dim, cfg.gnn.jk, cfg.graph.tau) == (
        "gat",
        2,
        256,
        "cat",
        0.8,
    )
    assert pooler.out_dim == 768 + 2 * 256
    assert pooler.readout.hidden == (768 + 512) // 2
    assert glot.build_pooler("adapool", 768).readout.hidden == 128


@pytest.mark.parametrize(
    "opts, field",
    [
        ({"tau": 2.0}, "tau"),
        ({"num_layers": -1}, "num_layers"),
        ({"conv": "sage"}, "conv"),
        ({"jk": "lstm"}, "jk"),
        ({"hidden_dim": 0}, "hidden_dim"),
    ],
)
def test_invalid_config_names_field_value_and_range(opts: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"{field}=.*expected"):
        glot.build_pooler("glot", 12, **opts)


def test_invalid_input_dim_and_shapes() -> None:
    with pytest.raises(ValueError, match="input_dim"):
        glot.build_pooler("glot", 0)
    pooler = glot.build_pooler("mean", 12)
    with pytest.raises(ValueError, match=r"attention_mask must be \(B, L\) = \(2, 3\)"):
        pooler(torch.randn(2, 3, 12), torch.ones(2, 4))
    with pytest.raises(ValueError, match="width D = 5"):
        pooler(torch.randn(2, 3, 5), torch.ones(2, 3))
    with pytest.raises(ValueError, match="no real token"):
        pooler(torch.randn(2, 3, 12), torch.tensor([[1, 1, 0], [0, 0, 0]]))


def test_token_weights_sum_to_one_per_sentence() -> None:
    hidden, mask = random_batch(seed=8)
    x, ptr = pack(hidden, mask)
    for name in ("cls", "eos", "mean", "adapool", "mlp", "glot", "transformer", "learned-graph"):
        w = glot.build_pooler(name, 12, **SMALL.get(name, {})).token_weights(x, ptr)
        sums = torch.stack([w[ptr[i] : ptr[i + 1]].sum() for i in range(ptr.numel() - 1)])
        assert torch.allclose(sums, torch.ones_like(sums), atol=1e-5), name


def test_low_precision_cache_input_is_accepted() -> None:
    hidden, mask = random_batch(seed=9)
    pooler = glot.build_pooler("glot", 12, **SMALL["glot"])
    x, ptr = pack(hidden, mask)
    out = pooler.forward_packed(x.to(torch.bfloat16), ptr)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


#: (pooler, options, GAT path): every pooler, every GNN layer kind weighted or not, both GAT paths.
CAST_CASES = (
    [(name, {}, "auto") for name in ALL]
    + [(name, {}, path) for name in ("glot", "learned-graph") for path in ("dense", "edge")]
    + [
        ("glot", {"conv": conv, "weighted": weighted, "tau": 0.0 if conv == "gcn" else 0.2, "jk": jk}, "auto")
        for conv in ("gat", "gatv2", "gcn", "gin", "gine")
        for weighted in (False, True)
        for jk in ("cat", "max")
    ]
)


@pytest.mark.parametrize(("name", "opts", "path"), CAST_CASES)
def test_a_pooler_cast_to_bf16_pools_in_bf16_close_to_fp32(name: str, opts: dict, path: str) -> None:
    """``pooler.to(torch.bfloat16)`` (what sentence-transformers does to every module after a bf16 Transformer)
    runs every layer in bf16: no op may hand the next one fp32 (the sparse GAT aggregation and GCN's fp32 edge
    weights once did). bf16 keeps 8 bits of mantissa, so the outputs agree with fp32 to a few 1e-3 of their size."""
    hidden, mask = random_batch(seed=3, lmax=24)
    pooler = glot.build_pooler(name, 12, **(SMALL.get(name, {}) | opts)).eval()
    if path != "auto":
        pooler.gnn.dense_choice = path
    with torch.no_grad():
        expected = pooler(hidden, mask)
        got = pooler.to(torch.bfloat16)(hidden.to(torch.bfloat16), mask)
    parameter_free = next(pooler.parameters(), None) is None  # cls, eos, mean, max pool in fp32
    assert got.dtype == (torch.float32 if parameter_free else torch.bfloat16), got.dtype
    assert got.shape == expected.shape and torch.isfinite(got).all()
    err = float((got.float() - expected).abs().max() / (1 + expected.abs().max()))
    assert err < 2e-2, (name, opts, path, err)


#: 101 tokens: padded_count rounds them to 104, so pool() appends three one-token sentences
PAD_LENGTHS = [40, 1, 37, 23]


#: every pooler, and both GAT paths of the two graph poolers
PAD_CASES = [(name, "auto") for name in ALL] + [
    (name, path) for name in ("glot", "learned-graph") for path in ("dense", "edge")
]


@pytest.mark.parametrize(("name", "path"), PAD_CASES)
def test_bf16_pooling_pads_the_token_count_and_returns_the_unpadded_vectors(name, path, monkeypatch) -> None:
    """Under bf16 on a CPU, pool() rounds the batch's token count up with one-token zero sentences (oneDNN
    sets its bf16 kernels up per matmul shape) and drops their outputs: every real sentence's vector, and its
    gradient, is the unpadded batch's, up to bf16 rounding."""
    from glot.training import precision

    lengths = torch.tensor(PAD_LENGTHS)
    x = torch.randn(int(lengths.sum()), 12, generator=torch.Generator().manual_seed(5))
    ptr = lengths_to_ptr(lengths)
    assert packing.padded_count(x.shape[0]) == 104
    torch.manual_seed(0)
    pooler = glot.build_pooler(name, 12, **SMALL.get(name, {}))
    if path != "auto":
        pooler.gnn.dense_choice = path
    seen: list[int] = []
    real = pooler.forward_packed
    monkeypatch.setattr(
        pooler, "forward_packed", lambda x, ptr, **k: seen.append(x.shape[0]) or real(x, ptr, **k)
    )
    params = [p for p in pooler.parameters() if p.requires_grad]
    got = precision.pool(pooler, x, ptr, "bf16")
    with precision.autocast("bf16"):
        expected = real(x, ptr).float()
    assert seen == [104] and got.shape == expected.shape == (len(PAD_LENGTHS), pooler.out_dim)
    err = float((got - expected).detach().abs().max() / (1 + expected.detach().abs().max()))
    assert err < 1e-2, (name, path, err)
    if params:
        weights = torch.linspace(-1, 1, got.numel()).view_as(got)
        grads = torch.autograd.grad((got * weights).sum(), params, allow_unused=True)
        grads_ref = torch.autograd.grad((expected * weights).sum(), params, allow_unused=True)
        for a, b in zip(grads, grads_ref, strict=True):
            if a is None or b is None:
                assert a is None and b is None
                continue
            assert float((a - b).abs().max() / (1 + b.abs().max())) < 2e-2, name


@pytest.mark.parametrize("path", ["dense", "edge"])
def test_bf16_padding_keeps_a_prebuilt_graph_and_its_vectors(path) -> None:
    """A batch carrying its prebuilt graph (a cache's, as training passes it) is padded with the graph's ptr
    extended and its edges as they are: the vectors equal the unpadded batch on the same graph."""
    from glot.pooling.graph import build_token_graph
    from glot.pooling.graph_cache import BatchGraph
    from glot.training import precision

    lengths = torch.tensor(PAD_LENGTHS)
    x = torch.randn(int(lengths.sum()), 12, generator=torch.Generator().manual_seed(6))
    ptr = lengths_to_ptr(lengths)
    torch.manual_seed(0)
    pooler = glot.build_pooler("glot", 12, **SMALL["glot"], normalize="none")
    pooler.gnn.dense_choice = path
    graph = BatchGraph(build_token_graph(x, ptr, pooler.config.graph), ptr, pooler.config.graph)
    got = precision.pool(pooler, x, ptr, "bf16", graph)
    with torch.no_grad(), precision.autocast("bf16"):
        expected = pooler.forward_packed(x, ptr, graph=graph).float()
        on_the_fly = pooler.forward_packed(x, ptr).float()
    assert got.shape == expected.shape == (len(PAD_LENGTHS), pooler.out_dim)
    scale = 1 + float(expected.abs().max())
    assert float((got.detach() - expected).abs().max()) < 1e-2 * scale
    assert float((on_the_fly - expected).abs().max()) < 1e-2 * scale  # the graph is the one it would build


def test_additive_or_non_binary_masks_are_refused_binary_float_masks_work() -> None:
    """An HF additive mask (0 keep, -1e4 pad) read as bool would swap real tokens and padding."""
    hidden, mask = random_batch(seed=10)
    pooler = glot.build_pooler("mean", 12)
    additive = (~mask).float() * -1e4
    with pytest.raises(glot.errors.InputError, match=r"not only 0/1; pass a boolean mask.*mask == 0"):
        pooler(hidden, additive)
    with pytest.raises(glot.errors.InputError, match="not only 0/1"):
        pooler(hidden, mask.long() * 2)
    assert torch.equal(pooler(hidden, additive == 0), pooler(hidden, mask))
    assert torch.equal(pooler(hidden, mask.float()), pooler(hidden, mask))
    assert torch.equal(pooler(hidden, mask.long()), pooler(hidden, mask))


# ---------------------------------------------------------------------------------------------- declared once
def test_each_class_declares_its_options_and_defaults_and_build_pooler_follows() -> None:
    expected = {  # what each pooler's saved config holds by default (K = num_layers)
        "cls": ("gat", 0, None), "eos": ("gat", 0, None), "mean": ("gat", 0, None), "max": ("gat", 0, None),
        "adapool": ("gat", 0, 128), "mlp": ("mlp", 2, None), "glot": ("gat", 2, None),
        "transformer": ("gat", 1, None), "pma": ("gat", 1, None), "learned-graph": ("gat", 2, None),
    }  # fmt: skip
    for name, cls in glot.POOLERS.items():
        cfg = glot.build_pooler(name, 12).config
        assert (cfg.gnn.conv, cfg.gnn.num_layers, cfg.readout.readout_hidden) == expected[name], name
        assert cfg.sections == cls.settings() and cls.name == name
    assert glot.POOLERS["adapool"].options == ("normalize", "readout_hidden", "mix_layers")  # all: mix_layers
    assert glot.POOLERS["mlp"].options == (
        "normalize", "num_layers", "hidden_dim", "jk", "readout_hidden", "mix_layers"
    )  # fmt: skip
    assert set(glot.POOLERS["glot"].options) == set(OPTION_SECTION) - {"rank"}  # rank: learned-graph only
    assert (
        glot.build_pooler("adapool", 12, readout_hidden=64).readout.hidden == 64
    )  # an option over a default


def test_a_config_that_sets_a_field_its_pooler_ignores_is_refused(tmp_path) -> None:
    cfg = glot.build_pooler("adapool", 12).config
    cfg.gnn.num_layers = 2  # adapool has no GNN: this would be silently ignored
    with pytest.raises(
        glot.errors.InputError, match=r"'adapool' does not take num_layers=2 \(it uses 0\)"
    ) as info:
        from_config(cfg)
    assert "its options are: normalize, readout_hidden" in str(info.value) and "\n" not in str(info.value)
    glot.build_pooler("adapool", 12).save_pretrained(tmp_path)
    meta = json.loads((tmp_path / "pooler_config.json").read_text())
    meta["pooler"]["graph"]["tau"] = 0.3
    (tmp_path / "pooler_config.json").write_text(json.dumps(meta))
    with pytest.raises(
        glot.errors.InputError, match=r"pooler_config.json: pooler 'adapool' does not take tau=0.3"
    ):
        glot.load_pooler(tmp_path)


def test_the_registry_decorator_checks_what_a_new_pooler_declares() -> None:
    class Sum(Pooler):
        name = "sum-test"

        def _pool(self, x: torch.Tensor, ptr: torch.Tensor) -> torch.Tensor:
            return torch.stack([x[ptr[i] : ptr[i + 1]].sum(0) for i in range(ptr.numel() - 1)])

    class Bad(Sum):
        name = "bad-test"
        options = ("threshold",)

    try:
        register_pooler(Sum)
        out = glot.build_pooler("sum-test", 3)(torch.ones(2, 4, 3), torch.ones(2, 4, dtype=torch.bool))
        assert out.tolist() == [[4.0, 4.0, 4.0]] * 2
        with pytest.raises(glot.errors.InputError, match="needs a new, non-empty name"):
            register_pooler(Sum)
        with pytest.raises(
            glot.errors.InputError, match=r"names option\(s\) \['threshold'\] that are no config"
        ):
            register_pooler(Bad)
    finally:
        glot.POOLERS.pop("sum-test", None)
    assert "bad-test" not in glot.POOLERS


def test_the_cli_list_of_pooler_names_is_the_registry() -> None:
    from glot.pooling.config import POOLER_NAMES

    assert tuple(glot.POOLERS) == POOLER_NAMES  # glot train --help names exactly the registered poolers
