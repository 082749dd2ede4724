"""THE training loop of every run: a pooler + task head on token states, and (fine-tuning) the backbone too.

A frozen-head run reads its states from the hidden-state cache: the frozen backbone runs once per unique text
(:func:`glot.cache.task.cache_task`) and training reads packed batches from the memory-mapped cache. A LoRA /
full fine-tuning run (:mod:`glot.training.finetune`) goes through the SAME loop; only its
:class:`~glot.training.setup.Setup` differs: the states come from a backbone forward with gradients, and the
backbone's trainable weights are optimised and checkpointed with the pooler and head.

Model selection uses a validation split CARVED FROM TRAIN (``val_fraction``, stratified for classification):
each epoch trains, scores the validation split and keeps the best state; at the end the best-on-validation
state is loaded and the eval split's metric is computed once. The eval split's LABELS are read only then: each
epoch only stores eval predictions, from which the per-epoch eval metric — and the paper-style "best epoch on
the eval split" (optimistic) — are computed at the end.

Determinism: weights are initialised from ``seed``; epoch e shuffles with ``default_rng([seed, e])`` and draws
its dropout masks (fine-tuning) from a torch generator seeded by (seed, e), so a run interrupted after any
epoch and rerun with the same command resumes from its last checkpoint and ends with exactly the numbers of an
uninterrupted run (see :mod:`glot.training.checkpoint` for the folder layout).
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
from glot.errors import InputError
from glot.io import atomic_write_json
from glot.pooling.layermix import check_stacking
from glot.pooling.poolers import Pooler, from_config
from glot.progress import tqdm
from glot.training.checkpoint import (
    load_checkpoint_state,
    load_epoch,
    load_run,
    make_run_config,
    prepare_run_dir,
    save_epoch,
)
from glot.training.config import TrainConfig
from glot.training.heads import TaskHead, build_head
from glot.training.results import finish_run, summarize
from glot.training.setup import Rows, Setup, carve_validation, make_optimizer, row_counts, split_rows
from glot.training.sources import CacheSource, predict, score

__all__ = [
    "NonFiniteError",
    "Setup",
    "TrainConfig",
    "cache_task",
    "carve_validation",
    "fit",
    "load_run",
    "predict",
    "run_loop",
    "split_rows",
    "summarize",
    "train",
]


def build_models(cached: CachedTask, config: TrainConfig) -> tuple[Pooler, TaskHead]:
    """Pooler + head with weights initialised deterministically from ``config.seed``.

    An STS head gets the task's ``info["score_scale"]`` (gold score meaning "identical": targets are
    score / scale) unless ``config.head_options`` sets ``score_scale`` itself.
    """
    task = cached.task
    head_options = task.head_options() | config.head_options
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        layer = cached.states.manifest["ingredients"]["backbone"].get("layer")
        check_stacking(config.pooler_options.gnn.mix_layers, layer)  # glot.pooling.layermix
        pooler = from_config(config.pooler_config(cached.dim))  # the typed spec, normalised in TrainConfig
        head = build_head(task.kind, pooler.out_dim, num_labels=task.num_labels, **head_options)
    return pooler, head


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


def fit(
    cached: CachedTask,
    config: TrainConfig,
    run_dir: str | os.PathLike[str],
    *,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train one seed of a pooler + head on cached states into ``run_dir`` (resuming a checkpoint of the same
    run) and return its metrics dict."""
    config.validate()
    rows = split_rows(cached.task, config, has_eval="eval" in cached.ids)
    config_json = make_run_config(cached, config, row_counts(rows))
    pooler, head = build_models(cached, config)  # bad pooler/head options fail before any folder is written

    def finish(run_dir: Path, state: dict[str, Any], optimizer: Any, metrics: dict[str, Any]) -> None:
        states, head_params = cached.states, sum(p.numel() for p in head.parameters())
        metrics["pooler"] = config.pooler
        metrics["params"] = {"pooler": pooler.num_parameters(), "head": head_params}
        metrics["truncation"] = {"truncated": states.num_truncated, "max_length": states.truncated_at,
                                 "texts": len(states)}  # fmt: skip

    setup = Setup(cached.task, CacheSource(cached), pooler, head, finish=finish)
    return run_loop(setup, config, Path(run_dir), config_json, rows, progress=progress, overwrite=overwrite)


def run_loop(
    setup: Setup,
    config: TrainConfig,
    run_dir: Path,
    config_json: dict[str, Any],
    rows: Rows,
    *,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """The training loop of every run: epochs of training, validation and stored eval predictions with a
    checkpoint after each (a rerun of the same run resumes the latest), then :func:`~glot.training.results.finish_run`. An identical
    finished run in ``run_dir`` is returned as is; ``rows`` comes from :func:`split_rows`."""
    done = prepare_run_dir(run_dir, config_json, overwrite)
    if done is not None:
        return done
    modules, key = setup.checkpointed(), config_json["key"]
    optimizer = make_optimizer(config, setup.param_groups(config.lr))
    state = load_checkpoint_state(run_dir) or {
        "epoch": 0, "best_epoch": 0, "best_val": None, "history": [], "stopped_early": False, "run_key": key,
    }  # fmt: skip
    state.setdefault("costs", [])  # per epoch: each step's (wall, CPU) seconds, train and validation seconds
    eval_preds: dict[str, torch.Tensor] = {}
    if state["epoch"] > 0:
        eval_preds = load_epoch(run_dir, state["epoch"], modules, optimizer, run_key=key)
    if setup.score_untrained and "val_untrained" not in state:
        state["val_untrained"] = _validate(setup, config, rows)
    desc = f"{setup.pooler.name} seed {config.seed}"
    bar = tqdm(total=config.epochs, initial=state["epoch"], desc=desc, unit="epoch", disable=not progress)
    while state["epoch"] < config.epochs and not state["stopped_early"] and _budget(setup, state) != 0:
        loss, val = _epoch(setup, config, optimizer, rows, state, eval_preds, progress)
        save_epoch(run_dir, state, modules, optimizer, eval_preds)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", val="-" if val is None else f"{val:.4f}")
    bar.close()
    return finish_run(setup, config, run_dir, state, modules, optimizer, rows)


def _epoch(
    setup: Setup,
    config: TrainConfig,
    optimizer: torch.optim.Optimizer,
    rows: Rows,
    state: dict[str, Any],
    eval_preds: dict[str, torch.Tensor],
    progress: bool,
) -> tuple[float, float | None]:
    """Train epoch ``state["epoch"] + 1``, score validation, store eval predictions (no labels), update
    ``state`` (history, costs, best epoch, early stopping). Returns (mean train loss, validation metric)."""
    assert rows["train"] is not None
    epoch, t0 = state["epoch"] + 1, time.perf_counter()
    with torch.random.fork_rng(devices=[]):  # dropout masks (fine-tuning) depend on (seed, epoch) alone
        torch.manual_seed(int(np.random.SeedSequence([config.seed, epoch]).generate_state(1)[0]))
        loss, steps = _train_epoch(
            setup, config, rows["train"], optimizer, epoch, _budget(setup, state), progress
        )
    t1 = time.perf_counter()
    val = _validate(setup, config, rows) if setup.evaluate else None
    t2 = time.perf_counter()
    if setup.evaluate and rows["eval"] is not None:
        eval_preds[f"epoch_{epoch}"] = predict(
            setup.pooler, setup.head, setup.source, "eval", rows["eval"], setup.task.metric,
            config.eval_batch_size,
        )  # fmt: skip
    if val is None or state["best_val"] is None or val > state["best_val"]:  # no validation: the last
        state["best_val"], state["best_epoch"] = val, epoch
    state["epoch"] = epoch
    state["history"].append(
        {"epoch": epoch, "train_loss": loss, "val": val, "seconds": time.perf_counter() - t0}
    )
    state["costs"].append({"steps": steps, "train_seconds": t1 - t0, "val_seconds": t2 - t1})
    patience = config.patience
    state["stopped_early"] = (
        patience is not None and epoch - state["best_epoch"] >= patience and epoch < config.epochs
    )
    return loss, val


def _train_epoch(
    setup: Setup,
    config: TrainConfig,
    rows: np.ndarray,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    budget: int | None,
    progress: bool,
) -> tuple[float, list[list[float]]]:
    """One pass over ``rows`` in the (seed, epoch) order, at most ``budget`` steps (None: all); returns the
    mean training loss and each step's (wall, CPU) seconds."""
    labels = setup.task.splits["train"].labels
    setup.pooler.train()
    setup.head.train()
    setup.source.train(True)
    order = rows[np.random.default_rng([config.seed, epoch]).permutation(len(rows))]
    params = [p for _, group in setup.param_groups(config.lr) for p in group]
    total, count, steps = 0.0, 0, []
    starts = range(0, len(order), config.batch_size)[:budget]
    for start in tqdm(starts, desc=f"epoch {epoch}", leave=False, unit="batch", disable=not progress):
        chunk, wall, cpu = order[start : start + config.batch_size], time.perf_counter(), time.process_time()
        z = setup.pooler.forward_packed(*setup.source.packed("train", chunk))  # every text column at once
        loss = setup.head.loss(
            setup.head(*torch.split(z, len(chunk))), None if labels is None else labels[chunk]
        )
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteError(_non_finite(f"training loss is {value}", config, epoch, start, len(order)))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        steps.append([time.perf_counter() - wall, time.process_time() - cpu])
        total += value * len(chunk)
        count += len(chunk)
    bad = [n for n, p in setup.named_trainable() if not bool(torch.isfinite(p).all())]
    if bad:
        raise NonFiniteError(
            _non_finite(f"weights {bad[0]} became non-finite", config, epoch, None, len(order))
        )
    return total / max(count, 1), steps


# ---------------------------------------------------------------------------------------------- helpers
def _budget(setup: Setup, state: dict[str, Any]) -> int | None:
    """Optimizer steps left under ``setup.max_steps`` (None: no bound)."""
    if setup.max_steps is None:
        return None
    return max(0, setup.max_steps - sum(len(c["steps"]) for c in state["costs"]))


def _validate(setup: Setup, config: TrainConfig, rows: Rows) -> float:
    """The task metric on the validation rows (carved from train)."""
    assert rows["val"] is not None
    labels = setup.task.splits["train"].labels
    preds = predict(setup.pooler, setup.head, setup.source, "train", rows["val"], setup.task.metric,
                    config.eval_batch_size)  # fmt: skip
    return score(setup.task.metric, preds, None if labels is None else labels[rows["val"]])


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
        "lr x weight decay) is likely too high (try a 10x smaller --lr, or --grad-clip 1.0), or the token "
        "states or labels hold NaN/inf; the run stopped, earlier epochs' checkpoints are kept"
    )
