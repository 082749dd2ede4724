"""A task's texts mapped onto ONE hidden-state cache, so the frozen backbone runs once per unique text.

Every text column of every split (``texts``, ``texts_pair``, ``negatives``) is collected, de-duplicated in
first-appearance order (train before eval, column by column) and cached with :func:`glot.cache.build_or_load`;
each split then holds, per column, the cache item id of every example. Pair and STS tasks thus cache both
sides, and a sentence that occurs in several rows or splits is embedded once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from glot.backbones.reference import backbone_reference
from glot.cache import BackboneLike, CachedStates, build_or_load
from glot.data import Task
from glot.errors import InputError

__all__ = ["COLUMNS", "CachedTask", "backbone_info", "cache_task", "task_texts"]

#: Text columns of a ``Split``, in the order their texts are added to the cache.
COLUMNS = ("texts", "texts_pair", "negatives")


def task_texts(
    task: Task, splits: Sequence[str] | None = None
) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Unique texts of ``splits`` (default: all, train first) and each split's item ids per column.

    Shapes: -> texts (T,), ids[split][column] (N_split,) int64 indices into texts.
    """
    names = list(splits) if splits is not None else sorted(task.splits, key=lambda s: (s != "train", s))
    missing = [s for s in names if s not in task.splits]
    if missing:
        raise InputError(f"task {task.name!r} has no split(s) {missing}; it has {sorted(task.splits)}")
    position: dict[str, int] = {}
    ids: dict[str, dict[str, Any]] = {}
    for name in names:
        split = task.splits[name]
        ids[name] = {}
        for column in COLUMNS:
            values = getattr(split, column)
            if values is None:
                continue
            ids[name][column] = np.fromiter(
                (position.setdefault(t, len(position)) for t in values), dtype=np.int64, count=len(values)
            )
    return list(position), ids


def backbone_info(backbone: Any) -> dict[str, Any]:
    """How to identify (and reload) a backbone: ``glot.backbones.reference.backbone_reference`` for a FrozenBackbone, else its
    fingerprint. Shapes: none."""
    fingerprint = backbone.fingerprint()
    try:
        return backbone_reference(backbone)
    except (AttributeError, TypeError, ValueError):
        return {"name_or_path": getattr(backbone, "name", None), "fingerprint": fingerprint}


@dataclass
class CachedTask:
    """A task plus the cached token states of all its texts.

    ``ids[split][column]`` maps example i of ``split`` to its cache item. Shapes: ids (N_split,) int64.
    """

    task: Task
    states: CachedStates
    ids: dict[str, dict[str, Any]]
    backbone: dict[str, Any]

    @property
    def dim(self) -> int:
        """Hidden width D of the cached states."""
        return self.states.dim

    @property
    def cache_key(self) -> str:
        """Content key of the cache entry (backbone fingerprint + texts + storage dtype)."""
        return str(self.states.manifest["key"])

    def columns(self, split: str) -> list[str]:
        """Text columns present in ``split`` (``texts`` first)."""
        return [c for c in COLUMNS if c in self.ids[split]]


def cache_task(
    task: Task,
    backbone: BackboneLike,
    *,
    splits: Sequence[str] | None = None,
    cache_dir: str | Path | None = None,
    dtype: str = "float16",
    batch_size: int = 64,
    shard_size: int = 1024,
    progress: bool = True,
) -> CachedTask:
    """Run ``backbone`` once over every unique text of ``task`` (or reuse the cache) and map the splits onto it.

    The backbone's ``max_length`` should equal ``task.max_length`` (the paper's truncation); a mismatch is
    allowed (the caller chose it) but recorded in the backbone fingerprint and therefore the cache key.
    Shapes: task of T unique texts -> CachedTask whose states hold T items of width D.
    """
    texts, ids = task_texts(task, splits)
    states = build_or_load(
        backbone, texts, cache_dir=cache_dir, dtype=dtype, batch_size=batch_size, shard_size=shard_size,
        progress=progress,
    )  # fmt: skip
    return CachedTask(task=task, states=states, ids=ids, backbone=backbone_info(backbone))
