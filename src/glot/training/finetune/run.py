"""A fine-tuning run: the same training loop as a frozen-head run (:func:`glot.training.loop.run_loop`), with the
backbone trained too and its states computed live; plus the fine-tuning metrics (costs) and weights."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from glot.backbones.frozen import FrozenBackbone
from glot.data import Task
from glot.io import atomic_save_tensors
from glot.training.config import TrainConfig
from glot.training.finetune.costs import _timing, peak_rss_mb, trainable_parameters
from glot.training.finetune.folder import EVAL_OUTPUTS, _run_config, save_backbone_weights
from glot.training.finetune.model import FinetunedModel, prepare_finetune
from glot.training.finetune.options import FinetuneOptions
from glot.training.loop import run_loop
from glot.training.setup import Finish, Setup, row_counts, split_rows
from glot.training.sources import BackboneSource

__all__ = ["run_finetune"]


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

    ``train_config`` supplies epochs, batch size, lr (head; LoRA too), seed, val_fraction, patience,
    grad_clip, max_length; its ``pooler``/``pooler_options`` are ignored. With ``out_dir`` the run folder of
    :mod:`glot.training.finetune` is written, with a checkpoint per epoch (an unfinished run resumes, an
    identical finished run is returned as is); without it the checkpoints live in a temporary folder. A
    FrozenBackbone passed in is changed in place (cast to float32, LoRA layers injected or all weights unfrozen).
    """
    config, opts = train_config or TrainConfig(), options or FinetuneOptions()
    config.validate()
    opts.validate()
    rows = split_rows(task, config, has_eval="eval" in task.splits)
    ft = prepare_finetune(task, model, method, pooling, config, opts)
    run_config = _run_config(task, ft, method, config, opts, row_counts(rows))
    setup = Setup(
        task, BackboneSource(ft.backbone, task.splits), ft.pooler, ft.head, backbone=ft.encoder,
        backbone_lr=opts.backbone_lr or (config.lr if method == "lora" else 2e-5), max_steps=opts.max_steps,
        evaluate=opts.evaluate, score_untrained=opts.score_untrained and opts.evaluate,
        finish=_finisher(task, ft, method, config, opts),
    )  # fmt: skip
    with _run_folder(out_dir) as run_dir:
        return run_loop(setup, config, run_dir, run_config, rows, progress=progress, overwrite=overwrite)


@contextmanager
def _run_folder(out_dir: str | os.PathLike[str] | None) -> Iterator[Path]:
    """``out_dir``, or a temporary folder (removed afterwards) for a run that keeps no folder."""
    if out_dir is not None:
        yield Path(out_dir)
        return
    with tempfile.TemporaryDirectory(prefix="glot-finetune-") as tmp:
        yield Path(tmp) / "run"


def _finisher(
    task: Task, ft: FinetunedModel, method: str, config: TrainConfig, opts: FinetuneOptions
) -> Finish:
    """The fine-tuning run's own final step (best weights loaded): the trained backbone weights, the raw eval
    outputs, and the cost metrics (trainable parameters, per-step times, peak memory)."""
    rss_before = peak_rss_mb()

    def finish(
        run_dir: Path, state: dict[str, Any], optimizer: torch.optim.Optimizer, metrics: dict[str, Any]
    ) -> None:
        unused = _no_gradient(ft, optimizer)  # e.g. BERT's pooler: no longer counted as trainable
        save_backbone_weights(ft, run_dir, method)
        if "eval" in metrics:
            t0 = time.perf_counter()
            outputs = ft.outputs(task.splits["eval"], batch_size=config.eval_batch_size)
            atomic_save_tensors(run_dir / EVAL_OUTPUTS, {"output": outputs})
            metrics["eval_seconds"] = time.perf_counter() - t0
        metrics.update(_cost_metrics(ft, method, opts, state, metrics), no_gradient_params=unused)
        metrics["memory"] = {"peak_rss_mb": peak_rss_mb(), "peak_rss_before_training_mb": rss_before}

    return finish


def _no_gradient(ft: FinetunedModel, optimizer: torch.optim.Optimizer) -> list[str]:
    """Backbone parameters that never got a gradient (no optimizer state); they stop counting as trainable."""
    unused = [n for n, p in ft.encoder.named_parameters() if p.requires_grad and p not in optimizer.state]
    for name, param in ft.encoder.named_parameters():
        if name in unused:
            param.requires_grad_(False)
    return unused


def _cost_metrics(
    ft: FinetunedModel, method: str, opts: FinetuneOptions, state: dict[str, Any], metrics: dict[str, Any]
) -> dict[str, Any]:
    """The fine-tuning entries of metrics.json, from the loop's state (its per-epoch step times and costs);
    each history entry gains its steps and the train + validation seconds so far."""
    costs, history, clock = state["costs"], [], 0.0
    for h, c in zip(metrics["history"], costs, strict=True):
        clock += c["train_seconds"] + c["val_seconds"]
        history.append({**h, "steps": len(c["steps"]), "seconds_with_val": clock})
    best = int(state["best_epoch"])
    return {
        "method": method, "pooler": ft.pooler.name, "val_untrained": state.get("val_untrained"),
        "seconds_to_best": sum(c["train_seconds"] + c["val_seconds"] for c in costs[:best]),
        "params": trainable_parameters(ft), "timing": _timing([s for c in costs for s in c["steps"]], opts.timing_warmup),
        "max_steps": opts.max_steps, "history": history,
    }  # fmt: skip
