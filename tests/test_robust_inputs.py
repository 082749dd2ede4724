"""Backbone-robust inputs: learned poolers start as mean pooling, standardisation statistics travel with the
pooler, tau="auto" picks the threshold of a target edge density on the (normalised) training states."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

import glot
from glot.cli import main
from glot.errors import InputError
from glot.pooling.normalize import edge_density, fit_pooler, pair_cosines
from glot.pooling.packing import pack
from glot.pooling.readout import mean_readout

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import make_tiny_bert  # noqa: E402

LEARNED = {"adapool": {}, "mlp": {"hidden_dim": 16}, "glot": {"hidden_dim": 16, "tau": 0.3}}


def decoder_like(seed: int = 0, b: int = 12, lmax: int = 9, d: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Packed states with a "massive activation": one dimension of every token near 50, the rest N(0, 1)."""
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(b, lmax, d, generator=g)
    hidden[..., 0] += 50.0 + torch.randn(b, lmax, generator=g)
    lengths = torch.randint(3, lmax + 1, (b,), generator=g)
    return pack(hidden, torch.arange(lmax)[None, :] < lengths[:, None])


@pytest.mark.parametrize("name", sorted(LEARNED))
@pytest.mark.parametrize("normalize", ["none", "standardize", "layernorm"])
def test_a_learned_pooler_starts_as_mean_pooling(name: str, normalize: str) -> None:
    torch.manual_seed(0)
    pooler = glot.build_pooler(name, 16, normalize=normalize, **LEARNED[name])
    x, ptr = decoder_like()
    fit_pooler(pooler, x, ptr)
    lengths = (ptr[1:] - ptr[:-1]).float()
    weights = pooler.token_weights(x, ptr)
    assert torch.allclose(weights, torch.repeat_interleave(1.0 / lengths, ptr[1:] - ptr[:-1]), atol=1e-6)
    z = pooler.forward_packed(x, ptr)
    # the readout's input starts with the (normalised) states themselves (K = 0, or jumping knowledge cat)
    assert torch.allclose(z[:, :16], mean_readout(pooler.normalizer(x), ptr), atol=1e-4)
    if normalize == "none" and name == "adapool":
        assert torch.allclose(z, glot.build_pooler("mean", 16).forward_packed(x, ptr), atol=1e-5)


def test_standardize_statistics_are_the_training_tokens_and_travel_with_the_pooler(tmp_path: Path) -> None:
    torch.manual_seed(0)
    pooler = glot.build_pooler("glot", 16, normalize="standardize", hidden_dim=8, tau="auto")
    x, ptr = decoder_like()
    before = pooler.normalizer(x)
    assert torch.equal(before, x)  # unfitted: the identity
    fit_pooler(pooler, x, ptr)
    assert torch.allclose(pooler.normalizer.mean, x.mean(0), atol=1e-4)
    assert torch.allclose(pooler.normalizer.std, x.std(0, unbiased=False), atol=1e-4)
    assert {"normalizer.mean", "normalizer.std"} <= set(pooler.state_dict())
    pooler.save_pretrained(tmp_path / "p")
    loaded = glot.load_pooler(tmp_path / "p")
    assert torch.equal(loaded.normalizer.std, pooler.normalizer.std)
    assert loaded.config.graph.tau == pooler.config.graph.tau != "auto"
    assert torch.allclose(
        loaded.eval().forward_packed(x, ptr), pooler.eval().forward_packed(x, ptr), atol=1e-6
    )
    saved = json.loads((tmp_path / "p" / "pooler_config.json").read_text())
    assert saved["pooler"]["input"] == {"normalize": "standardize"}
    assert saved["input_fit"]["tau"] == pooler.config.graph.tau and saved["input_fit"]["tau_auto"] is True


def test_a_config_from_before_the_input_section_loads_without_normalisation(tmp_path: Path) -> None:
    pooler = glot.build_pooler("adapool", 12, normalize="none")  # what glot saved then: no statistics
    pooler.save_pretrained(tmp_path)
    meta = json.loads((tmp_path / "pooler_config.json").read_text())
    del meta["pooler"]["input"]
    (tmp_path / "pooler_config.json").write_text(json.dumps(meta))
    assert glot.load_pooler(tmp_path).config.input.normalize == "none"


def test_tau_auto_hits_the_target_density_on_the_normalised_states() -> None:
    x, ptr = decoder_like()
    assert edge_density(pair_cosines(x, ptr), 0.6) > 0.99  # the massive dimension joins every pair
    for normalize, density in (("none", 0.05), ("standardize", 0.05), ("standardize", 0.2)):
        pooler = glot.build_pooler("glot", 16, normalize=normalize, tau="auto", edge_density=density)
        report = fit_pooler(pooler, x, ptr)
        tau = pooler.config.graph.tau
        assert isinstance(tau, float) and report["tau"] == tau and report["target_edge_density"] == density
        measured = edge_density(pair_cosines(pooler.normalizer(x), ptr), tau)
        assert abs(measured - density) < 0.01 and abs(report["edge_density"] - measured) < 1e-9
        edges = pooler.build_graph(x, ptr).edge_index
        off_diagonal = int((edges[0] != edges[1]).sum())
        pairs = int(((ptr[1:] - ptr[:-1]) * (ptr[1:] - ptr[:-1] - 1)).sum())
        assert abs(off_diagonal / pairs - density) < 0.01  # the pooler's own graph has that density
    raw = glot.build_pooler("glot", 16, normalize="none", tau="auto")
    fit_pooler(raw, x, ptr)
    assert raw.config.graph.tau > 0.99  # on raw states only cosines near 1 keep the graph sparse


def test_an_explicit_tau_is_kept_and_an_unfitted_auto_is_a_one_line_error() -> None:
    x, ptr = decoder_like()
    pooler = glot.build_pooler("glot", 16, tau=0.6, normalize="standardize", hidden_dim=8)
    report = fit_pooler(pooler, x, ptr)
    assert pooler.config.graph.tau == 0.6 and report["tau_auto"] is False
    with pytest.raises(InputError, match="tau is 'auto' and was never fitted") as info:
        glot.build_pooler("glot", 16, tau="auto").forward_packed(x, ptr)
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="edge_density"):
        glot.build_pooler("glot", 16, tau="auto", edge_density=1.5)


def test_glot_train_chooses_tau_prints_it_and_saves_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny = make_tiny_bert(tmp_path / "bert")
    out = tmp_path / "run"
    code = main([
        "train", "--model", str(tiny), "--task", "stress", "--task-option", "seq_len=16", "--n-train", "40",
        "--n-eval", "16", "--max-length", "40", "--cache-dir", str(tmp_path / "cache"), "--no-progress",
        "--pooler", "glot", "--hidden-dim", "8", "--epochs", "1", "--out", str(out),
    ])  # fmt: skip
    assert code == 0
    text = " ".join(capsys.readouterr().out.split())
    metrics = json.loads((out / "seed-0" / "metrics.json").read_text())
    fit = metrics["input_fit"]
    saved = json.loads((out / "seed-0" / "pooler" / "pooler_config.json").read_text())
    assert saved["pooler"]["graph"]["tau"] == fit["tau"] and fit["tau_auto"] is True
    assert abs(fit["edge_density"] - 0.05) < 0.02
    assert f"tau auto -> {fit['tau']:g}" in text and "n train 36 / val 4 / eval 16" in text
    run = json.loads((out / "seed-0" / "run_config.json").read_text())
    assert run["train"]["pooler_options"]["graph"]["tau"] == "auto"  # the run asked for auto


ZOO_SMALL = {"transformer": {"hidden_dim": 8, "heads": 2}, "pma": {"hidden_dim": 8, "heads": 2},
             "learned-graph": {"hidden_dim": 8, "rank": 4}}  # fmt: skip


@pytest.mark.parametrize("name", [*sorted(LEARNED), *sorted(ZOO_SMALL)])
def test_every_learned_head_standardises_by_default_and_its_statistics_travel(
    name: str, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    pooler = glot.build_pooler(name, 16, **{**LEARNED, **ZOO_SMALL}[name])
    assert pooler.config.input.normalize == "standardize"
    x, ptr = decoder_like()
    fit_pooler(pooler, x, ptr)
    assert torch.allclose(pooler.normalizer.mean, x.mean(0), atol=1e-4)
    pooler.save_pretrained(tmp_path / "p")
    loaded = glot.load_pooler(tmp_path / "p")
    assert torch.equal(loaded.normalizer.std, pooler.normalizer.std)
    assert torch.allclose(
        loaded.eval().forward_packed(x, ptr), pooler.eval().forward_packed(x, ptr), atol=1e-5
    )


@pytest.mark.parametrize("name", sorted(ZOO_SMALL))
def test_a_zoo_head_saved_without_normalisation_still_loads_and_pools_the_same(
    name: str, tmp_path: Path
) -> None:
    # 0.3 saved these heads with normalize "none" and no statistics; such a folder keeps meaning what it meant
    torch.manual_seed(0)
    pooler = glot.build_pooler(name, 16, normalize="none", **ZOO_SMALL[name]).eval()
    pooler.save_pretrained(tmp_path)
    assert not any(k.startswith("normalizer.") for k in pooler.state_dict())
    loaded = glot.load_pooler(tmp_path).eval()
    assert loaded.config.input.normalize == "none"
    x, ptr = decoder_like()
    assert torch.allclose(loaded.forward_packed(x, ptr), pooler.forward_packed(x, ptr), atol=1e-6)
