"""Run directories: checkpoints (resume), final artefacts and loading — safetensors + JSON, no pickle.

One training run (one seed) lives in a folder::

    run_config.json      full config: train settings, task, backbone reference + fingerprint, cache key
    checkpoint/          state.json (epoch, history, best epoch, optimizer scalars) -> epoch-NNN/ folders
    pooler/              pooler.save_pretrained (pooler_config.json + model.safetensors)
    head.safetensors     task-head weights;  head_config.json: build_head(**config) rebuilds the head
    metrics.json         written LAST: its presence marks a finished run

A checkpoint is written at the end of every epoch into a fresh ``checkpoint/epoch-NNN/`` folder (model,
optimizer and per-epoch eval predictions as safetensors, each atomic); only then is ``checkpoint/state.json``
replaced atomically to point at it, so a kill at any moment leaves the previous consistent checkpoint. Folders
other than the latest and the best-on-validation epoch are then deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from glot.errors import InputError
from glot.io import atomic_save_tensors, atomic_write_json, load_tensors, read_json

if TYPE_CHECKING:
    from glot.heads import TaskHead
    from glot.poolers import Pooler
    from glot.taskcache import CachedTask
    from glot.trainconfig import TrainConfig

__all__ = [
    "CHECKPOINT_DIR",
    "METRICS_NAME",
    "RUN_CONFIG_NAME",
    "flatten_optimizer",
    "load_checkpoint_state",
    "load_epoch",
    "load_run",
    "make_run_config",
    "prepare_run_dir",
    "restore_optimizer",
    "run_dirs",
    "save_epoch",
]

RUN_CONFIG_NAME = "run_config.json"
METRICS_NAME = "metrics.json"
CHECKPOINT_DIR = "checkpoint"
STATE_NAME = "state.json"
HEAD_WEIGHTS = "head.safetensors"
HEAD_CONFIG = "head_config.json"
POOLER_DIR = "pooler"


# ---------------------------------------------------------------------------------------------- optimizer
def flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors (``state.<param>.<name>``) and JSON scalars.

    Adam's per-parameter ``exp_avg``, ``exp_avg_sq`` and ``step`` become tensors; ``param_groups`` (lr, betas,
    ...) and any non-tensor per-parameter values go to the JSON part.
    """
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def restore_optimizer(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    """Inverse of :func:`flatten_optimizer`: load the pieces back into ``optimizer``."""
    per_param: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        per_param.setdefault(int(index), {})[name] = value
    for index, values in meta.get("scalars", {}).items():
        per_param.setdefault(int(index), {}).update(values)
    groups = meta["param_groups"]
    for group in groups:  # JSON turned tuples (betas) into lists
        for key, value in group.items():
            if isinstance(value, list) and key != "params":
                group[key] = tuple(value)
    optimizer.load_state_dict({"state": per_param, "param_groups": groups})


# ---------------------------------------------------------------------------------------------- checkpoints
def _epoch_dir(run_dir: Path, epoch: int) -> Path:
    return run_dir / CHECKPOINT_DIR / f"epoch-{epoch:03d}"


def save_epoch(
    run_dir: Path,
    state: dict[str, Any],
    modules: dict[str, nn.Module],
    optimizer: torch.optim.Optimizer,
    eval_predictions: dict[str, torch.Tensor],
) -> None:
    """Write the checkpoint of epoch ``state["epoch"]`` and make it the current one (see module doc).

    ``state`` must hold ``epoch`` and ``best_epoch``; ``modules`` maps a name ("pooler", "head") to a module.
    """
    epoch = int(state["epoch"])
    folder = _epoch_dir(run_dir, epoch)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name, module in modules.items():
        atomic_save_tensors(folder / f"{name}.safetensors", module.state_dict())
    tensors, meta = flatten_optimizer(optimizer)
    atomic_save_tensors(folder / "optimizer.safetensors", tensors)
    atomic_write_json(folder / "optimizer.json", meta)
    atomic_save_tensors(folder / "eval_predictions.safetensors", eval_predictions)
    atomic_write_json(run_dir / CHECKPOINT_DIR / STATE_NAME, {**state, "folder": folder.name})
    keep = {folder.name, f"epoch-{int(state['best_epoch']):03d}"}
    for stale in (run_dir / CHECKPOINT_DIR).glob("epoch-*"):
        if stale.name not in keep:
            shutil.rmtree(stale, ignore_errors=True)


def load_checkpoint_state(run_dir: Path) -> dict[str, Any] | None:
    """The current checkpoint's state (epoch, history, ...) or None if no epoch has finished."""
    path = run_dir / CHECKPOINT_DIR / STATE_NAME
    return read_json(path) if path.is_file() else None


def load_epoch(
    run_dir: Path, epoch: int, modules: dict[str, nn.Module], optimizer: torch.optim.Optimizer | None = None
) -> dict[str, torch.Tensor]:
    """Load the weights (and optimizer) saved after ``epoch``; return that checkpoint's eval predictions."""
    folder = _epoch_dir(run_dir, epoch)
    for name, module in modules.items():
        module.load_state_dict(load_tensors(folder / f"{name}.safetensors"))
    if optimizer is not None:
        restore_optimizer(
            optimizer, load_tensors(folder / "optimizer.safetensors"), read_json(folder / "optimizer.json")
        )
    return load_tensors(folder / "eval_predictions.safetensors")


# ---------------------------------------------------------------------------------------------- run folders
def _version() -> str:
    from glot import __version__

    return __version__


def make_run_config(cached: CachedTask, config: TrainConfig, sizes: dict[str, int]) -> dict[str, Any]:
    """The full, JSON-ready description of a run; its ``key`` decides whether a folder can be resumed."""
    task = cached.task
    train_labels = task.splits["train"].labels
    labels_sha = (
        hashlib.sha256(np.ascontiguousarray(train_labels).tobytes()).hexdigest()
        if train_labels is not None
        else None
    )
    task_info = {
        "name": task.name, "kind": task.kind, "metric": task.metric, "num_labels": task.num_labels,
        "max_length": task.max_length, "label_names": task.label_names, "info": task.info, "sizes": sizes,
        "train_labels_sha256": labels_sha,
    }  # fmt: skip
    body = {"train": config.to_dict(), "task": task_info, "cache_key": cached.cache_key}
    canon = json.dumps(body, sort_keys=True, default=str)
    return {
        "format": 1, "glot_version": _version(), "key": hashlib.sha256(canon.encode()).hexdigest(),
        **json.loads(canon), "backbone": cached.backbone,
        "cache": {"path": str(cached.states.path), "dtype": cached.states.dtype},
    }  # fmt: skip


def prepare_run_dir(run_dir: Path, config_json: dict[str, Any], overwrite: bool) -> dict[str, Any] | None:
    """Prepare ``run_dir``; return the finished metrics if this exact run is already complete."""
    existing = run_dir / RUN_CONFIG_NAME
    if existing.is_file() and not overwrite:
        old = read_json(existing)
        if old.get("key") != config_json["key"]:
            raise InputError(
                f"{run_dir} holds a run with a different configuration (task, data, backbone or training "
                "settings); pass a new --out folder, or --overwrite to replace it"
            )
        if (run_dir / METRICS_NAME).is_file():
            return dict(read_json(run_dir / METRICS_NAME))
        return None
    if overwrite and run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(existing, config_json)
    return None


# ---------------------------------------------------------------------------------------------- loading runs
def run_dirs(directory: str | os.PathLike[str]) -> list[Path]:
    """The single-seed run folders under ``directory``: itself if it holds ``run_config.json``, else its
    ``seed-*`` children (sorted by seed)."""
    path = Path(directory)
    if (path / RUN_CONFIG_NAME).is_file():
        return [path]
    children: Iterable[Path] = path.glob("seed-*") if path.is_dir() else []
    found = [p for p in children if (p / RUN_CONFIG_NAME).is_file()]
    return sorted(
        found, key=lambda p: int(p.name.split("-", 1)[1]) if p.name[5:].lstrip("-").isdigit() else 0
    )


def load_run(
    directory: str | os.PathLike[str], seed: int | None = None
) -> tuple[Pooler, TaskHead, dict[str, Any]]:
    """Load a finished run: ``(pooler, head, run_config)``. ``directory`` is a run folder or a multi-seed
    folder (``seed`` picks one; required when there are several)."""
    from glot.heads import build_head
    from glot.poolers import load_pooler

    path = Path(directory)
    if not path.is_dir():
        raise FileNotFoundError(f"run directory {path} does not exist; pass the --out folder of `glot train`")
    runs = run_dirs(path)
    if seed is not None:
        runs = [
            p
            for p in runs
            if p.name == f"seed-{seed}"
            or (p == path and read_json(p / RUN_CONFIG_NAME)["train"]["seed"] == seed)
        ]
    if not runs:
        raise FileNotFoundError(
            f"{path} holds no glot run (no run_config.json, no seed-*/ folders with one)"
            + (f" for seed {seed}" if seed is not None else "")
        )
    if len(runs) > 1:
        raise InputError(
            f"{path} holds {len(runs)} seeds ({', '.join(p.name for p in runs)}); pass seed= / --seed to pick one"
        )
    run = runs[0]
    if not (run / METRICS_NAME).is_file():
        raise FileNotFoundError(
            f"{run} is unfinished (no {METRICS_NAME}); rerun the same `glot train` command to resume it"
        )
    run_config = read_json(run / RUN_CONFIG_NAME)
    method = run_config.get("method")
    # a LoRA / full fine-tuning run changed its backbone: pairing its head with the frozen one would be wrong
    if method in ("lora", "full"):
        raise InputError(
            f"{run} is a {method} fine-tuning run: its backbone was trained, so it cannot be used with the "
            "frozen backbone; load it with glot.finetune.load_finetuned(run_dir) (.evaluate / .embed)"
        )
    head = build_head(**read_json(run / HEAD_CONFIG))
    head.load_state_dict(load_tensors(run / HEAD_WEIGHTS))
    return load_pooler(run / POOLER_DIR).eval(), head.eval(), run_config
