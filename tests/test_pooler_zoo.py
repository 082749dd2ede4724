"""Heads beyond the paper (glot.pooling.zoo): each against a naive one-sentence-at-a-time reference (no padding
anywhere), their sizes, the learned graph's soft edges and gradient, and the layer mix under any head.

The shared contract (packed == padded, padding / order invariance, save/load, degenerate inputs, gradients)
runs over every registered pooler in tests/test_poolers.py, these heads included."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import glot
from glot.errors import InputError
from glot.pooling.packing import pack
from glot.pooling.zoo import learned_graph


def batch(seed: int = 0, b: int = 5, lmax: int = 9, d: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([lmax, 1, 4, lmax - 1, 2][:b])
    return torch.randn(b, lmax, d, generator=g), torch.arange(lmax)[None, :] < lengths[:, None]


def sentences(hidden: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
    return [hidden[i][mask[i]] for i in range(hidden.shape[0])]


def test_transformer_equals_each_sentence_run_alone() -> None:
    torch.manual_seed(0)
    pooler = glot.build_pooler("transformer", 12, hidden_dim=16, num_layers=2).eval()
    hidden, mask = batch()
    want = []
    with torch.no_grad():
        for xs in sentences(hidden, mask):  # one sentence, no padding, no mask
            h, layers = pooler.encoder.proj(xs)[None], []
            for layer in pooler.encoder.layers:
                h = layer(h)
                layers.append(h[0])
            u = torch.cat([xs, *layers], dim=-1)
            want.append((pooler.readout.weights(u, torch.tensor([0, len(xs)]))[:, None] * u).sum(0))
        torch.testing.assert_close(pooler(hidden, mask), torch.stack(want), atol=1e-5, rtol=1e-5)


def test_pma_equals_pygs_set_transformer_on_each_sentence_alone() -> None:
    torch.manual_seed(0)
    pooler = glot.build_pooler("pma", 12, hidden_dim=16, num_layers=2).eval()
    hidden, mask = batch(seed=1)
    with torch.no_grad():
        want = [pooler.head.aggr(pooler.head.proj(xs))[0] for xs in sentences(hidden, mask)]
        torch.testing.assert_close(pooler(hidden, mask), torch.stack(want), atol=1e-5, rtol=1e-5)


def naive_learned_graph(z: torch.Tensor, tau: float) -> dict[tuple[int, int], float]:
    zn = F.normalize(z, dim=-1)
    sim = zn @ zn.T
    edges = {(i, i): 1.0 for i in range(len(z))}
    edges.update(
        {(j, i): float((sim[i, j] - tau) / (1 - tau)) for i in range(len(z)) for j in range(len(z))
         if i != j and sim[i, j] > tau}
    )  # fmt: skip
    return edges


def test_learned_graph_edges_are_the_thresholded_cosines_with_soft_weights() -> None:
    hidden, mask = batch(seed=2, d=6)
    x, ptr = pack(hidden, mask)
    graph = learned_graph(x, ptr, tau=0.3, self_loops=True)
    got = {
        (int(s), int(d)): float(w) for (s, d), w in zip(graph.edge_index.T, graph.edge_weight, strict=True)
    }
    want: dict[tuple[int, int], float] = {}
    for b in range(len(ptr) - 1):
        lo = int(ptr[b])
        for (s, d), w in naive_learned_graph(x[lo : int(ptr[b + 1])], 0.3).items():
            want[(s + lo, d + lo)] = w
    assert got.keys() == want.keys() and len(got) == graph.edge_index.shape[1]
    assert all(abs(got[k] - want[k]) < 1e-5 for k in want)
    assert all(0.0 < w <= 1.0 + 1e-6 for w in got.values())


def test_learned_graph_trains_its_projection_and_refuses_weightless_layers() -> None:
    torch.manual_seed(0)
    pooler = glot.build_pooler("learned-graph", 12, hidden_dim=16, rank=4, tau=0.0)
    assert pooler.edge_proj.weight.shape == (4, 12) and pooler.config.graph.weighted
    hidden, mask = batch(seed=3)
    (pooler(hidden, mask) ** 2).sum().backward()
    assert pooler.edge_proj.weight.grad is not None and pooler.edge_proj.weight.grad.abs().sum() > 0
    with pytest.raises(InputError, match="conv='gin' ignores edge weights.*use one of gat, gatv2, gcn, gine"):
        glot.build_pooler("learned-graph", 12, conv="gin")
    with pytest.raises(InputError, match=r"does not take option\(s\) \[.weighted.\]"):
        glot.build_pooler("learned-graph", 12, weighted=False)
    with pytest.raises(InputError, match=r"'glot' does not take option\(s\) \['rank'\]"):
        glot.build_pooler("glot", 12, rank=8)


def test_heads_must_divide_the_width() -> None:
    for name in ("transformer", "pma"):
        with pytest.raises(InputError, match=rf"'{name}': hidden_dim=10 is not a multiple of heads=4"):
            glot.build_pooler(name, 12, hidden_dim=10)


def test_default_sizes_are_parameter_matched_to_glot_on_minilm() -> None:
    """D = 384 (MiniLM): pooler parameters at each head's defaults (the numbers the docs quote)."""
    counts = {
        n: glot.build_pooler(n, 384).num_parameters() for n in ("glot", "transformer", "pma", "learned-graph")
    }
    assert counts == {"glot": 567_680, "transformer": 570_312, "pma": 560_144, "learned-graph": 580_992}


@pytest.mark.parametrize("name", ["mean", "cls", "adapool", "glot", "transformer", "pma", "learned-graph"])
def test_layer_mix_starts_as_the_mean_of_the_layers_under_any_head(name: str, tmp_path) -> None:
    torch.manual_seed(0)
    opts = {"hidden_dim": 16} if name not in ("mean", "cls", "adapool") else {}
    single = glot.build_pooler(name, 12, **opts).eval()
    mixed = glot.build_pooler(name, 36, mix_layers=3, **opts).eval()
    mixed.load_state_dict({**single.state_dict(), "layer_mix.logits": torch.zeros(3)})
    layers = [batch(seed=s)[0] for s in (4, 5, 6)]
    mask = batch(seed=4)[1]
    with torch.no_grad():
        want = single(torch.stack(layers).mean(0), mask)
        torch.testing.assert_close(mixed(torch.cat(layers, dim=-1), mask), want, atol=1e-5, rtol=1e-5)
        mixed.layer_mix.logits.copy_(torch.tensor([0.0, 2.0, -1.0]))
        mixed.save_pretrained(tmp_path)
        loaded = glot.load_pooler(tmp_path).eval()
        assert loaded.config.gnn.mix_layers == 3
        assert torch.equal(loaded(torch.cat(layers, -1), mask), mixed(torch.cat(layers, -1), mask))
    assert mixed.num_parameters() == single.num_parameters() + 3


def test_layer_mix_width_errors_are_one_line() -> None:
    with pytest.raises(InputError, match="input_dim=13 is not a multiple of mix_layers=3"):
        glot.build_pooler("mean", 13, mix_layers=3)
    with pytest.raises(InputError, match="mix_layers=0 is invalid"):
        glot.build_pooler("mean", 12, mix_layers=0)
    with pytest.raises(InputError, match="width D = 12.*input_dim = 36"):
        glot.build_pooler("mean", 36, mix_layers=3)(*batch())


# ---------------------------------------------------------------------------------------------- stacked layers
def test_a_backbone_stacks_several_layers_and_keys_the_cache_by_them(tmp_path) -> None:
    from glot.backbones.frozen import FrozenBackbone
    from glot.cache.key import cache_key
    from tiny_models import make_tiny_bert

    path = make_tiny_bert(tmp_path / "bert")
    one, two = (
        FrozenBackbone.from_pretrained(str(path), dtype="float32", layer=lay) for lay in (-1, [1, -1])
    )
    assert (one.hidden_size, two.hidden_size) == (32, 64)
    assert one.fingerprint()["layer"] == "last" and two.fingerprint()["layer"] == [1, "last"]
    texts = ["the delivery contains keys", "not files"]
    assert cache_key(one.fingerprint(), texts).digest != cache_key(two.fingerprint(), texts).digest
    x1, ptr = one.embed_packed(texts)
    x2, _ = two.embed_packed(texts)
    mid = FrozenBackbone.from_pretrained(str(path), dtype="float32", layer=1).embed_packed(texts)[0]
    torch.testing.assert_close(x2, torch.cat([mid, x1], dim=-1))
    with pytest.raises(InputError, match="distinct hidden_states indices"):
        FrozenBackbone.from_pretrained(str(path), layer=[2, -1])  # both are the last layer


def test_train_with_stacked_layers_and_a_mix_end_to_end(tmp_path, capsys) -> None:
    import json

    import numpy as np

    from glot.cli import main
    from tiny_models import make_tiny_bert

    tiny = make_tiny_bert(tmp_path / "bert")
    base = ["train", "--model", str(tiny), "--task", "negation", "--task-option", "seq_len=12", "--n-train", "32",
            "--n-eval", "8", "--max-length", "40", "--epochs", "1", "--pooler", "adapool",
            "--cache-dir", str(tmp_path / "cache"), "--no-progress"]  # fmt: skip
    assert main([*base, "--layer", "1,2", "--mix-layers", "2", "--out", str(tmp_path / "run")]) == 0
    saved = json.loads((tmp_path / "run" / "seed-0" / "pooler" / "pooler_config.json").read_text())["pooler"]
    assert (saved["input_dim"], saved["gnn"]["mix_layers"]) == (64, 2)
    pooler = glot.load_pooler(tmp_path / "run" / "seed-0" / "pooler")
    assert pooler.layer_mix is not None and pooler.out_dim == 32
    texts = tmp_path / "texts.txt"
    texts.write_text("never chairs keys\nkeys not lamps\n")
    out = tmp_path / "emb.npy"
    assert main(["encode", str(texts), "--run", str(tmp_path / "run"), "-o", str(out), "--no-progress"]) == 0
    emb = np.load(out)
    assert emb.shape == (2, 32) and np.isfinite(emb).all()  # the run's backbone came back with both layers
    capsys.readouterr()
    assert main([*base, "--mix-layers", "2", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mix_layers=2 but the cached states stack 1 layer(s)" in err[0]


@pytest.mark.parametrize("name", ["adapool", "mlp", "glot", "transformer", "pma", "learned-graph"])
def test_every_learned_head_pools_and_trains_under_bf16_autocast(name: str) -> None:
    # head_dtype bf16 (the default where bf16 is native) runs the pooler inside CPU autocast: the transformer and
    # PMA heads used to stop there with an index_put dtype mismatch (bf16 layer outputs into fp32 buffers)
    from glot.training.precision import pool

    small = {
        "glot": {"hidden_dim": 16, "tau": 0.2},
        "learned-graph": {"hidden_dim": 16, "rank": 4, "tau": 0.2},
    }
    torch.manual_seed(0)
    pooler = glot.build_pooler(name, 12, **small.get(name, {} if name == "adapool" else {"hidden_dim": 16}))
    x, ptr = pack(*batch(seed=3))
    want = pool(pooler, x, ptr, "fp32")
    got = pool(pooler, x, ptr, "bf16")
    assert got.dtype == torch.float32 and got.shape == want.shape
    torch.testing.assert_close(got, want.detach(), atol=0.1, rtol=0.1)  # bf16 keeps ~3 significant digits
    got.pow(2).sum().backward()
    grads = [p.grad for p in pooler.parameters() if p.grad is not None]
    assert grads and all(bool(torch.isfinite(g).all()) for g in grads)


@pytest.mark.parametrize("name", ["glot", "learned-graph"])
def test_graph_heads_infer_under_bf16_autocast_on_the_edge_path(name: str) -> None:
    # validation / eval of a graph head under bf16 on the edge-list path (the sparse-product GAT; it was the
    # edge-chunked one, which learned-graph's dense graphs reached at eval batch 256 and crashed on)
    from glot.training.precision import pool

    torch.manual_seed(0)
    pooler = glot.build_pooler(name, 12, hidden_dim=16, tau=0.2, **({"rank": 4} if name != "glot" else {}))
    pooler.gnn.dense_max_tokens = 0  # the edge-list path
    x, ptr = pack(*batch(seed=3))
    with torch.no_grad():
        want, got = pool(pooler, x, ptr, "fp32"), pool(pooler, x, ptr, "bf16")
    torch.testing.assert_close(got, want, atol=0.1, rtol=0.1)
