"""THE training loop of every run: a pooler + task head on token states, and (fine-tuning) the backbone too.

A frozen-head run reads its states from the hidden-state cache: the frozen backbone runs once per unique text
(:func:`glot.cache.task.cache_task`) and training reads packed batches from the memory-mapped cache. A LoRA /
full fine-tuning run (:mod:`glot.training.finetune`) goes through the SAME loop; only its
:class:`~glot.training.setup.Setup` differs: the states come from a backbone forward with gradients, and the
backbone's trainable weights are optimised and checkpointed with the pooler and head.

Model selection uses a validation split CARVED FROM TRAIN (``val_fraction``, stratified for classification):
each epoch trains, scores the validation split and keeps the best state (the latest within one example, see
:func:`~glot.training.selection.select_epoch`); at the end the best-on-validation state is loaded and the eval split's metric is computed once. The eval split's LABELS are read only then: each
epoch only stores eval predictions, from which the per-epoch eval metric — and the paper-style "best epoch on
the eval split" (optimistic) — are computed at the end.

Determinism: weights are initialised from ``seed``; epoch e shuffles with ``default_rng([seed, e])`` and draws
its dropout masks (fine-tuning) from a torch generator seeded by (seed, e), so a run interrupted after any
epoch and rerun with the same command resumes from its last checkpoint and ends with exactly the numbers of an
uninterrupted run (see :mod:`glot.training.checkpoint` for the folder layout).

Distributed (``torchrun --nproc_per_node N -m glot train``): the loop is the same on every rank; its hooks in
:mod:`glot.training.distributed` split each global batch over the ranks, gather the pooled vectors, reduce the
gradients and let rank 0 alone write, so N processes take the steps of one with the same ``batch_size``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from glot.cache.task import CachedTask, cache_task
from glot.distributed import device as training_device
from glot.distributed import is_main, on_main
from glot.errors import InputError
from glot.io import atomic_write_json
from glot.pooling.normalize import fit_pooler, fit_sample, needs_fit
from glot.pooling.poolers import Pooler
from glot.progress import tqdm
from glot.training import distributed as ddp
from glot.training.checkpoint import (
    load_checkpoint_state,
    load_epoch,
    load_run,
    make_run_config,
    prepare_run_dir,
    save_epoch,
)
from glot.training.config import TrainConfig
from glot.training.heads import TaskHead
from glot.training.precision import at_head_dtype, keyed, resolve_head_dtype
from glot.training.results import finish_run, summarize
from glot.training.selection import lr_scale, select_epoch, selection_tolerance, stops_early
from glot.training.setup import (
    Rows,
    Setup,
    build_models,
    carve_validation,
    make_optimizer,
    row_counts,
    split_rows,
)
from glot.training.sources import CacheSource, model_device, predict, score

if TYPE_CHECKING:
    from collections.abc import Callable

    from glot.training.online import OnlineTask

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


def train(
    cached: CachedTask | OnlineTask,
    config: TrainConfig,
    out_dir: str | os.PathLike[str],
    seeds: Sequence[int] = (0,),
    *,
    progress: bool = True,
    overwrite: bool = False,
    fit_seed: Callable[..., dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Train one run per seed into ``out_dir/seed-<s>/`` and write ``out_dir/summary.json`` (mean ± std).
    ``fit_seed`` trains one seed (default :func:`fit`; online mode: :func:`glot.training.online.fit_online`)."""
    if not seeds:
        raise InputError("seeds is empty; pass at least one seed, e.g. seeds=(0,)")
    out, fit_one = Path(out_dir), fit_seed or fit  # type: Path, Callable[..., dict[str, Any]]
    per_seed = [
        fit_one(
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
    if is_main():  # distributed (torchrun): rank 0 writes
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
    device = training_device(config.device)  # CUDA asked for where there is none: one line, before any work
    config, precision = keyed(config, device)  # "auto" is keyed as it resolves on that device (bf16 on CUDA)
    rows = split_rows(cached.task, config, has_eval="eval" in cached.ids)
    config_json = make_run_config(cached, config, row_counts(rows))
    pooler, head = build_models(cached, config, device)  # bad options fail before any folder is written

    states = cached.states
    truncation = {"truncated": states.num_truncated, "max_length": states.truncated_at, "texts": len(states)}

    def finish(run_dir: Path, state: dict[str, Any], optimizer: Any, metrics: dict[str, Any]) -> None:
        metrics |= run_metrics(config, pooler, head, precision, truncation)

    source = CacheSource(cached, graphs=pooler, device=device)  # graphs built once; batches on device
    setup = Setup(cached.task, source, pooler, head, finish=finish)
    return run_loop(setup, config, Path(run_dir), config_json, rows, progress=progress, overwrite=overwrite)


def run_metrics(
    config: TrainConfig, pooler: Pooler, head: TaskHead, precision: dict[str, str], truncation: dict[str, Any]
) -> dict[str, Any]:
    """What every frozen-head run adds to its metrics: pooler name, head dtype used, parameter counts and how many
    texts the backbone cut (cached and online runs alike)."""
    params = {"pooler": pooler.num_parameters(), "head": sum(p.numel() for p in head.parameters())}
    return {
        "pooler": config.pooler, "precision": precision, "params": params, "truncation": truncation,
        "device": str(model_device(pooler, head)),
    }  # fmt: skip


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
    optimizer = make_optimizer(config, setup.param_groups(config.lr))  # refuses a run with nothing to train
    done = on_main(prepare_run_dir, run_dir, config_json, overwrite)  # distributed: rank 0 writes
    if done is not None:
        return done
    modules, key = setup.checkpointed(), config_json["key"]
    state = load_checkpoint_state(run_dir) or {
        "epoch": 0, "best_epoch": 0, "best_val": None, "history": [], "stopped_early": False, "run_key": key,
    }  # fmt: skip
    if needs_fit(setup.pooler) and rows["train"] is not None:  # input statistics, tau="auto" (deterministic,
        sample = fit_sample(rows["train"], config.seed)  # so a resumed run refits the same values)
        with torch.no_grad():
            state["input_fit"] = fit_pooler(setup.pooler, *setup.source.packed("train", sample))
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
        on_main(save_epoch, run_dir, state, modules, optimizer, eval_preds)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", val="-" if val is None else f"{val:.4f}")
    bar.close()
    return on_main(finish_run, setup, config, run_dir, state, modules, optimizer, rows)


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
    scale = lr_scale([h["val"] for h in state["history"]], config.lr_plateau, config.lr_factor)
    for group, (base, _) in zip(optimizer.param_groups, setup.param_groups(config.lr), strict=True):
        group["lr"] = base * scale  # from the stored scores: a resumed run gets the same lr
    with torch.random.fork_rng(devices=[]):  # dropout masks (fine-tuning) depend on (seed, epoch) alone
        torch.manual_seed(int(np.random.SeedSequence([config.seed, epoch]).generate_state(1)[0]))
        loss, steps = _train_epoch(
            setup, config, rows["train"], optimizer, epoch, _budget(setup, state), progress
        )
    t1 = time.perf_counter()
    val = _validate(setup, config, rows) if setup.evaluate else None
    t2 = time.perf_counter()
    if setup.evaluate and rows["eval"] is not None:
        eval_preds[f"epoch_{epoch}"] = ddp.predict(
            _pooler(setup, config), setup.head, setup.source, "eval", rows["eval"], setup.task.metric,
            config.eval_batch_size,
        )  # fmt: skip
    n_val = 0 if rows["val"] is None else len(rows["val"])
    select_epoch(state, epoch, val, selection_tolerance(setup.task.metric, config.select_slack, n_val))
    state["epoch"] = epoch
    state["history"].append(
        {
            "epoch": epoch,
            "lr": config.lr * scale,
            "train_loss": loss,
            "val": val,
            "seconds": time.perf_counter() - t0,
        }
    )
    state["costs"].append({"steps": steps, "train_seconds": t1 - t0, "val_seconds": t2 - t1})
    state["stopped_early"] = stops_early(state, epoch, config)
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
    setup.pooler.train()
    setup.head.train()
    setup.source.train(True)
    order = rows[np.random.default_rng([config.seed, epoch]).permutation(len(rows))]
    params = [p for _, group in setup.param_groups(config.lr) for p in group]
    pooler = _pooler(setup, config)
    total, count, steps = 0.0, 0, []
    starts = range(0, len(order), config.batch_size)[:budget]
    for start in tqdm(starts, desc=f"epoch {epoch}", leave=False, unit="batch", disable=not progress):
        chunk, wall, cpu = order[start : start + config.batch_size], time.perf_counter(), time.process_time()
        z = ddp.pool_batch(pooler, setup, "train", chunk)  # every text column at once (distributed: gathered)
        loss = setup.head.loss(setup.head(*torch.split(z, len(chunk))), setup.source.labels("train", chunk))
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteError(_non_finite(f"training loss is {value}", config, epoch, start, len(order)))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        ddp.reduce_gradients(setup)  # distributed: the global batch's gradient on every rank
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


def _pooler(setup: Setup, config: TrainConfig) -> Pooler:
    """The pooler at the run's head dtype (bf16 autocast, fp32 out; :mod:`glot.training.precision`)."""
    device = next((p.device for p in setup.pooler.parameters()), torch.device("cpu"))
    return at_head_dtype(setup.pooler, resolve_head_dtype(config.head_dtype, device))  # type: ignore[no-any-return]


def _validate(setup: Setup, config: TrainConfig, rows: Rows) -> float:
    """The task metric on the validation rows (carved from train)."""
    assert rows["val"] is not None
    labels = setup.task.splits["train"].labels
    preds = ddp.predict(_pooler(setup, config), setup.head, setup.source, "train", rows["val"], setup.task.metric,
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
