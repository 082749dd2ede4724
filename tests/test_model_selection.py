"""Model selection: the best validation score, ties to the later epoch; early stopping counts from the last
strict improvement (glot.training.loop.select_epoch); the lr's plateau cuts (lr_scale), checked on the rule and
on a real run's metrics."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import torch

from glot.cache.task import cache_task
from glot.training.config import TrainConfig
from glot.training.loop import fit
from glot.training.selection import lr_scale, select_epoch, selection_tolerance
from test_train import WordBackbone, _stress


def _run(vals: list[float | None], tolerance: float = 0.0) -> dict[str, Any]:
    state: dict[str, Any] = {"best_epoch": 0, "best_val": None}
    for epoch, val in enumerate(vals, start=1):
        select_epoch(state, epoch, val, tolerance)
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


def test_the_slack_keeps_the_latest_epoch_within_one_validation_example_of_the_best() -> None:
    n = 40  # accuracies on 40 validation texts: one text = 0.025
    one = selection_tolerance("accuracy", 1, n)
    vals = [k / n for k in (20, 30, 29, 28, 29)]
    state = _run(vals, one)
    assert state["best_epoch"] == 5 and state["best_val"] == 30 / n  # 29/40 is one text below the best
    assert state["improved_epoch"] == 2  # only epoch 2 improved: patience counts from it
    assert _run(vals, selection_tolerance("accuracy", 0, n))["best_epoch"] == 2  # exact ties only
    assert _run([k / n for k in (20, 30, 28)], one)["best_epoch"] == 2  # two texts below: not kept
    assert _run([k / n for k in (20, 30, 29, 31)], one)["best_epoch"] == 4  # a new best moves everything
    assert selection_tolerance("spearman", 1, n) == 0.0  # "one example" is an accuracy notion


def test_a_real_run_keeps_the_latest_tied_epoch_and_stops_on_the_first(tmp_path: Path) -> None:
    cached = cache_task(_stress(200, 40), WordBackbone(), cache_dir=tmp_path / "cache", progress=False)
    config = TrainConfig(pooler="adapool", lr=3e-2, epochs=12, batch_size=16, patience=3)
    m = fit(cached, config, tmp_path / "run", progress=False)
    vals, n_val = [h["val"] for h in m["history"]], m["sizes"]["val"]
    best = max(vals)
    kept = [h for h in m["history"] if round(h["val"] * n_val) >= round(best * n_val) - config.select_slack]
    assert m["best_val_epoch"] == kept[-1]["epoch"] and m["val"] == kept[-1]["val"]
    first = min(h["epoch"] for h in m["history"] if h["val"] == best)
    if m["stopped_early"]:  # patience counted from the first epoch that reached the best score
        assert m["epochs_run"] == first + config.patience
    # the selected epoch's stored eval metric is the one reported
    assert m["eval"] == next(h["eval"] for h in m["history"] if h["epoch"] == m["best_val_epoch"])


def test_lr_scale_is_torchs_reduce_lr_on_plateau() -> None:
    rng = random.Random(0)
    for _ in range(200):
        plateau, factor = rng.randint(1, 4), rng.choice([0.5, 0.3, 0.1])
        vals = [rng.choice([0.5, 0.6, 0.7, 0.8]) for _ in range(rng.randint(0, 15))]
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        torch_rule = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=factor, patience=plateau - 1, threshold=0, eps=0
        )
        for val in vals:
            torch_rule.step(val)
        assert lr_scale(vals, plateau, factor) == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-12)
    assert lr_scale([0.5, 0.5, 0.5, 0.5], 0, 0.5) == 1.0  # 0 = constant lr
    assert lr_scale([0.5, None, 0.5], 1, 0.5) == 1.0  # no validation: constant


def test_a_run_trains_each_epoch_at_the_plateau_lr_and_resumes_at_it(tmp_path: Path, monkeypatch) -> None:
    """Validation scores forced to a plateau: the lr halves after 2 epochs without a strict gain, the
    optimizer really steps at it, the history records it, and a run killed after the cut resumes at it."""
    import glot.training.loop as loop

    cached = cache_task(_stress(120, 20), WordBackbone(), cache_dir=tmp_path / "cache", progress=False)
    config = TrainConfig(pooler="adapool", lr=1e-2, epochs=6, batch_size=32, patience=None, lr_plateau=2)
    scores = [0.5, 0.6, 0.6, 0.6, 0.6, 0.7]  # e4 ends the 2nd epoch without a gain: epochs 5-6 at lr / 2
    real_epoch, seen = loop._train_epoch, {}

    def recording(setup: Any, config: Any, rows: Any, optimizer: Any, epoch: int, *rest: Any) -> Any:
        seen[epoch] = [group["lr"] for group in optimizer.param_groups]
        if epoch == kill_at:
            raise KeyboardInterrupt("simulated kill")
        return real_epoch(setup, config, rows, optimizer, epoch, *rest)

    monkeypatch.setattr(loop, "_train_epoch", recording)
    monkeypatch.setattr(loop, "_validate", lambda *args: scores[max(seen) - 1])
    kill_at = 0
    full = fit(cached, config, tmp_path / "full", progress=False)
    expected = [1e-2, 1e-2, 1e-2, 1e-2, 5e-3, 5e-3]
    assert [seen[e][0] for e in range(1, 7)] == pytest.approx(expected)
    assert [h["lr"] for h in full["history"]] == pytest.approx(expected)
    constant = fit(cached, config.replace(lr_plateau=0), tmp_path / "constant", progress=False)
    assert [h["lr"] for h in constant["history"]] == pytest.approx([1e-2] * 6)
    assert (
        constant["history"][5]["train_loss"] != full["history"][5]["train_loss"]
    )  # the cut changed training
    seen.clear()
    kill_at = 6
    with pytest.raises(KeyboardInterrupt):
        fit(cached, config, tmp_path / "resumed", progress=False)
    kill_at = 0
    resumed = fit(cached, config, tmp_path / "resumed", progress=False)
    assert seen[6] == pytest.approx([5e-3])
    strip = ("seconds", "train_seconds", "costs")
    assert [{k: v for k, v in h.items() if k not in strip} for h in resumed["history"]] == [
        {k: v for k, v in h.items() if k not in strip} for h in full["history"]
    ]
