"""Pictures: every plot writes a valid, non-blank PNG (and SVG); explain works on the packaged MiniLM."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from glot import viz

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SENTENCE = "the delivery contains not the keys"


def check_png(path: Path) -> None:
    """A real PNG of sensible size that is not blank."""
    assert path.suffix == ".png" and path.read_bytes()[:8] == PNG_SIGNATURE
    img = imread(path)
    h, w = img.shape[:2]
    assert 250 <= w <= 2500 and 250 <= h <= 2500, (w, h)
    assert float(img[..., :3].std()) > 0.01


def check_svg(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert path.suffix == ".svg" and "<svg" in text[:2000] and text.rstrip().endswith("</svg>")


def check_outputs(paths: list[Path], formats: tuple[str, ...]) -> None:
    assert [p.suffix.lstrip(".") for p in paths] == list(formats)
    for p in paths:
        check_png(p) if p.suffix == ".png" else check_svg(p)
    assert not list(paths[0].parent.glob(".*.tmp")), "temporary files left behind"


def fake_sentence(n: int, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Wordpiece-style tokens, a cosine matrix, its tau=0.3 graph (with self-loops) and softmax weights."""
    rng = np.random.default_rng(seed)
    vocab = ["[CLS]", "the", "##ing", "Ġbox", "▁keys", ",", "not", "$5", "extraordinarilylongword", "."]
    tokens = [vocab[i % len(vocab)] for i in range(n)]
    x = rng.normal(size=(n, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    sim = x @ x.T
    edge_index = np.stack(np.nonzero(sim > 0.3))
    w = np.exp(rng.normal(size=n))
    return tokens, sim, edge_index, w / w.sum()


def test_clean_token() -> None:
    assert viz.clean_token("##ing") == "·ing"
    assert viz.clean_token("Ġhello") == "hello"
    assert viz.clean_token("▁world") == "world"
    assert viz.clean_token(",") == "','"
    assert viz.clean_token("$5") == r"\$5"
    assert viz.clean_token("Ġ") == "␣"
    assert viz.clean_token("extraordinarilylongword") == "extraordinari…"


@pytest.mark.parametrize("n", [1, 10, 40])
def test_token_plots(tmp_path: Path, n: int) -> None:
    tokens, sim, edge_index, w = fake_sentence(n)
    formats = ("png", "svg") if n == 1 else ("png",)
    check_outputs(
        viz.plot_similarity_heatmap(tokens, sim, 0.3, tmp_path / "heat.png", formats=formats), formats
    )
    check_outputs(viz.plot_token_graph(tokens, edge_index, w, tmp_path / "graph", formats=formats), formats)
    check_outputs(viz.plot_readout_weights(tokens, w, tmp_path / "w", "π", formats=formats), formats)


def test_graph_without_weights_and_default_formats(tmp_path: Path) -> None:
    tokens, _, edge_index, _ = fake_sentence(6)
    check_outputs(viz.plot_token_graph(tokens, edge_index, None, tmp_path / "g"), viz.DEFAULT_FORMATS)


def test_ratio_curves(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ratios = (0.2, 0.5, 0.8, 0.9)
    results = {
        name: {r: list(np.clip(base - 40 * r * drop + rng.normal(0, 2, 3), 0, 100)) for r in ratios}
        for name, base, drop in [
            ("cls", 85, 0.9),
            ("mean", 90, 1.0),
            ("adapool", 95, 0.6),
            ("glot", 100, 0.1),
        ]
    }
    check_outputs(viz.plot_ratio_curves(results, tmp_path / "curves"), viz.DEFAULT_FORMATS)
    fractions = {"glot": {0.9: [0.95]}, "max": {0.2: [0.6, 0.62], 0.9: [0.5, 0.52]}}
    check_outputs(viz.plot_ratio_curves(fractions, tmp_path / "frac", formats=("png",)), ("png",))


def test_ratio_curves_unit_is_judged_on_raw_values() -> None:
    from glot.viz.plots import percent_scale

    # mean 0.987 + sample std 0.015 > 1: these are still fractions (the bug: plotted at ~1%)
    assert percent_scale({"glot": {0.9: [1.0, 0.97, 0.99]}, "max": {0.9: [0.5, 0.52]}}) == 100.0
    assert percent_scale({"glot": {0.9: [99.0, 100.0]}, "cls": {0.9: [0.5]}}) == 1.0


def test_bad_inputs(tmp_path: Path) -> None:
    tokens, sim, edge_index, w = fake_sentence(5)
    with pytest.raises(ValueError, match="tokens"):
        viz.plot_similarity_heatmap(tokens[:4], sim, 0.3, tmp_path / "h")
    with pytest.raises(ValueError, match="square"):
        viz.plot_similarity_heatmap(tokens, sim[:, :3], 0.3, tmp_path / "h")
    with pytest.raises(ValueError, match="formats"):
        viz.plot_readout_weights(tokens, w, tmp_path / "w", formats=("jpg",))
    with pytest.raises(ValueError, match="token 9"):
        viz.plot_token_graph(tokens, np.array([[0], [9]]), w, tmp_path / "g")
    with pytest.raises(ValueError, match="empty"):
        viz.plot_ratio_curves({}, tmp_path / "c")
    assert not list(tmp_path.iterdir()), "a failed call must not leave files"


# ------------------------------------------------------------------------------------------ real backbone
@pytest.fixture(scope="module")
def minilm(minilm_path: str):
    from glot.backbones.frozen import FrozenBackbone

    return FrozenBackbone.from_pretrained(minilm_path, dtype="float32", device="cpu")


def test_explain_minilm_untrained_glot(minilm, tmp_path: Path) -> None:
    import torch

    from glot import build_pooler

    torch.manual_seed(0)
    pooler = build_pooler("glot", minilm.hidden_size, tau=0.6, hidden_dim=32)
    files = viz.explain(minilm, pooler, SENTENCE, tmp_path, formats=("png",))
    assert sorted(files) == ["graph", "heatmap", "weights"]
    for paths in files.values():
        check_outputs(paths, ("png",))


def test_compute_explanation_baselines(minilm) -> None:
    from glot import build_pooler

    expl = viz.compute_explanation(minilm, build_pooler("max", minilm.hidden_size), SENTENCE)
    n = len(expl.tokens)
    assert expl.tokens[0] == "[CLS]" and "delivery" in expl.tokens and n == expl.sim.shape[0]
    assert expl.tau == viz.DEFAULT_TAU and len(expl.notes) == 2
    np.testing.assert_allclose(expl.weights.sum(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.diag(expl.sim), 1.0, atol=1e-5)
    expl = viz.compute_explanation(minilm, build_pooler("mean", minilm.hidden_size), SENTENCE, tau=0.3)
    np.testing.assert_allclose(expl.weights, 1.0 / n, rtol=1e-5)
    assert expl.tau == 0.3 and "reference" in expl.notes[0]
    with pytest.raises(ValueError, match="builds its graph at tau"):
        viz.compute_explanation(minilm, build_pooler("glot", minilm.hidden_size, tau=0.6), SENTENCE, tau=0.5)


def test_cli_untrained(minilm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from glot.backbones.frozen import FrozenBackbone
    from glot.cli import main

    asked: list[str] = []

    def fake_load(cls, name, **kwargs):
        asked.append(name)
        return minilm

    monkeypatch.setattr(FrozenBackbone, "from_pretrained", classmethod(fake_load))
    out, report = tmp_path / "pics", tmp_path / "explain.json"
    argv = ["explain", SENTENCE, "--pooler", "glot", "--tau", "0.6", "--out", str(out), "--format", "png"]
    assert main([*argv, "--json", str(report)]) == 0
    assert asked == ["minilm"] and "untrained" in capsys.readouterr().out.lower()
    data = json.loads(report.read_text())
    assert data["trained"] is False and data["tau"] == 0.6 and len(data["weights"]) == len(data["tokens"])
    for kind in ("heatmap", "graph", "weights"):
        check_png(out / f"{kind}.png")
    assert main(["explain", SENTENCE, "--format", "gif"]) == 2


def test_cli_run(minilm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import glot.export.hub
    import glot.training.loop
    from glot import build_pooler
    from glot.cli import main

    pooler = build_pooler("adapool", minilm.hidden_size)
    run_config = {"backbone": {"name_or_path": "minilm"}}
    monkeypatch.setattr(glot.training.loop, "load_run", lambda path, seed=None: (pooler, None, run_config))
    monkeypatch.setattr(glot.export.hub, "load_backbone", lambda ref, **kw: minilm)
    drawn: list[str] = []

    def fake_draw(expl, out_dir, formats):  # the pictures themselves are tested above
        drawn.append(expl.pooler)
        return {"heatmap": [Path(out_dir) / "heatmap.png"]}

    monkeypatch.setattr(viz, "draw_explanation", fake_draw)
    report = tmp_path / "r.json"
    argv = ["explain", SENTENCE, "--run", str(tmp_path), "--out", str(tmp_path / "p")]
    assert main([*argv, "--json", str(report)]) == 0
    assert drawn == ["adapool"]
    data = json.loads(report.read_text())
    assert data["trained"] is True and data["pooler"] == "adapool" and data["tau"] == viz.DEFAULT_TAU
    assert main([*argv, "--model", "minilm"]) == 2  # --run already names the backbone
