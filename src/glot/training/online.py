"""Online mode: train a pooler + head with the FROZEN backbone run inside the loop, instead of a cache.

``glot train --states online`` (the reference code's way): every batch's texts go through the backbone again
(:class:`~glot.training.sources.BackboneSource` with ``frozen=True``: eval mode, no gradients), so nothing is
written to disk, at the price of one backbone forward per example per epoch (plus validation and eval each
epoch). Use it when the token states would not fit a disk (``docs/scaling.md``); otherwise the cache is faster
from the second epoch on. It is the same loop (:func:`glot.training.loop.run_loop`), the same models from the
same seed and the same order as a cached run: with a float32 cache both give the same numbers up to float
rounding (padding differs: cache batches are length-bucketed). The run key records ``states: online`` (no
cache key), so an online run and a cached run never share a run folder.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from glot.backbones.tokenize import TruncationWarning
from glot.cache.task import backbone_info, task_texts
from glot.data import Task
from glot.distributed import device as training_device
from glot.errors import InputError
from glot.training.config import TrainConfig
from glot.training.precision import keyed
from glot.training.runkey import build_run_config
from glot.training.setup import Setup, build_models, row_counts, split_rows
from glot.training.sources import BackboneSource

if TYPE_CHECKING:
    from glot.backbones.frozen import FrozenBackbone

__all__ = ["OnlineTask", "fit_online", "train_online"]


@dataclass
class OnlineTask:
    """A task whose token states come from ``backbone`` live (what :func:`glot.training.setup.build_models` needs
    of a cached task: the task and the state width)."""

    task: Task
    backbone: FrozenBackbone

    @property
    def dim(self) -> int:
        """Hidden width D of the backbone's states."""
        return int(self.backbone.hidden_size)


def _truncation(task: Task, backbone: FrozenBackbone, chunk: int = 2048) -> dict[str, Any]:
    """How many of the task's unique texts the backbone cuts (tokenized once, in chunks; nothing is embedded)."""
    texts, _ = task_texts(task)
    cut = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        for start in range(0, len(texts), chunk):
            backbone.tokenize(texts[start : start + chunk])
            cut += int(backbone.last_truncation.truncated)
    return {"truncated": cut, "max_length": backbone.max_length, "texts": len(texts)}


def head_device(backbone: FrozenBackbone, spec: str) -> torch.device:
    """Where an online run's pooler + head train: the backbone's device (its states come back there).
    ``spec`` (``TrainConfig.device``) must be "auto" or name that device, else a one-line InputError."""
    where = torch.device(backbone.device)
    if spec != "auto" and training_device(spec) != where:
        raise InputError(
            f"device {spec!r}: online mode trains the pooler + head on the backbone's device ({where}); pass "
            f"device='auto' (--device auto), or load the backbone on {spec}"
        )
    return where


def fit_online(
    online: OnlineTask,
    config: TrainConfig,
    run_dir: str | os.PathLike[str],
    *,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train one seed of a pooler + head on live backbone states into ``run_dir`` (resuming a checkpoint of the
    same run); the online twin of :func:`glot.training.loop.fit`. Returns the metrics dict."""
    from glot.training.loop import run_loop, run_metrics

    config.validate()
    task, backbone = online.task, online.backbone
    device = head_device(backbone, config.device)
    config, precision = keyed(config, device)  # the head dtype used, as the cached path keys it
    rows = split_rows(task, config, has_eval="eval" in task.splits)
    config_json = build_run_config(
        task, config, row_counts(rows), backbone_info(backbone), extra={"states": "online"}
    )
    pooler, head = build_models(online, config, device)
    truncation = _truncation(task, backbone)

    def finish(run_dir: Path, state: dict[str, Any], optimizer: Any, metrics: dict[str, Any]) -> None:
        metrics |= run_metrics(config, pooler, head, precision, truncation) | {"states": "online"}

    source = BackboneSource(backbone, task.splits, frozen=True)
    setup = Setup(task, source, pooler, head, finish=finish)
    with warnings.catch_warnings():  # cut texts were counted once above, not per batch
        warnings.simplefilter("ignore", TruncationWarning)
        return run_loop(
            setup, config, Path(run_dir), config_json, rows, progress=progress, overwrite=overwrite
        )


def train_online(
    online: OnlineTask,
    config: TrainConfig,
    out_dir: str | os.PathLike[str],
    seeds: Sequence[int] = (0,),
    *,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """:func:`glot.training.loop.train` in online mode: one run per seed into ``out_dir/seed-<s>/`` and
    ``out_dir/summary.json``."""
    from glot.training.loop import train

    return train(online, config, out_dir, seeds, progress=progress, overwrite=overwrite, fit_seed=fit_online)
