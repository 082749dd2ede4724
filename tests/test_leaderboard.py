"""benchmarks/leaderboard.py end to end on a tiny model: the lr is chosen on validation, every seed runs at it,
and the JSON regenerates the markdown table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tiny_models import make_tiny_bert

BENCH = Path(__file__).parents[1] / "benchmarks"


def test_leaderboard_picks_each_heads_lr_on_validation_and_writes_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    import leaderboard

    tiny = make_tiny_bert(tmp_path / "bert")
    out = tmp_path / "board.json"
    argv = ["leaderboard.py", "--models", str(tiny), "--tasks", "negation-0.05", "--poolers", "mean,adapool",
            "--seeds", "0,1", "--lrs", "1e-3,1e-1", "--n-train", "24", "--n-eval", "8", "--epochs", "1",
            "--runs", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache"), "--json", str(out)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    assert leaderboard.main() == 0
    data = json.loads(out.read_text())
    assert [(e["task"], e["pooler"]) for e in data["entries"]] == [
        ("negation-0.05", "mean"),
        ("negation-0.05", "adapool"),
    ]
    for e in data["entries"]:
        val = {float(k): v for k, v in e["val_by_lr"].items()}
        assert e["lr"] == max(val, key=lambda lr: (val[lr], -lr))  # validation, ties to the smaller lr
        assert e["seeds"] == [0, 1] and len(e["accuracy"]) == 2 and all(0 <= a <= 1 for a in e["accuracy"])
        assert e["params"] > 0 and e["seconds_per_epoch"] > 0
        assert e["val"][0] == val[e["lr"]]  # seed 0's run at the chosen lr is the selection run, reused
    md = out.with_suffix(".md").read_text()
    assert "| head | negation-0.05 | params | s/epoch |" in md and "| adapool |" in md
    assert leaderboard.markdown(json.loads(out.read_text())) == md  # --markdown regenerates it from the JSON
    with pytest.raises(SystemExit, match="unknown leaderboard task 'sst2'"):
        leaderboard.task_spec("sst2")
