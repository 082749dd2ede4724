"""benchmarks/selection_rules.py: replaying stored runs under each slack keeps the epoch the training loop would
keep, and the comparison counts the runs each rule wins."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from glot.cache.task import cache_task
from glot.training.config import TrainConfig
from glot.training.loop import fit
from test_train import WordBackbone, _stress

BENCH = Path(__file__).parents[1] / "benchmarks"


@pytest.fixture
def rules(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(BENCH))
    import selection_rules

    return selection_rules


def _write(folder: Path, val: list[float], evals: list[float], n_val: int = 40) -> None:
    folder.mkdir(parents=True)
    history = [{"epoch": e, "val": v, "eval": x} for e, (v, x) in enumerate(zip(val, evals, strict=True), 1)]
    metrics = {
        "pooler": "glot",
        "task": "t",
        "metric": "accuracy",
        "sizes": {"val": n_val},
        "history": history,
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))


def test_the_replay_and_the_comparison(rules: Any, tmp_path: Path) -> None:
    _write(tmp_path / "a" / "seed-0", [0.5, 0.75, 0.725], [0.5, 0.70, 0.80])  # slack 1 keeps epoch 3: +10
    _write(tmp_path / "b" / "seed-0", [0.5, 0.75, 0.725], [0.5, 0.80, 0.75])  # ... and here -5
    _write(tmp_path / "c" / "seed-0", [0.5, 0.75, 0.70], [0.5, 0.80, 0.90])  # two texts below: unchanged
    runs = rules.collect([tmp_path])
    assert [rules.kept_epoch(r, 0) for r in runs] == [2, 2, 2]
    assert [rules.kept_epoch(r, 1) for r in runs] == [3, 3, 2]
    c = rules.compare(runs, 1)
    assert (c["runs"], c["changed"], c["better"], c["worse"]) == (3, 2, 1, 1)
    assert c["mean_diff_points"] == pytest.approx(5 / 3)


def test_the_replay_keeps_the_epoch_a_real_run_kept(rules: Any, tmp_path: Path) -> None:
    cached = cache_task(_stress(200, 40), WordBackbone(), cache_dir=tmp_path / "cache", progress=False)
    config = TrainConfig(pooler="adapool", lr=3e-2, epochs=8, batch_size=16, patience=3)
    m = fit(cached, config, tmp_path / "runs" / "seed-0", progress=False)
    (run,) = rules.collect([tmp_path / "runs"])
    assert rules.kept_epoch(run, config.select_slack) == m["best_val_epoch"]
    assert run["eval"][m["best_val_epoch"] - 1] == m["eval"]
