"""Run directories: checkpoints (resume), final artefacts and loading — safetensors + JSON, no pickle.

One training run (one seed) lives in a folder::

    run_config.json      full config and its run ``key`` (:mod:`glot.training.runkey`): train settings, task spec,
                         data sha256, backbone reference + fingerprint, cache key
    checkpoint/          state.json (epoch, history, best epoch, run_key) -> epoch-NNN/ folders (+ epoch.json)
    pooler/              pooler.save_pretrained (pooler_config.json + model.safetensors)
    head.safetensors     task-head weights;  head_config.json: build_head(**config) rebuilds the head
    metrics.json         written LAST: its presence marks a finished run

A checkpoint is written at the end of every epoch into a fresh ``checkpoint/epoch-NNN/`` folder (model,
optimizer and per-epoch eval predictions as safetensors, each atomic); only then is ``checkpoint/state.json``
replaced atomically to point at it, so a kill at any moment leaves the previous consistent checkpoint. Folders
other than the latest and the best-on-validation epoch are then deleted.

The run key is stored in ``run_config.json``, ``checkpoint/state.json``, every ``epoch-NNN/epoch.json`` and
``metrics.json``: a folder is resumed or reused only when all of them match the run being started (deleting
``run_config.json`` does not let another configuration adopt the checkpoint).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from glot.errors import InputError
from glot.io import atomic_save_tensors, atomic_write_json, load_tensors, load_weights, read_json
from glot.pooling.poolers import Pooler, load_pooler
from glot.training.heads import TaskHead, build_head
from glot.training.runkey import (
    RUN_FORMAT,
    build_run_config,
    config_differences,
    data_fingerprint,
    make_run_config,
)

__all__ = [
    "ADAPTER_DIR",
    "BACKBONE_DIR",
    "CHECKPOINT_DIR",
    "FINETUNE_DIRS",
    "HEAD_CONFIG",
    "HEAD_WEIGHTS",
    "METRICS_NAME",
    "POOLER_DIR",
    "RUN_CONFIG_NAME",
    "RUN_FORMAT",
    "build_run_config",
    "data_fingerprint",
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

# The run-folder layout, defined here only (the loop, fine-tuning, export and the hub import these names).
RUN_CONFIG_NAME = "run_config.json"
METRICS_NAME = "metrics.json"
CHECKPOINT_DIR = "checkpoint"
STATE_NAME = "state.json"
EPOCH_META = "epoch.json"
HEAD_WEIGHTS = "head.safetensors"
HEAD_CONFIG = "head_config.json"
POOLER_DIR = "pooler"
ADAPTER_DIR = "adapter"  # LoRA runs: the trained adapter
BACKBONE_DIR = "backbone"  # full fine-tuning runs: the trained backbone
FINETUNE_DIRS = {"lora": ADAPTER_DIR, "full": BACKBONE_DIR}  # run method -> its trained-weights folder


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

    ``state`` must hold ``epoch``, ``best_epoch`` and ``run_key`` (the run's key, stored in ``state.json`` and
    in the epoch folder so a checkpoint is never resumed under another configuration); ``modules`` maps a
    name ("pooler", "head") to a module.
    """
    epoch = int(state["epoch"])
    assert state.get("run_key"), "a checkpoint must record its run key"
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
    atomic_write_json(folder / EPOCH_META, {"epoch": epoch, "run_key": state["run_key"]})
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
    run_dir: Path,
    epoch: int,
    modules: dict[str, nn.Module],
    optimizer: torch.optim.Optimizer | None = None,
    run_key: str | None = None,
) -> dict[str, torch.Tensor]:
    """Load the weights (and optimizer) saved after ``epoch``; return that checkpoint's eval predictions.

    With ``run_key`` the epoch folder must have been written by that run (else a one-line InputError)."""
    folder = _epoch_dir(run_dir, epoch)
    if run_key is not None:
        meta = folder / EPOCH_META
        stored = read_json(meta).get("run_key") if meta.is_file() else None
        if stored != run_key:
            raise _refuse(run_dir, f"a checkpoint {folder.name} of another run (run key {str(stored)[:12]})")
    for name, module in modules.items():
        load_weights(module, folder / f"{name}.safetensors")
    if optimizer is not None:
        restore_optimizer(
            optimizer, load_tensors(folder / "optimizer.safetensors"), read_json(folder / "optimizer.json")
        )
    return load_tensors(folder / "eval_predictions.safetensors")


# ---------------------------------------------------------------------------------------------- run folders
def _refuse(run_dir: Path, what: str) -> InputError:
    return InputError(
        f"{run_dir} holds {what}; pass a new --out folder (out_dir), or --overwrite (overwrite=True) to "
        "replace it"
    )


def _artefact_key(run_dir: Path) -> tuple[bool, str | None]:
    """(whether ``run_dir`` holds run artefacts, the run key they were written with, if recorded)."""
    for path in (run_dir / METRICS_NAME, run_dir / CHECKPOINT_DIR / STATE_NAME):
        if path.is_file():
            return True, read_json(path).get("run_key")
    present = any((run_dir / name).exists() for name in (CHECKPOINT_DIR, POOLER_DIR, HEAD_WEIGHTS))
    return present, None


def prepare_run_dir(run_dir: Path, config_json: dict[str, Any], overwrite: bool) -> dict[str, Any] | None:
    """Prepare ``run_dir``; return the finished metrics if this exact run is already complete.

    A folder is reused only when its ``run_config.json`` AND its checkpoint / metrics carry this run's key;
    anything else (another configuration, artefacts without or with another key) is refused with one line.
    """
    if overwrite and run_dir.exists():
        shutil.rmtree(run_dir)
    existing, key = run_dir / RUN_CONFIG_NAME, config_json["key"]
    if existing.is_file():
        old = read_json(existing)
        if old.get("key") != key:
            fmt = old.get("format", 1)
            reason = (
                f"run format {fmt}, now {RUN_FORMAT}"
                if fmt != RUN_FORMAT
                else config_differences(old, config_json)
            )
            raise _refuse(run_dir, f"a run with a different configuration (differs in: {reason})")
    present, stored = _artefact_key(run_dir)
    # results without a recorded key (fine-tuning metrics) are trusted only next to their own run_config.json
    if present and stored != key and (stored is not None or not existing.is_file()):
        what = "with another run key" if stored else "without a run key (made by an older glot or damaged)"
        raise _refuse(run_dir, f"checkpoint / results {what}, which this run cannot resume")
    run_dir.mkdir(parents=True, exist_ok=True)
    if not existing.is_file():
        atomic_write_json(existing, config_json)
    if (run_dir / METRICS_NAME).is_file():
        return dict(read_json(run_dir / METRICS_NAME))
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
            "frozen backbone; load it with glot.training.finetune.load_finetuned(run_dir) (.evaluate / .embed)"
        )
    head = build_head(**read_json(run / HEAD_CONFIG))
    load_weights(head, run / HEAD_WEIGHTS)
    return load_pooler(run / POOLER_DIR).eval(), head.eval(), run_config
