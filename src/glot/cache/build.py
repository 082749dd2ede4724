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

from glot import distributed as dist
from glot.backbones.tokenize import TruncationWarning
from glot.cache.key import CacheKey, cache_key, check_dtype, resolve_cache_root
from glot.cache.manifest import CacheCorruptError, shard_items
from glot.cache.shards import build_entry, compute_shards, finish_partial, prepare_partial, salvage
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


def _acquire(lock: FileLock, entry: Path) -> None:
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("another process is building glot cache entry %s; waiting for it", entry)
        lock.acquire()


@contextmanager
def _entry_lock(root: Path, key: CacheKey) -> Iterator[None]:
    """Hold the entry's inter-process lock (an OS lock: a killed holder releases it, so it never goes stale)."""
    lock = FileLock(lock_path(root, key))
    _acquire(lock, root / key.short)
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
    distributed: bool | None = None,
) -> CachedStates:
    """Return the cached real-token states of ``backbone`` on ``texts``, building (or resuming) if needed.

    Safe to call from several processes at once: the build runs under a per-key file lock, and a process
    that finds the entry being built waits and then opens it (computing nothing). A build that cut texts
    to the backbone's ``max_length`` says so once (:class:`~glot.backbones.tokenize.TruncationWarning`); the count is
    kept as ``CachedStates.num_truncated``.

    ``distributed`` (default: whether a ``torch.distributed`` process group of more than one rank is
    initialised, as under ``torchrun``; see :mod:`glot.distributed`) makes this a COLLECTIVE call that every
    rank must make with the same texts: rank 0 takes the lock and plans, each rank embeds a disjoint,
    length-balanced share of the missing shards, rank 0 checks and finalizes, and every rank gets the entry,
    the same as a one-process build. ``CachedStates.built_shards`` says which shards this call computed.

    Shapes: texts (B,) -> CachedStates of B items, D = backbone.hidden_size, storage ``dtype``.
    """
    texts = check_texts(texts, ordered=True, allow_empty=False)  # a cache entry needs a stable item order
    _check_options(dtype, verify, batch_size, shard_size)
    key = cache_key(backbone.fingerprint(), texts, dtype)
    root = resolve_cache_root(cache_dir)
    final = root / key.short
    if dist.active() if distributed is None else distributed:
        states = _build_or_load_ranks(
            backbone, texts, key, root, dtype, batch_size, shard_size, progress, verify
        )
        if dist.is_main():
            _warn_truncation(states)
        return states
    if final.exists():  # lock-free fast path for a finished, good entry
        try:
            return CachedStates.open(final, verify=verify, expected_key=key.digest)
        except CacheCorruptError:
            pass  # checked again, and repaired, under the lock
    with _entry_lock(root, key):
        cached = _open_or_repair(final, key, verify)
        if cached is not None:
            return cached
        computed = build_entry(backbone, texts, key, final, dtype, batch_size, shard_size, progress)
    states = CachedStates.open(final, verify=verify, expected_key=key.digest)
    states.built_shards = computed
    _warn_truncation(states)
    return states


def _warn_truncation(states: CachedStates) -> None:
    if (
        states.built_shards and states.num_truncated
    ):  # once per build (the backbone's per-call warnings are silenced while caching)
        warnings.warn(
            f"{states.num_truncated} of {len(states)} texts were cut to {states.truncated_at} tokens while "
            "caching; pass a larger max_length (CLI: --max-length) to keep more of each text, or long='chunk' "
            "(CLI: --long chunk) to embed every token",
            TruncationWarning,
            stacklevel=3,
        )


def _plan(lock: FileLock, final: Path, key: CacheKey, verify: str, shard_size: int, n: int) -> Any:
    """Rank 0, taking the entry's lock (held until the collective build ends): None when the entry is good,
    else (shard size, shards still to compute) of its prepared partial folder."""
    _acquire(lock, final)
    if _open_or_repair(final, key, verify) is not None:
        return None
    return prepare_partial(final, key, shard_size, n)


def _build_or_load_ranks(
    backbone: BackboneLike, texts: list[str], key: CacheKey, root: Path, dtype: str, batch_size: int,
    shard_size: int, progress: bool, verify: str,
) -> CachedStates:  # fmt: skip
    """The collective build (see :func:`build_or_load`); every rank of the process group calls it."""
    digests = dist.all_gather_object(key.digest)
    if len(set(digests)) != 1:
        raise InputError(
            f"the {len(digests)} ranks want {len(set(digests))} different cache entries; every rank must "
            "cache the same texts with the same backbone settings and --cache-dtype"
        )
    final, n = root / key.short, len(texts)
    lock = FileLock(lock_path(root, key)) if dist.is_main() else None
    try:
        plan = dist.on_main(_plan, lock, final, key, verify, shard_size, n)
        if plan is not None:
            size, todo = plan
            spans = [shard_items(s, size, n) for s in todo]
            if dist.is_main() and 0 < len(todo) < 2 * dist.world_size():
                log.warning(
                    "%d shard(s) of %d texts to compute over %d ranks: some ranks idle or wait; a smaller "
                    "shard size (--shard-size) spreads the work better", len(todo), size, dist.world_size(),
                )  # fmt: skip
            mine = dist.shard(todo, weights=[sum(len(t) for t in texts[lo:hi]) for lo, hi in spans])
            dist.everywhere(
                compute_shards, backbone, texts, final, key, size, mine, dtype, batch_size,
                progress and dist.is_main(), dist.rank(),
            )  # fmt: skip
            dist.on_main(finish_partial, final, key, n, dtype, getattr(backbone, "max_length", None))
        # rank 0 checked (or just wrote) every file: the others check sizes and shapes, not sha256 again
        mode = verify if dist.is_main() or verify != "auto" else "size"
        states: CachedStates = dist.everywhere(CachedStates.open, final, verify=mode, expected_key=key.digest)
    finally:
        if lock is not None and lock.is_locked:
            lock.release()
    states.built_shards = None if plan is None else list(plan[1])
    return states
