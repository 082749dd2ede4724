"""Opening or building a cache entry under its per-key lock. :func:`build_or_load` is the entry point: open
the entry if it is good, repair it if part of it is damaged, build it if it is missing."""

from __future__ import annotations

import logging
import os
import shutil
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from filelock import FileLock, Timeout
from torch import Tensor

from glot.backbones.tokenize import TruncationWarning
from glot.cache.key import CacheKey, cache_key, check_dtype, resolve_cache_root
from glot.cache.manifest import CacheCorruptError
from glot.cache.shards import build_entry, salvage
from glot.cache.store import VERIFY_MODES, CachedStates, read_manifest
from glot.data import check_texts
from glot.errors import InputError

log = logging.getLogger("glot.cache")


@runtime_checkable
class BackboneLike(Protocol):
    """What the cache needs from a backbone (``glot.backbones.frozen.FrozenBackbone`` satisfies it).

    Optional: a ``max_length`` int and a ``last_truncation`` (:class:`glot.backbones.tokenize.Truncation`) set by
    ``iter_packed``; with them the manifest records how many texts were cut, else it records None.
    """

    hidden_size: int

    def fingerprint(self) -> dict[str, Any]: ...

    def iter_packed(
        self, texts: Sequence[str], batch_size: int = 64, progress: bool = True, desc: str = ...
    ) -> Iterator[tuple[np.ndarray, Tensor, Tensor]]: ...


def lock_path(root: Path, key: CacheKey) -> Path:
    """The lock file of an entry, beside it: ``<root>/<key[:16]>.lock`` (left in place; it is tiny)."""
    return root / f"{key.short}.lock"


@contextmanager
def _entry_lock(root: Path, key: CacheKey) -> Iterator[None]:
    """Hold the entry's inter-process lock (an OS lock: a killed holder releases it, so it never goes stale)."""
    lock = FileLock(lock_path(root, key))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("another process is building glot cache entry %s; waiting for it", root / key.short)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _remove_tree(path: Path) -> None:
    """Move aside first (atomic), then delete, so a half-deleted entry is never mistaken for a good one."""
    doomed = path.with_name(f"{path.name}.trash-{os.getpid()}-{time.monotonic_ns()}")
    os.replace(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def _open_or_repair(final: Path, key: CacheKey, verify: str) -> CachedStates | None:
    """Under the lock: the entry if it is good; else warn, and either turn it back into a partial build that
    keeps its good shards (only some shards damaged) or delete it (anything else wrong). None = build."""
    for trash in final.parent.glob(f"{final.name}.trash-*"):  # a delete interrupted by a kill
        shutil.rmtree(trash, ignore_errors=True)
    if not final.exists():
        return None
    try:
        return CachedStates.open(final, verify=verify, expected_key=key.digest)
    except CacheCorruptError as err:
        if err.bad_shards:
            manifest = read_manifest(final, key.digest)
            good = len(manifest["shards"]) - len(err.bad_shards)
            what = f"recomputing {len(err.bad_shards)} damaged shard(s), keeping the {good} good one(s)"
            salvage(final, manifest, err.bad_shards)
        else:
            what = "rebuilding it"
            _remove_tree(final)
        warnings.warn(f"glot cache entry {final} is unusable: {err}; {what}", UserWarning, stacklevel=3)
    return None


def _check_options(dtype: str, verify: str, batch_size: int, shard_size: int) -> None:
    check_dtype(dtype)
    if verify not in VERIFY_MODES:
        raise InputError(f"verify must be one of {VERIFY_MODES}, got {verify!r}")
    for name, value in (("shard_size", shard_size), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a positive int, got {value!r}")


def build_or_load(
    backbone: BackboneLike,
    texts: Sequence[str],
    *,
    cache_dir: str | Path | None = None,
    dtype: str = "float16",
    batch_size: int = 64,
    shard_size: int = 4096,
    progress: bool = True,
    verify: str = "auto",
) -> CachedStates:
    """Return the cached real-token states of ``backbone`` on ``texts``, building (or resuming) if needed.

    Safe to call from several processes at once: the build runs under a per-key file lock, and a process
    that finds the entry being built waits and then opens it (computing nothing). A build that cut texts
    to the backbone's ``max_length`` says so once (:class:`~glot.backbones.tokenize.TruncationWarning`); the count is
    kept as ``CachedStates.num_truncated``.

    Shapes: texts (B,) -> CachedStates of B items, D = backbone.hidden_size, storage ``dtype``.
    """
    texts = check_texts(texts, ordered=True, allow_empty=False)  # a cache entry needs a stable item order
    _check_options(dtype, verify, batch_size, shard_size)
    key = cache_key(backbone.fingerprint(), texts, dtype)
    root = resolve_cache_root(cache_dir)
    final = root / key.short
    if final.exists():  # lock-free fast path for a finished, good entry
        try:
            return CachedStates.open(final, verify=verify, expected_key=key.digest)
        except CacheCorruptError:
            pass  # checked again, and repaired, under the lock
    with _entry_lock(root, key):
        cached = _open_or_repair(final, key, verify)
        if cached is not None:
            return cached
        build_entry(backbone, texts, key, final, dtype, batch_size, shard_size, progress)
    states = CachedStates.open(final, verify=verify, expected_key=key.digest)
    if states.num_truncated:  # once per build (the backbone's per-call warnings are silenced while caching)
        warnings.warn(
            f"{states.num_truncated} of {len(states)} texts were cut to {states.truncated_at} tokens while "
            "caching; pass a larger max_length (CLI: --max-length) to keep more of each text, or long='chunk' "
            "(CLI: --long chunk) to embed every token",
            TruncationWarning,
            stacklevel=2,
        )
    return states
