"""The run key: the full JSON description of a training run and the sha256 that decides whether a run
folder (its ``run_config.json``, checkpoint and results) belongs to this run and may be resumed or reused.

One definition for GLOT runs on cached states (:func:`make_run_config`) and LoRA / full fine-tuning runs
(:func:`build_run_config` with ``extra=``); :func:`glot.training.checkpoint.prepare_run_dir` enforces it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from glot.cache.task import CachedTask
    from glot.data import Task
    from glot.training.config import TrainConfig

__all__ = ["RUN_FORMAT", "build_run_config", "config_differences", "data_fingerprint", "make_run_config"]

#: Version of the run-folder layout and run key; a folder of another format is not resumed.
#: 3: ``train.pooler_options`` holds the pooler's full, normalised settings (graph / gnn / readout sections),
#: so equal poolers give one key (2 stored only the options given: ``{}`` and ``{"tau": 0.8}`` differed).
RUN_FORMAT = 3
#: Run-config fields outside the key: the key itself, the glot version and where the cache lives.
_NOT_KEYED = ("key", "glot_version", "cache")
#: TrainConfig fields left out of the run config: where a run computes (``device``) does not change its
#: result beyond float rounding, so a run started on a GPU resumes on a CPU and vice versa (the head dtype,
#: which does change the numbers, is keyed as resolved on the training device: precision.keyed).
UNKEYED_TRAIN_FIELDS = ("device",)


def _version() -> str:
    from glot import __version__

    return __version__


def data_fingerprint(task: Task, splits: Sequence[str] | None = None) -> str:
    """sha256 over ``splits`` (default: all, by name) of ``task``: every text column and the labels of each.

    Any change of a text, a label (eval labels too) or of which rows form a split changes it. Shapes: none.
    """
    from glot.cache.key import texts_fingerprint
    from glot.cache.task import COLUMNS

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

    The key is the sha256 of everything that changes the result: the run format, the train config (with the
    pooler's full settings, so options equal to the defaults do not change it), the
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
        "format": RUN_FORMAT, **(extra or {}), "train": _train_section(config), "task": task_info,
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


def _train_section(config: TrainConfig) -> dict[str, Any]:
    """The run config's ``train`` section: every TrainConfig field but :data:`UNKEYED_TRAIN_FIELDS`."""
    return {k: v for k, v in config.to_dict().items() if k not in UNKEYED_TRAIN_FIELDS}


def make_run_config(cached: CachedTask, config: TrainConfig, sizes: dict[str, int]) -> dict[str, Any]:
    """:func:`build_run_config` of a run on cached states (the splits in the cache, its key and dtype)."""
    cache = {
        "key": cached.cache_key,
        "dtype": cached.states.dtype,
        "path": str(Path(cached.states.path).resolve()),
    }
    return build_run_config(cached.task, config, sizes, cached.backbone, splits=list(cached.ids), cache=cache)


def config_differences(old: dict[str, Any], new: dict[str, Any]) -> str:
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
