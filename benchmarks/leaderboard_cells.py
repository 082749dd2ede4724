"""The leaderboard's store and report: one JSON file per finished cell, and the table rebuilt from whatever
cells exist, the missing ones marked.

A cell is one training run: (model, task, head, lr, seed). The cells folder (``--cells``; by default
``benchmarks/results/leaderboard-cells/``, beside ``--json``) holds::

    board.json                                      the settings (equal on every run) + the grid asked so far
    <model>/<task>/<head>/lr-<lr>/seed-<seed>.json  one finished run: val, eval, epochs, seconds, params, and
                                                    the head's full settings (its defaults + the task's options)

Each cell is written atomically when its run ends, so an interrupted board loses at most the run in progress,
and that run resumes from its last epoch checkpoint (glot's run folders, ``--runs``). The lr rule: a head's lr
is the one with the best VALIDATION accuracy on the selection seed (the first of ``--seeds``; ties go to the
smaller lr, diverged runs never win); the other seeds train at that lr only.

A cell counts only while the head's settings it was trained with are the head's settings now
(``head_settings``): when a default changes, that head's cells are stale, the report leaves them out and the
next run retrains them, so the board never mixes two versions of a head.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

from glot.io import atomic_write_json, read_json

FORMAT = 1
#: what a board's numbers depend on besides the grid: every run into one cells folder must use the same
SETTINGS = (
    "n_train",
    "n_eval",
    "data_seed",
    "epochs",
    "patience",
    "batch_size",
    "lrs",
    "selection_seed",
    "select_slack",
)


def slug(model: str) -> str:
    """A model alias or path as one folder name (the cell itself keeps the full name)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("_") or "model"


def _union(old: list[Any], new: list[Any]) -> list[Any]:
    return list(dict.fromkeys([*old, *new]))


class Board:
    """A cells folder: its settings, the grid every run so far asked for, and the cells.

    ``head_settings(task, head)`` gives a head's settings as trained now; a cell trained with others is stale."""

    def __init__(self, root: Path, head_settings: Callable[[str, str], dict[str, Any]]) -> None:
        self.root = root
        self.head_settings = head_settings
        self.meta: dict[str, Any] = read_json(root / "board.json")

    @classmethod
    def open(
        cls,
        root: Path,
        settings: dict[str, Any],
        grid: dict[str, list[Any]],
        head_settings: Callable[[str, str], dict[str, Any]],
    ) -> Board:
        """Create the board, or check that an existing one has these settings and add ``grid`` to its grid."""
        root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(root / ".board.lock")):  # parallel runs (e.g. one per --models) share one board
            path = root / "board.json"
            meta = read_json(path) if path.is_file() else {"format": FORMAT, "settings": settings, "grid": {}}
            if meta["settings"] != settings:
                differ = sorted(k for k in SETTINGS if meta["settings"].get(k) != settings.get(k))
                had = ", ".join(f"{k}={meta['settings'].get(k)}" for k in differ)
                asked = ", ".join(f"{k}={settings.get(k)}" for k in differ)
                raise SystemExit(
                    f"{root} holds a board made with {had}; this run asks {asked}: give this board its own "
                    "--json (its cells go beside it) or rerun with the board's settings"
                )
            meta["grid"] = {k: _union(meta["grid"].get(k, []), v) for k, v in grid.items()}
            atomic_write_json(path, meta)
        return cls(root, head_settings)

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.meta["settings"])

    def first_token(self, model: str) -> str | None:
        """``cls`` or ``eos``: what ``auto`` is on ``model`` (recorded once its backbone was loaded)."""
        return self.meta.get("first_token", {}).get(model)

    def set_first_token(self, model: str, name: str) -> None:
        with FileLock(str(self.root / ".board.lock")):
            self.meta = read_json(self.root / "board.json")
            self.meta.setdefault("first_token", {})[model] = name
            atomic_write_json(self.root / "board.json", self.meta)

    def path(self, model: str, task: str, pooler: str, lr: float, seed: int) -> Path:
        return self.root / slug(model) / task / pooler / f"lr-{lr:g}" / f"seed-{seed}.json"

    def get(self, model: str, task: str, pooler: str, lr: float, seed: int) -> dict[str, Any] | None:
        """The finished cell, or None where it has not run yet or ran with other head settings (stale)."""
        path = self.path(model, task, pooler, lr, seed)
        if not path.is_file():
            return None
        cell = read_json(path)
        if (cell.get("model"), cell.get("task"), cell.get("pooler"), cell.get("seed")) != (
            model, task, pooler, seed
        ) or f"{cell.get('lr'):g}" != f"{lr:g}":  # fmt: skip
            raise SystemExit(
                f"{path} holds another cell ({cell.get('model')!r}, ...); move it away and rerun"
            )
        if cell.get("head_settings") != self.head_settings(task, pooler):
            return None
        return dict(cell)

    def put(self, cell: dict[str, Any]) -> None:
        path = self.path(cell["model"], cell["task"], cell["pooler"], cell["lr"], cell["seed"])
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"format": FORMAT, **cell})


def choose_lr(val_by_lr: dict[float, float | None]) -> float | None:
    """The lr with the best validation accuracy (ties: the smaller lr); None where every run diverged."""
    ok = {lr: v for lr, v in val_by_lr.items() if v is not None}
    return max(ok, key=lambda lr: (ok[lr], -lr)) if ok else None


def head_entry(board: Board, model: str, task: str, pooler: str) -> dict[str, Any]:
    """One head on one task: its lr grid on the selection seed, then the seeds at the chosen lr (those run)."""
    s = board.settings
    grid = {lr: board.get(model, task, pooler, lr, s["selection_seed"]) for lr in s["lrs"]}
    ran = {lr: c for lr, c in grid.items() if c is not None}
    e: dict[str, Any] = {
        "model": model, "task": task, "pooler": pooler, "lr": None, "lrs_run": len(ran),
        "val_by_lr": {f"{lr:g}": c.get("val") for lr, c in ran.items()},
        "seeds": [], "accuracy": [], "val": [], "epochs_run": [], "diverged_seeds": [],
        "params": next((c["params"] for c in ran.values() if not c["diverged"]), None), "seconds_per_epoch": None,
    }  # fmt: skip
    lr = choose_lr({lr: c.get("val") for lr, c in ran.items()}) if len(ran) == len(grid) else None
    others = [seed for seed in board.meta["grid"]["seeds"] if seed != s["selection_seed"]]
    if lr is None:  # the other seeds' runs that exist already (at whichever lr) still count as run
        e["runs"] = len(ran) + sum(
            any(board.get(model, task, pooler, r, x) is not None for r in grid) for x in others
        )
        return e
    e["lr"] = lr
    cells = [(seed, board.get(model, task, pooler, lr, seed)) for seed in board.meta["grid"]["seeds"]]
    for seed, c in cells:
        if c is not None and c["diverged"]:
            e["diverged_seeds"].append(seed)
        elif c is not None:
            e["seeds"].append(seed)
            e["accuracy"].append(c["eval"])
            e["val"].append(c["val"])
            e["epochs_run"].append(c["epochs_run"])
    done = [c for _, c in cells if c is not None and not c["diverged"]]  # the selection seed's run at least
    e["seconds_per_epoch"] = sum(c["train_seconds"] / max(1, c["epochs_run"]) for c in done) / len(done)
    e["runs"] = len(ran) + sum(c is not None for seed, c in cells if seed != s["selection_seed"])
    return e


def rows(board: Board, model: str) -> list[str]:
    """The heads of ``model``'s table: the grid's poolers with ``auto`` as cls / eos once known."""
    names = [
        (board.first_token(model) or "auto") if p == "auto" else p for p in board.meta["grid"]["poolers"]
    ]
    return list(dict.fromkeys(names))


def aggregate(board: Board) -> dict[str, Any]:
    """Every planned (model, task, head) as one entry, from whatever cells exist; plus cell counts."""
    g = board.meta["grid"]
    entries = [head_entry(board, m, t, p) for m in g["models"] for p in rows(board, m) for t in g["tasks"]]
    per_head = len(board.settings["lrs"]) + len(g["seeds"]) - 1
    cells = {"finished": sum(e["runs"] for e in entries), "planned": per_head * len(entries)}
    return {"format": FORMAT, "settings": board.settings, "grid": g, "cells": cells, "entries": entries}


# ---------------------------------------------------------------------------------------------- markdown
def _mean_std(values: list[float]) -> str:
    from glot.training.metrics import format_mean_std

    return format_mean_std(values, digits=1, scale=100)


def cell_text(e: dict[str, Any], n_lrs: int, n_seeds: int) -> str:
    """One table cell: mean ± std <sub>lr</sub>, or what is missing (– not run, lr k/n, k/n seeds, div)."""
    if e["lr"] is None:
        if e["lrs_run"] == 0:
            return "–"
        return "div" if e["lrs_run"] == n_lrs else f"– <sub>lr {e['lrs_run']}/{n_lrs}</sub>"
    notes = [f"{e['lr']:g}"]
    if len(e["seeds"]) < n_seeds:
        notes.append(f"{len(e['seeds'])}/{n_seeds} seeds")
    if e["diverged_seeds"]:
        notes.append(f"{len(e['diverged_seeds'])} diverged")
    return (_mean_std(e["accuracy"]) if e["seeds"] else "–") + f" <sub>{', '.join(notes)}</sub>"


def _side(values: Any, n_seeds: int) -> str:
    """mean ± std of one head's accuracies (%), with the seeds behind it where fewer than planned ran."""
    return _mean_std(list(values / 100)) + (
        f" ({len(values)}/{n_seeds} seeds)" if len(values) < n_seeds else ""
    )


def verdicts(entries: list[dict[str, Any]], tasks: list[str], n_seeds: int) -> list[str]:
    """Per task: GLOT against the best other head run so far, with a Welch test (claims need >= 3 seeds);
    the seeds behind each side are stated where fewer than planned have run."""
    import numpy as np

    from glot.training.metrics import compare_means

    lines = []
    for task in tasks:
        mine = [e for e in entries if e["task"] == task]
        runs = {e["pooler"]: 100 * np.asarray(e["accuracy"]) for e in mine if e["accuracy"]}
        if "glot" not in runs or len(runs) < 2:
            continue
        best = max((p for p in runs if p != "glot"), key=lambda p: float(runs[p].mean()))
        test = compare_means(runs["glot"], runs[best])

        others = (
            f"; {len(runs) - 1} of the {len(mine) - 1} other heads run so far"
            if len(runs) < len(mine)
            else ""
        )
        lines.append(f"- {task}: glot {_side(runs['glot'], n_seeds)} vs best other head {best} "
                     f"{_side(runs[best], n_seeds)}: "
                     f"{test['gap']:+.1f} points, {test['verdict']}"
                     + (f" (Welch p = {test['p']:.2g})" if test.get("p") is not None else "") + others)  # fmt: skip
    return lines


def _header(data: dict[str, Any]) -> list[str]:
    s, g, cells = data["settings"], data["grid"], data["cells"]
    parts = ["## Pooling-head leaderboard\n",
             f"Eval accuracy (%) at the best-on-validation epoch, mean ± std over seeds {g['seeds']}; each head at "
             f"its validation-chosen lr from {s['lrs']} (chosen on seed {s['selection_seed']}); {s['n_train']} "
             f"train / {s['n_eval']} eval examples per task, at most {s['epochs']} epochs (patience "
             f"{s['patience']}). params = pooler + task head (synthetic tasks use the stress settings, tweets the "
             "defaults, hence two counts); s/epoch = mean train seconds per epoch over the tasks (noisy: shared "
             "CPU).\n"]  # fmt: skip
    if cells["finished"] < cells["planned"]:
        parts.append(f"\n**Partial board: {cells['finished']} of {cells['planned']} runs finished.** – = not "
                     f"run yet; <sub>lr k/{len(s['lrs'])}</sub> = k lrs run on seed {s['selection_seed']}, none "
                     "chosen yet; <sub>lr, k/n seeds</sub> = mean over the k seeds run so far; div = diverged "
                     "at every lr.\n")  # fmt: skip
    return parts


def markdown(data: dict[str, Any]) -> str:
    """The leaderboard section (``benchmarks/results/leaderboard.md``) from :func:`aggregate`'s data."""
    n_lrs, n_seeds, tasks = len(data["settings"]["lrs"]), len(data["grid"]["seeds"]), data["grid"]["tasks"]
    parts = _header(data)
    for model in dict.fromkeys(e["model"] for e in data["entries"]):
        entries = [e for e in data["entries"] if e["model"] == model]
        cols = ["head", *tasks, "params", "s/epoch"]
        lines = [f"\n### {model}\n", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for pooler in dict.fromkeys(e["pooler"] for e in entries):
            mine = {e["task"]: e for e in entries if e["pooler"] == pooler}
            cells = [cell_text(mine[t], n_lrs, n_seeds) for t in tasks]
            params = " / ".join(dict.fromkeys(f"{mine[t]['params']:,}" for t in tasks if mine[t]["params"]))
            secs = [e["seconds_per_epoch"] for e in mine.values() if e["seconds_per_epoch"] is not None]
            timing = f"{sum(secs) / len(secs):.1f}" if secs else "–"
            lines.append(f"| {pooler} | " + " | ".join(cells) + f" | {params or '–'} | {timing} |")
        parts += ["\n".join(lines), "\n\nThe small number under each cell is the chosen lr.\n\n",
                  "\n".join(verdicts(entries, tasks, n_seeds)), "\n"]  # fmt: skip
    return "".join(parts)
