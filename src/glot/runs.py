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
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from glot.errors import InputError
from glot.io import atomic_save_tensors, atomic_write_json, load_tensors, read_json

if TYPE_CHECKING:
    from glot.data import Task
    from glot.heads import TaskHead
    from glot.poolers import Pooler
    from glot.taskcache import CachedTask
    from glot.trainconfig import TrainConfig

__all__ = [
    "CHECKPOINT_DIR",
    "METRICS_NAME",
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

RUN_CONFIG_NAME = "run_config.json"
METRICS_NAME = "metrics.json"
CHECKPOINT_DIR = "checkpoint"
STATE_NAME = "state.json"
EPOCH_META = "epoch.json"
#: Version of the run-folder layout and run key; a folder of another format is not resumed.
RUN_FORMAT = 2
_NOT_KEYED = ("key", "glot_version", "cache")
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
        module.load_state_dict(load_tensors(folder / f"{name}.safetensors"))
    if optimizer is not None:
        restore_optimizer(
            optimizer, load_tensors(folder / "optimizer.safetensors"), read_json(folder / "optimizer.json")
        )
    return load_tensors(folder / "eval_predictions.safetensors")


# ---------------------------------------------------------------------------------------------- run key
def _version() -> str:
    from glot import __version__

    return __version__


def data_fingerprint(task: Task, splits: Sequence[str] | None = None) -> str:
    """sha256 over ``splits`` (default: all, by name) of ``task``: every text column and the labels of each.

    Any change of a text, a label (eval labels too) or of which rows form a split changes it. Shapes: none.
    """
    from glot.cache.key import texts_fingerprint
    from glot.taskcache import COLUMNS

    h = hashlib.sha256()
    for name in sorted(task.splits) if splits is None else splits:
        split = task.splits[name]
        h.update(f"split {name} {len(split.texts)};".encode())
        for column in COLUMNS:
            values = getattr(split, column)
            h.update(f"{column}:{'-' if values is None else texts_fingerprint(values)};".encode())
        labels = split.labels
        if labels is None:
            h.update(b"labels:-;")
        else:
            arr = np.ascontiguousarray(labels)
            h.update(f"labels:{arr.dtype.str}{arr.shape};".encode() + arr.tobytes())
    return h.hexdigest()


def build_run_config(
    task: Task,
    config: TrainConfig,
    sizes: dict[str, int],
    backbone: dict[str, Any],
    *,
    splits: Sequence[str] | None = None,
    cache: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The full, JSON-ready description of a run (GLOT or fine-tuning) and its ``key``.

    The key is the sha256 of everything that changes the result: the run format, the train config, the
    task (name, kind, metric, labels, ``task.info`` with the spec it was built from, sizes, and a data
    fingerprint over the texts and labels of every split used, eval included), the backbone reference,
    the cache key and storage dtype, and ``extra`` (e.g. fine-tuning options). Not in the key: where the
    cache lives and the glot version. ``cache`` = {"key", "dtype", "path"} for cached-state runs.
    """
    used = list(splits) if splits is not None else sorted(task.splits)
    task_info = {
        "name": task.name, "kind": task.kind, "metric": task.metric, "num_labels": task.num_labels,
        "max_length": task.max_length, "label_names": task.label_names, "info": task.info, "sizes": sizes,
        "data": {"splits": used, "sha256": data_fingerprint(task, used)},
    }  # fmt: skip
    body: dict[str, Any] = {
        "format": RUN_FORMAT, **(extra or {}), "train": config.to_dict(), "task": task_info,
        "backbone": backbone,
    }  # fmt: skip
    if cache is not None:
        body["cache_key"], body["cache_dtype"] = cache["key"], cache["dtype"]
    canon = json.loads(json.dumps(body, sort_keys=True, default=str))
    key = hashlib.sha256(json.dumps(canon, sort_keys=True).encode()).hexdigest()
    out = {"key": key, "glot_version": _version(), **canon}
    if cache is not None:
        out["cache"] = {"path": cache["path"], "dtype": cache["dtype"], "splits": used}
    return out


def make_run_config(cached: CachedTask, config: TrainConfig, sizes: dict[str, int]) -> dict[str, Any]:
    """:func:`build_run_config` of a run on cached states (the splits in the cache, its key and dtype)."""
    cache = {
        "key": cached.cache_key,
        "dtype": cached.states.dtype,
        "path": str(Path(cached.states.path).resolve()),
    }
    return build_run_config(cached.task, config, sizes, cached.backbone, splits=list(cached.ids), cache=cache)


def _differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    """The dotted names of the fields where two run configs differ (at most 6), e.g. ``train.lr``."""
    found: list[str] = []

    def walk(a: Any, b: Any, prefix: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                walk(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else str(k))
        elif a != b:
            found.append(prefix)

    keyed = [{k: v for k, v in c.items() if k not in _NOT_KEYED} for c in (old, new)]
    walk(keyed[0], keyed[1], "")
    return ", ".join(found[:6]) + (" ..." if len(found) > 6 else "") if found else "the run key"


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
                f"run format {fmt}, now {RUN_FORMAT}" if fmt != RUN_FORMAT else _differences(old, config_json)
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
