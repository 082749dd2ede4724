"""Model selection: the best validation score, ties to the later epoch; early stopping counts from the last
strict improvement (glot.training.loop.select_epoch), checked on the rule and on a real run's metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from glot.cache.task import cache_task
from glot.training.config import TrainConfig
from glot.training.loop import fit
from glot.training.selection import select_epoch
from test_train import WordBackbone, _stress


def _run(vals: list[float | None]) -> dict[str, Any]:
    state: dict[str, Any] = {"best_epoch": 0, "best_val": None}
    for epoch, val in enumerate(vals, start=1):
        select_epoch(state, epoch, val)
    return state


def test_ties_select_the_later_epoch_but_do_not_reset_patience() -> None:
    state = _run([0.5, 0.8, 0.7, 0.8, 0.8, 0.6])
    assert state["best_epoch"] == 5 and state["best_val"] == 0.8
    assert state["improved_epoch"] == 2  # the ties at epochs 4-5 are not improvements


def test_a_strict_improvement_moves_both() -> None:
    state = _run([0.5, 0.8, 0.8, 0.9])
    assert (state["best_epoch"], state["improved_epoch"]) == (4, 4)


def test_without_validation_the_last_epoch_is_selected() -> None:
    assert _run([None, None, None])["best_epoch"] == 3


def test_a_real_run_keeps_the_latest_tied_epoch_and_stops_on_the_first(tmp_path: Path) -> None:
    cached = cache_task(_stress(200, 40), WordBackbone(), cache_dir=tmp_path / "cache", progress=False)
    config = TrainConfig(pooler="adapool", lr=3e-2, epochs=12, batch_size=16, patience=3)
    m = fit(cached, config, tmp_path / "run", progress=False)
    vals = [h["val"] for h in m["history"]]
    best = max(vals)
    assert m["val"] == best
    assert m["best_val_epoch"] == max(h["epoch"] for h in m["history"] if h["val"] == best)
    first = min(h["epoch"] for h in m["history"] if h["val"] == best)
    if m["stopped_early"]:  # patience counted from the first epoch that reached the best score
        assert m["epochs_run"] == first + config.patience
    # the selected epoch's stored eval metric is the one reported
    assert m["eval"] == next(h["eval"] for h in m["history"] if h["epoch"] == m["best_val_epoch"])
