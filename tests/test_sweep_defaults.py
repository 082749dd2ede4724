"""benchmarks/sweep_defaults.py's verdict on the default lr: means over the runs that have every lr, a diverged
run counted as 0, a tie (within TIE) keeps the package default, a clear winner says to change it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).parents[1] / "benchmarks"


@pytest.fixture
def sweep(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(BENCH))
    import sweep_defaults

    return sweep_defaults


def _runs(vals: dict[str, list[float | None]]) -> dict[str, Any]:
    """lr -> per-run validation accuracies (None = diverged), runs as (model m, task t, glot, seed i)."""
    runs: dict[str, Any] = {}
    for lr, accs in vals.items():
        for i, v in enumerate(accs):
            key = f"m|t|glot|standardize|{lr}|{i}"
            runs[key] = {"diverged": True} if v is None else {"diverged": False, "val": v, "epochs_run": 3}
    return runs


def test_a_tie_within_the_noise_keeps_the_default(sweep: Any) -> None:
    default = f"{sweep.DEFAULT_LR:g}"
    other = "0.001" if default != "0.001" else "0.0003"
    runs = _runs({other: [0.80, 0.90], default: [0.80, 0.894], "0.01": [0.70, None]})
    runs["m|t|mean|none|0.01|0"] = {"diverged": False, "val": 0.5, "epochs_run": 2}  # not a learned pooler
    runs["m|t|mlp|standardize|0.01|0"] = {"diverged": False, "val": 0.99, "epochs_run": 2}  # not every lr
    text = "\n".join(sweep.choice(runs, sorted([other, default, "0.01"], key=float)))
    assert "Over the 2 learned-pooler runs" in text
    assert "| 0.01 | 35.0 | 0.0 | 0 of 2 | 1 |" in text  # the diverged run counts as 0
    assert f"Best mean validation accuracy: lr {other}" in text
    assert f"(lr {default}) is among them: the sweep supports it" in text


def test_a_clear_winner_that_is_not_the_default_says_change_it(sweep: Any) -> None:
    default = f"{sweep.DEFAULT_LR:g}"
    runs = _runs({"0.01": [0.95, 0.95], default: [0.80, 0.90]})
    text = "\n".join(sweep.choice(runs, sorted(["0.01", default], key=float)))
    assert f"(lr {default}) is NOT among them: change it" in text


def test_a_plateau_schedule_is_its_own_column_next_to_its_constant_lr(sweep: Any) -> None:
    default = sweep.lr_label(sweep.DEFAULT_LR, sweep.DEFAULT_LR_PLATEAU)
    assert sweep.lr_label(3e-3, 0) == "0.003" and sweep.lr_label(3e-3, 2) == "0.003p2"
    labels = sorted(["0.003p2", "0.01", "0.003", "0.001"], key=sweep.label_order)
    assert labels == ["0.001", "0.003", "0.003p2", "0.01"]
    runs = _runs({"0.003p2": [0.99, 0.99], default: [0.80, 0.90], "0.01": [0.8, 0.8]})
    text = "\n".join(sweep.choice(runs, sorted(["0.003p2", default, "0.01"], key=sweep.label_order)))
    assert "Best mean validation accuracy: lr 0.003p2" in text
    assert f"(lr {default}) is NOT among them: change it" in text
    table = sweep.tables(runs)
    assert "| lr 0.003p2 |" in table and "99.0 (3 ep) / 99.0 (3 ep)" in table
