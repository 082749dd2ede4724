"""Train a pooler + task head on CACHED token states: honest model selection, seeds, checkpoints, resume.

The frozen backbone runs once per unique text (:func:`glot.cache.task.cache_task`); training reads packed
batches from the memory-mapped cache. Model selection uses a validation split CARVED FROM TRAIN
(``val_fraction``, stratified for classification): each epoch trains, scores the validation split and keeps
the best state; at the end the best-on-validation state is loaded and the eval split's metric is computed once.
The eval split's LABELS are read only then: each epoch only stores eval predictions, from which the per-epoch
eval metric — and the paper-style "best epoch on the eval split" (optimistic) — are computed at the end.

Determinism: weights are initialised from ``seed`` and epoch e shuffles with ``default_rng([seed, e])``, so a
run interrupted after any epoch and rerun with the same command resumes from its last checkpoint and ends with
exactly the numbers of an uninterrupted run (see :mod:`glot.training.checkpoint` for the folder layout).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from glot.cache.task import CachedTask, cache_task
from glot.data import stratified_indices
from glot.errors import InputError
from glot.io import atomic_save_tensors, atomic_write_json
from glot.pooling.poolers import Pooler, build_pooler
from glot.progress import tqdm
from glot.training.checkpoint import (
    HEAD_CONFIG,
    HEAD_WEIGHTS,
    METRICS_NAME,
    POOLER_DIR,
    load_checkpoint_state,
    load_epoch,
    load_run,
    make_run_config,
    prepare_run_dir,
    save_epoch,
)
from glot.training.config import TrainConfig
from glot.training.heads import TaskHead, build_head
from glot.training.metrics import compute, mean_std

__all__ = [
    "NonFiniteError",
    "TrainConfig",
    "cache_task",
    "carve_validation",
    "fit",
    "load_run",
    "predict",
    "summarize",
    "train",
]


def carve_validation(
    labels: np.ndarray | None, n: int, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split train rows into (train, validation), stratified by class when labels are class ids.

    Shapes: labels (n,) | None -> train rows (n - m,), val rows (m,) with m = round(fraction * n) (>= 1).
    """
    m = max(1, int(round(fraction * n)))
    if m >= n:
        raise InputError(f"val_fraction={fraction} leaves no training data from {n} train examples; lower it")
    classes = labels if labels is not None and labels.dtype.kind == "i" else None
    val = np.sort(stratified_indices(n, m, seed, classes))
    return np.setdiff1d(np.arange(n), val), val


def build_models(cached: CachedTask, config: TrainConfig) -> tuple[Pooler, TaskHead]:
    """Pooler + head with weights initialised deterministically from ``config.seed``.

    An STS head gets the task's ``info["score_scale"]`` (gold score meaning "identical": targets are
    score / scale) unless ``config.head_options`` sets ``score_scale`` itself.
    """
    task = cached.task
    head_options = task.head_options() | config.head_options
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        pooler = build_pooler(config.pooler, cached.dim, **config.pooler_options)
        head = build_head(task.kind, pooler.out_dim, num_labels=task.num_labels, **head_options)
    return pooler, head


def _output(pooler: Pooler, head: TaskHead, cached: CachedTask, split: str, rows: np.ndarray) -> torch.Tensor:
    """Head output for ``rows`` of ``split``: every text column pooled in ONE packed forward."""
    groups = [cached.ids[split][c][rows] for c in cached.columns(split)]
    x, ptr = cached.states.packed(np.concatenate(groups))
    z = pooler.forward_packed(x, ptr)
    return head(*torch.split(z, [len(rows)] * len(groups)))


def predict(
    pooler: Pooler, head: TaskHead, cached: CachedTask, split: str, rows: np.ndarray, metric: str, batch: int
) -> torch.Tensor:
    """Predictions for ``rows`` (head.predict; the full similarity matrix for mrr). Reads no labels."""
    pooler.eval()
    head.eval()
    with torch.no_grad():
        zs: list[list[torch.Tensor]] = []
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            groups = [cached.ids[split][c][chunk] for c in cached.columns(split)]
            z = pooler.forward_packed(*cached.states.packed(np.concatenate(groups)))
            zs.append(list(torch.split(z, [len(chunk)] * len(groups))))
        output = head(*[torch.cat(parts) for parts in zip(*zs, strict=True)])
    return output.float() if metric == "mrr" else torch.as_tensor(head.predict(output))


def _score(metric: str, preds: torch.Tensor, labels: np.ndarray | None) -> float:
    return float(compute(metric, preds.numpy(), None if metric == "mrr" else labels))


def _make_optimizer(config: TrainConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    kind = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return kind(params, lr=config.lr, weight_decay=config.weight_decay)


def _train_epoch(
    pooler: Pooler,
    head: TaskHead,
    cached: CachedTask,
    rows: np.ndarray,
    labels: np.ndarray | None,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    epoch: int,
    progress: bool,
) -> float:
    """One pass over ``rows`` in the (seed, epoch) order; returns the mean training loss."""
    pooler.train()
    head.train()
    order = rows[np.random.default_rng([config.seed, epoch]).permutation(len(rows))]
    params = [p for m in (pooler, head) for p in m.parameters()]
    total, count = 0.0, 0
    starts = range(0, len(order), config.batch_size)
    for start in tqdm(starts, desc=f"epoch {epoch}", leave=False, unit="batch", disable=not progress):
        chunk = order[start : start + config.batch_size]
        output = _output(pooler, head, cached, "train", chunk)
        loss = head.loss(output, None if labels is None else labels[chunk])
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteError(_non_finite(f"training loss is {value}", config, epoch, start, len(order)))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        total += value * len(chunk)
        count += len(chunk)
    bad = [n for m in (pooler, head) for n, p in m.named_parameters() if not bool(torch.isfinite(p).all())]
    if bad:
        raise NonFiniteError(
            _non_finite(f"weights {bad[0]} became non-finite", config, epoch, None, len(order))
        )
    return total / max(count, 1)


class NonFiniteError(InputError):
    """Training diverged (non-finite loss or weights); the run stops and keeps its last good checkpoint."""


def _non_finite(what: str, config: TrainConfig, epoch: int, start: int | None, n: int) -> str:
    """One line: what went non-finite, where (epoch / step), the likely causes and what was kept."""
    steps = -(-n // config.batch_size)
    where = f"epoch {epoch}" + (
        f", step {start // config.batch_size + 1} of {steps}" if start is not None else ""
    )
    return (
        f"{what} at {where} (lr={config.lr:g}, weight_decay={config.weight_decay:g}): the learning rate (or "
        "lr x weight decay) is likely too high (try a 10x smaller --lr, or --grad-clip 1.0), or the cached "
        "states or labels hold NaN/inf; the run stopped, earlier epochs' checkpoints are kept"
    )


def fit(
    cached: CachedTask,
    config: TrainConfig,
    run_dir: str | os.PathLike[str],
    *,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train one seed into ``run_dir`` (resuming a checkpoint of the same run) and return its metrics dict."""
    config.validate()
    task, run_dir = cached.task, Path(run_dir)
    labels = task.splits["train"].labels
    train_rows, val_rows = carve_validation(
        labels, len(task.splits["train"]), config.val_fraction, config.seed
    )
    has_eval = "eval" in cached.ids
    eval_rows = np.arange(len(cached.ids["eval"]["texts"])) if has_eval else np.zeros(0, dtype=np.int64)
    sizes = {"train": len(train_rows), "val": len(val_rows), "eval": len(eval_rows)}
    config_json = make_run_config(cached, config, sizes)
    pooler, head = build_models(cached, config)  # bad pooler/head options fail before any folder is written
    done = prepare_run_dir(run_dir, config_json, overwrite)
    if done is not None:
        return done
    optimizer = _make_optimizer(config, [p for m in (pooler, head) for p in m.parameters()])
    modules = {"pooler": pooler, "head": head}
    key = config_json["key"]
    state = load_checkpoint_state(run_dir) or {
        "epoch": 0,
        "best_epoch": 0,
        "best_val": None,
        "history": [],
        "stopped_early": False,
        "run_key": key,
    }
    eval_preds: dict[str, torch.Tensor] = {}
    if state["epoch"] > 0:
        eval_preds = load_epoch(run_dir, state["epoch"], modules, optimizer, run_key=key)
    rows = {"train": train_rows, "val": val_rows, "eval": eval_rows if has_eval else None}
    desc = f"{config.pooler} seed {config.seed}"
    bar = tqdm(total=config.epochs, initial=state["epoch"], desc=desc, unit="epoch", disable=not progress)
    while state["epoch"] < config.epochs and not state["stopped_early"]:
        loss, val = _epoch(cached, config, modules, optimizer, rows, state, eval_preds, progress)
        save_epoch(run_dir, state, modules, optimizer, eval_preds)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", val=f"{val:.4f}")
    bar.close()
    return _finish(cached, config, run_dir, state, modules, sizes)


def _epoch(
    cached: CachedTask,
    config: TrainConfig,
    modules: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    rows: dict[str, np.ndarray | None],
    state: dict[str, Any],
    eval_preds: dict[str, torch.Tensor],
    progress: bool,
) -> tuple[float, float]:
    """Train epoch ``state["epoch"] + 1``, score validation, store eval predictions (no labels), update
    ``state`` (history, best epoch, early stopping). Returns (mean train loss, validation metric)."""
    task, pooler, head = cached.task, modules["pooler"], modules["head"]
    labels, val_rows, eval_rows = task.splits["train"].labels, rows["val"], rows["eval"]
    assert rows["train"] is not None and val_rows is not None
    epoch, t0 = state["epoch"] + 1, time.perf_counter()
    loss = _train_epoch(pooler, head, cached, rows["train"], labels, optimizer, config, epoch, progress)
    val_preds = predict(pooler, head, cached, "train", val_rows, task.metric, config.eval_batch_size)
    val = _score(task.metric, val_preds, None if labels is None else labels[val_rows])
    if eval_rows is not None:
        eval_preds[f"epoch_{epoch}"] = predict(
            pooler, head, cached, "eval", eval_rows, task.metric, config.eval_batch_size
        )
    if state["best_val"] is None or val > state["best_val"]:
        state["best_val"], state["best_epoch"] = val, epoch
    state["epoch"] = epoch
    state["history"].append(
        {"epoch": epoch, "train_loss": loss, "val": val, "seconds": time.perf_counter() - t0}
    )
    patience = config.patience
    state["stopped_early"] = (
        patience is not None and epoch - state["best_epoch"] >= patience and epoch < config.epochs
    )
    return loss, val


def _finish(
    cached: CachedTask,
    config: TrainConfig,
    run_dir: Path,
    state: dict[str, Any],
    modules: dict[str, Any],
    sizes: dict[str, int],
) -> dict[str, Any]:
    """Load the best-on-validation state, score the eval split ONCE, write the final artefacts."""
    task, best = cached.task, int(state["best_epoch"])
    key = state["run_key"]
    eval_preds = load_epoch(run_dir, int(state["epoch"]), {}, run_key=key)  # every epoch's eval predictions
    load_epoch(run_dir, best, modules, run_key=key)
    pooler, head = modules["pooler"], modules["head"]
    metrics: dict[str, Any] = {
        "task": task.name, "metric": task.metric, "seed": config.seed, "pooler": config.pooler,
        "best_val_epoch": best, "val": state["best_val"], "epochs_run": state["epoch"],
        "stopped_early": state["stopped_early"], "sizes": sizes,
        "train_seconds": sum(h["seconds"] for h in state["history"]),
        "params": {"pooler": pooler.num_parameters(), "head": sum(p.numel() for p in head.parameters())},
        "history": [dict(h) for h in state["history"]], "run_key": key,
        "truncation": {"truncated": cached.states.num_truncated, "max_length": cached.states.truncated_at,
                       "texts": len(cached.states)},
    }  # fmt: skip
    if "eval" in cached.ids:
        eval_labels = task.splits["eval"].labels  # the first and only read of the eval labels
        per_epoch = {int(k.split("_")[1]): _score(task.metric, v, eval_labels) for k, v in eval_preds.items()}
        for h in metrics["history"]:
            h["eval"] = per_epoch.get(h["epoch"])
        top = max(per_epoch, key=lambda e: (per_epoch[e], -e))
        metrics["eval"] = per_epoch[best]
        metrics["eval_best_epoch_optimistic"] = {
            "epoch": top, "value": per_epoch[top],
            "note": "epoch chosen on the EVAL split (how the paper reports); optimistic, not for model selection",
        }  # fmt: skip
    pooler.save_pretrained(run_dir / POOLER_DIR)
    atomic_save_tensors(run_dir / HEAD_WEIGHTS, head.state_dict())
    atomic_write_json(run_dir / HEAD_CONFIG, head.config())
    atomic_write_json(run_dir / METRICS_NAME, metrics)
    return metrics


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


def train(
    cached: CachedTask,
    config: TrainConfig,
    out_dir: str | os.PathLike[str],
    seeds: Sequence[int] = (0,),
    *,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train one run per seed into ``out_dir/seed-<s>/`` and write ``out_dir/summary.json`` (mean ± std)."""
    if not seeds:
        raise InputError("seeds is empty; pass at least one seed, e.g. seeds=(0,)")
    out = Path(out_dir)
    per_seed = [
        fit(
            cached,
            config.replace(seed=int(s)),
            out / f"seed-{int(s)}",
            progress=progress,
            overwrite=overwrite,
        )
        for s in seeds
    ]
    result = {
        "per_seed": per_seed,
        "summary": summarize(per_seed),
        "config": config.to_dict() | {"seeds": list(seeds)},
    }
    atomic_write_json(out / "summary.json", result)
    return result
