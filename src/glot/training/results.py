"""What a finished run reports and writes: the eval split scored once, metrics.json, the final artefacts, and
the mean ± std summary over seeds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from glot.io import atomic_save_tensors, atomic_write_json
from glot.training.checkpoint import HEAD_CONFIG, HEAD_WEIGHTS, METRICS_NAME, POOLER_DIR, load_epoch
from glot.training.config import TrainConfig
from glot.training.metrics import mean_std
from glot.training.setup import Rows, Setup, row_counts
from glot.training.sources import score

__all__ = ["finish_run", "summarize"]


def finish_run(
    setup: Setup,
    config: TrainConfig,
    run_dir: Path,
    state: dict[str, Any],
    modules: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    rows: Rows,
) -> dict[str, Any]:
    """Load the best-on-validation state, score the eval split ONCE, write the final artefacts."""
    task, best = setup.task, int(state["best_epoch"])
    key = state["run_key"]
    eval_preds = load_epoch(run_dir, int(state["epoch"]), {}, run_key=key)  # every epoch's eval predictions
    load_epoch(run_dir, best, modules, run_key=key)
    metrics: dict[str, Any] = {
        "task": task.name, "metric": task.metric, "seed": config.seed,
        "best_val_epoch": best, "val": _val_at(state, best), "epochs_run": state["epoch"],
        "stopped_early": state["stopped_early"], "sizes": row_counts(rows),
        "train_seconds": sum(h["seconds"] for h in state["history"]),
        "history": [dict(h) for h in state["history"]], "run_key": key,
    }  # fmt: skip
    if state.get(
        "input_fit"
    ):  # the pooler's fitted inputs: normalisation, tau (chosen or given), edge density
        metrics["input_fit"] = state["input_fit"]
    if eval_preds:
        eval_labels = task.splits["eval"].labels  # the first and only read of the eval labels
        per_epoch = {int(k.split("_")[1]): score(task.metric, v, eval_labels) for k, v in eval_preds.items()}
        for h in metrics["history"]:
            h["eval"] = per_epoch.get(h["epoch"])
        top = max(per_epoch, key=lambda e: (per_epoch[e], -e))
        metrics["eval"] = per_epoch[best]
        metrics["eval_best_epoch_optimistic"] = {
            "epoch": top, "value": per_epoch[top],
            "note": "epoch chosen on the EVAL split (how the paper reports); optimistic, not for model selection",
        }  # fmt: skip
    setup.pooler.save_pretrained(run_dir / POOLER_DIR)
    atomic_save_tensors(run_dir / HEAD_WEIGHTS, setup.head.state_dict())
    atomic_write_json(run_dir / HEAD_CONFIG, setup.head.config())
    if setup.finish is not None:
        setup.finish(run_dir, state, optimizer, metrics)
    atomic_write_json(run_dir / METRICS_NAME, metrics)
    return metrics


def _val_at(state: dict[str, Any], epoch: int) -> float | None:
    """The validation score of the selected ``epoch`` (within the selection's tolerance of the best)."""
    return next((h["val"] for h in state["history"] if h["epoch"] == epoch), None)


def summarize(per_seed: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample std (ddof 1; None for one seed: no spread can be measured) over seeds of the eval
    metric, the optimistic best-epoch metric, val and time."""

    def stats(values: list[float]) -> dict[str, float | None]:
        mean, std = mean_std(values)
        return {"mean": mean, "std": std if len(values) > 1 else None, "n": len(values)}

    out: dict[str, Any] = {"seeds": [m["seed"] for m in per_seed], "val": stats([m["val"] for m in per_seed])}
    if all("eval" in m for m in per_seed):
        out["eval"] = stats([m["eval"] for m in per_seed])
    if all("eval_best_epoch_optimistic" in m for m in per_seed):
        optimistic = [m["eval_best_epoch_optimistic"]["value"] for m in per_seed]
        out["eval_best_epoch_optimistic"] = stats(optimistic)
    out["train_seconds"] = stats([m["train_seconds"] for m in per_seed])
    return out
