"""The fine-tuning run: training loop with best-on-validation selection, the metrics dict, run folder writing."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from glot.backbones.frozen import FrozenBackbone
from glot.data import Task
from glot.io import atomic_save_tensors, atomic_write_json
from glot.progress import tqdm
from glot.training.checkpoint import METRICS_NAME
from glot.training.config import TrainConfig
from glot.training.finetune.costs import _timing, peak_rss_mb, trainable_parameters
from glot.training.finetune.folder import EVAL_OUTPUTS, _check_folder, _run_config, _save
from glot.training.finetune.model import FinetunedModel, _columns, _score, prepare_finetune
from glot.training.finetune.options import FinetuneOptions


def _optimizer(model: FinetunedModel, config: TrainConfig, opts: FinetuneOptions, method: str) -> Any:
    backbone_lr = opts.backbone_lr or (config.lr if method == "lora" else 2e-5)
    groups = [
        {"params": [p for p in model.encoder.parameters() if p.requires_grad], "lr": backbone_lr},
        {"params": list(model.head.parameters()), "lr": config.lr},
    ]
    kind = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return kind(groups, lr=config.lr, weight_decay=config.weight_decay)


def _freeze_unused(model: FinetunedModel) -> list[str]:
    """After the first backward: parameters that got no gradient (e.g. BERT's unused pooler) stop counting
    as trainable. Returns their names."""
    unused = [n for n, p in model.encoder.named_parameters() if p.requires_grad and p.grad is None]
    for name, param in model.encoder.named_parameters():
        if name in unused:
            param.requires_grad_(False)
    return unused


def _snapshot(model: FinetunedModel) -> dict[str, Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _restore(model: FinetunedModel, state: dict[str, Tensor]) -> None:
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


def _train_loop(
    model: FinetunedModel,
    task: Task,
    rows: tuple[np.ndarray, np.ndarray],
    config: TrainConfig,
    opts: FinetuneOptions,
    method: str,
    progress: bool,
) -> dict[str, Any]:
    """Epochs of training with best-on-validation selection; returns history, timings and the best state."""
    train, labels = task.splits["train"], task.splits["train"].labels
    train_rows, val_rows = rows
    optimizer, step_times, history = _optimizer(model, config, opts, method), [], []
    best: dict[str, Any] = {"val": None, "epoch": 0, "state": None, "seconds": 0.0}
    if opts.score_untrained and opts.evaluate:
        best["untrained_val"] = model.evaluate(train, task.metric, val_rows, config.eval_batch_size)
    clock, unused = 0.0, None
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = train_rows[np.random.default_rng([config.seed, epoch]).permutation(len(train_rows))]
        t0, losses = time.perf_counter(), []
        for start in tqdm(range(0, len(order), config.batch_size), desc=f"{method} epoch {epoch}",
                          leave=False, disable=not progress):  # fmt: skip
            chunk, s0, c0 = order[start : start + config.batch_size], time.perf_counter(), time.process_time()
            loss = model.head.loss(model(_columns(train, chunk)), None if labels is None else labels[chunk])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            unused = _freeze_unused(model) if unused is None else unused
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], config.grad_clip)
            optimizer.step()
            step_times.append((time.perf_counter() - s0, time.process_time() - c0))
            losses.append(float(loss.detach()))
            if opts.max_steps is not None and len(step_times) >= opts.max_steps:
                break
        train_s = time.perf_counter() - t0
        val = model.evaluate(train, task.metric, val_rows, config.eval_batch_size) if opts.evaluate else None
        clock += time.perf_counter() - t0
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val": val, "seconds": train_s,
                        "steps": len(losses), "seconds_with_val": clock})  # fmt: skip
        done = epoch == config.epochs or (opts.max_steps is not None and len(step_times) >= opts.max_steps)
        if val is None or best["val"] is None or val > best["val"]:  # the final epoch needs no copy
            best.update(val=val, epoch=epoch, state=None if done else _snapshot(model), seconds=clock)
        if done:
            break
    return {"history": history, "step_times": step_times, "best": best, "unused": unused or []}


def run_finetune(
    task: Task,
    model: str | FrozenBackbone,
    method: str,
    pooling: str | None = None,
    train_config: TrainConfig | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    *,
    options: FinetuneOptions | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune ``model`` (alias, path, hub id or a FrozenBackbone) on ``task`` with ``method`` "lora" or
    "full" and ``pooling`` mean | eos | cls (default: eos for decoders, mean for encoders); return metrics.

    ``train_config`` supplies epochs, batch size, lr (head; LoRA too), seed, val_fraction, max_length;
    its ``pooler``/``pooler_options`` are ignored. With ``out_dir`` the run folder described in the module
    docstring is written (an identical finished run there is returned as is). A FrozenBackbone passed in is
    changed in place (cast to float32, LoRA layers injected or all weights unfrozen).
    """
    from glot.training.loop import carve_validation

    config, opts = train_config or TrainConfig(), options or FinetuneOptions()
    config.validate()
    opts.validate()
    torch.manual_seed(config.seed)
    n_train = len(task.splits["train"])
    rows = carve_validation(task.splits["train"].labels, n_train, config.val_fraction, config.seed)
    has_eval = "eval" in task.splits
    sizes = {"train": len(rows[0]), "val": len(rows[1]), "eval": len(task.splits["eval"]) if has_eval else 0}
    ft = prepare_finetune(task, model, method, pooling, config, opts)
    run_dir = Path(out_dir) if out_dir is not None else None
    run_config = _run_config(task, ft, method, config, opts, sizes)
    if run_dir is not None and (done := _check_folder(run_dir, run_config, overwrite)) is not None:
        return done
    rss_before = peak_rss_mb()
    result = _train_loop(ft, task, rows, config, opts, method, progress)
    if result["best"]["state"] is not None:  # an earlier epoch beat the last one
        _restore(ft, result["best"]["state"])
    metrics = _metrics(task, ft, method, config, opts, result, sizes) | {
        "memory": {"peak_rss_mb": peak_rss_mb(), "peak_rss_before_training_mb": rss_before},
        "run_key": run_config["key"],  # ties the finished result to its configuration (glot.training.runkey)
    }
    outputs = None
    if has_eval and opts.evaluate:
        t0 = time.perf_counter()
        outputs = ft.outputs(task.splits["eval"], batch_size=config.eval_batch_size)
        labels = task.splits["eval"].labels  # read once, after model selection
        metrics.update(
            eval=_score(ft.head, task.metric, outputs, labels), eval_seconds=time.perf_counter() - t0
        )
    if run_dir is not None:
        _save(ft, run_dir, method)
        if outputs is not None:
            atomic_save_tensors(run_dir / EVAL_OUTPUTS, {"output": outputs})
        atomic_write_json(run_dir / METRICS_NAME, metrics)
    return metrics


def _metrics(
    task: Task,
    ft: FinetunedModel,
    method: str,
    config: TrainConfig,
    opts: FinetuneOptions,
    result: dict[str, Any],
    sizes: dict[str, int],
) -> dict[str, Any]:
    """The run's metrics.json content from the training loop's result (eval and memory added by the caller)."""
    best, history = result["best"], result["history"]
    return {
        "task": task.name, "metric": task.metric, "seed": config.seed, "method": method,
        "pooler": ft.pooler.name, "best_val_epoch": best["epoch"], "val": best["val"],
        "val_untrained": best.get("untrained_val"), "epochs_run": len(history), "sizes": sizes,
        "train_seconds": sum(h["seconds"] for h in history), "seconds_to_best": best["seconds"],
        "params": trainable_parameters(ft), "no_gradient_params": result["unused"],
        "timing": _timing(result["step_times"], opts.timing_warmup), "history": history,
        "max_steps": opts.max_steps,
    }  # fmt: skip
