"""`glot train --states online`: the frozen backbone runs inside the loop (nothing cached) and gives the numbers
of the cached path (float32 cache) for the same seed; its run key is its own; --states with --finetune refused."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from glot.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import make_tiny_bert  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("models") / "bert")


def _write_csv(path: Path, n_train: int, n_eval: int) -> None:
    """Filler-word sentences with one sentiment word (label 1 = a positive one), train then eval rows. Seeded."""
    rng = np.random.default_rng(0)
    filler = ["the", "movie", "film", "dog", "cat", "sat", "on", "mat", "very", "really", "river", "bank"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", "split"])
        for i in range(n_train + n_eval):
            label = int(rng.integers(0, 2))
            words = list(rng.choice(filler, size=int(rng.integers(3, 8))))
            words.insert(
                int(rng.integers(0, len(words) + 1)),
                str(rng.choice(["good", "great", "love"] if label else ["bad", "hate", "never"])),
            )
            writer.writerow([" ".join(words), label, "train" if i < n_train else "eval"])


def test_online_states_give_the_cached_numbers(tiny: Path, tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    _write_csv(data, n_train=80, n_eval=40)
    argv = ["train", "--model", str(tiny), "--task", str(data), "--max-length", "24", "--no-progress",
            "--pooler", "glot", "--tau", "0.5", "--hidden-dim", "8", "--epochs", "3", "--batch-size", "8",
            "--lr", "1e-2", "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    cached, online = tmp_path / "cached", tmp_path / "online"
    assert (
        main([*argv, "--cache-dtype", "float32", "--out", str(cached), "--json", str(tmp_path / "c.json")])
        == 0
    )
    entries = set((tmp_path / "cache").iterdir())
    assert main([*argv, "--states", "online", "--out", str(online), "--json", str(tmp_path / "o.json")]) == 0
    assert set((tmp_path / "cache").iterdir()) == entries  # online mode writes no cache entry

    a = json.loads((tmp_path / "c.json").read_text())["per_seed"][0]
    b = json.loads((tmp_path / "o.json").read_text())["per_seed"][0]
    assert b["states"] == "online" and b["truncation"]["texts"] == a["truncation"]["texts"]
    for x, y in zip(a["history"], b["history"], strict=True):  # the states differ by float rounding only
        assert y["train_loss"] == pytest.approx(x["train_loss"], rel=1e-4)
        assert y["val"] == pytest.approx(x["val"], abs=1e-6) and y["eval"] == pytest.approx(
            x["eval"], abs=1e-6
        )
    assert b["eval"] == pytest.approx(a["eval"], abs=1e-6) and b["best_val_epoch"] == a["best_val_epoch"]
    assert a["history"][-1]["train_loss"] < a["history"][0]["train_loss"]  # it learned something to compare

    config = json.loads((online / "seed-0" / "run_config.json").read_text())
    assert config["states"] == "online" and "cache_key" not in config and b["run_key"] != a["run_key"]
    assert main([*argv, "--states", "online", "--out", str(online)]) == 0  # the finished run is reused


def test_states_with_finetune_is_refused_in_one_line(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["train", "--model", str(tiny), "--task", "stress", "--finetune", "full", "--states", "online",
                 "--out", str(tmp_path / "run")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "--states online does not apply to --finetune" in err[0]
    assert not (tmp_path / "run").exists()
