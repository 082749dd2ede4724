"""Building a cache entry: run the backbone shard by shard into ``<key[:16]>.partial/`` (resumable), then
finalize it with one directory rename. :func:`build_or_load` is the entry point: open if good, else build."""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from glot.cache.key import (
    FORMAT_VERSION,
    STORAGE_DTYPES,
    CacheKey,
    cache_key,
    check_dtype,
    check_texts,
    default_cache_root,
)
from glot.cache.store import VERIFY_MODES, CacheCorruptError, CachedStates, mark_verified
from glot.errors import InputError
from glot.io import atomic_save_npy, atomic_write_json, sha256_file


@runtime_checkable
class BackboneLike(Protocol):
    """What the cache needs from a backbone (``glot.backbone.FrozenBackbone`` satisfies it)."""

    hidden_size: int

    def fingerprint(self) -> dict[str, Any]: ...

    def iter_packed(
        self, texts: Sequence[str], batch_size: int = 64, progress: bool = True, desc: str = ...
    ) -> Iterator[tuple[np.ndarray, Tensor, Tensor]]: ...


def _save_npy(path: Path, arr: np.ndarray) -> dict[str, Any]:
    """Atomically write ``arr`` as .npy; return its file record (name, bytes, sha256)."""
    atomic_save_npy(path, arr)
    return {"name": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def _remove_tree(path: Path) -> None:
    """Move aside first (atomic), then delete, so a half-deleted entry is never mistaken for a good one."""
    doomed = path.with_name(f"{path.name}.trash-{os.getpid()}-{time.monotonic_ns()}")
    os.replace(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def _to_storage(x: Tensor, dtype: str, first_item: int) -> np.ndarray:
    """Shapes: x (N, D) any float dtype -> (N, D) numpy array in the storage dtype."""
    t = x.detach().to("cpu", STORAGE_DTYPES[dtype][1])
    if not bool(torch.isfinite(t).all()):
        where = (
            "states exceed the float16 range"
            if bool(torch.isfinite(x).all())
            else "backbone states are NaN/inf"
        )
        fix = "; store with dtype='bfloat16' or 'float32'" if "float16" in where else ""
        raise InputError(
            f"{where} in the batch holding text {first_item} (max |x| = {x.abs().max():.4g}){fix}"
        )
    return t.view(torch.int16).numpy().view(np.uint16) if dtype == "bfloat16" else t.numpy()


def _compute_shard(
    backbone: BackboneLike, texts: list[str], lo: int, dtype: str, batch_size: int, bar: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Run the backbone over one shard; return its states in item order and per-item lengths.

    Shapes: texts (S,) -> tokens (N_s, D) storage dtype, lengths (S,) int64.
    """
    pieces: list[np.ndarray | None] = [None] * len(texts)
    for idx, x, ptr in backbone.iter_packed(texts, batch_size=batch_size, progress=False):
        items = np.asarray(idx).tolist()
        xs, p = _to_storage(x, dtype, lo + items[0]), ptr.tolist()
        for j, i in enumerate(items):
            if p[j + 1] <= p[j]:
                raise InputError(f"text {lo + i} ({texts[i]!r:.40}) produced no tokens; drop or fix it")
            pieces[i] = xs[p[j] : p[j + 1]]
        bar.update(len(items))
    missing = [lo + i for i, piece in enumerate(pieces) if piece is None]
    if missing:
        raise RuntimeError(f"backbone.iter_packed returned no states for texts {missing[:5]}")
    lengths = np.array([len(piece) for piece in pieces if piece is not None], dtype=np.int64)
    return np.concatenate([piece for piece in pieces if piece is not None]), lengths


def _shard_done(partial: Path, rec: dict[str, Any] | None) -> bool:
    """A shard from an earlier (interrupted) run counts as done only if its files match size and sha256."""
    if rec is None:
        return False
    files = [rec["tokens"], rec["lengths"]]
    try:
        return all(sha256_file(partial / f["name"]) == f["sha256"] for f in files)
    except OSError:
        return False


def _load_progress(partial: Path, key: CacheKey, shard_size: int) -> dict[str, Any]:
    """The build state of ``partial``: an earlier run's (same key: resume with its shard size) or a fresh one."""
    state: dict[str, Any] = {"key": key.digest, "shard_size": shard_size, "done": {}}
    if (partial / "progress.json").exists():
        try:
            old = json.loads((partial / "progress.json").read_text())
            state = old if old.get("key") == key.digest else state
        except ValueError:
            pass
    return state


def _build_entry(
    backbone: BackboneLike, texts: list[str], key: CacheKey, final: Path, dtype: str, batch_size: int,
    shard_size: int, progress: bool,
) -> None:  # fmt: skip
    """Build (or resume) ``<final>.partial`` shard by shard, then finalize it into ``final``."""
    from tqdm.auto import tqdm

    partial = final.with_name(final.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    state = _load_progress(partial, key, shard_size)
    size, n = int(state["shard_size"]), len(texts)
    todo = [s for s in range(-(-n // size)) if not _shard_done(partial, state["done"].get(str(s)))]
    left = sum(min(n, (s + 1) * size) - s * size for s in todo)
    with tqdm(total=n, initial=n - left, disable=not progress, desc="caching states", unit="text") as bar:
        for s in todo:
            lo, hi = s * size, min(n, (s + 1) * size)
            tokens, lengths = _compute_shard(backbone, texts[lo:hi], lo, dtype, batch_size, bar)
            rec_len = _save_npy(partial / f"shard-{s:05d}.lengths.npy", lengths)
            rec_tok = _save_npy(partial / f"shard-{s:05d}.npy", tokens)
            state["done"][str(s)] = {"tokens": rec_tok, "lengths": rec_len, "dim": int(tokens.shape[1])}
            atomic_write_json(partial / "progress.json", state)
    _finalize(partial, final, key, state, n, dtype)


def _finalize(partial: Path, final: Path, key: CacheKey, state: dict[str, Any], n: int, dtype: str) -> None:
    """Write offsets + manifest, drop build-only files, then rename the directory into place (atomic)."""
    size, done = int(state["shard_size"]), state["done"]
    recs = [done[str(s)] for s in range(-(-n // size))]
    lengths = np.concatenate([np.load(partial / r["lengths"]["name"], allow_pickle=False) for r in recs])
    offsets = np.zeros(n + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(lengths)
    shards = [
        {**r["tokens"], "items": [s * size, min(n, (s + 1) * size)],
         "num_tokens": int(offsets[min(n, (s + 1) * size)] - offsets[s * size])}
        for s, r in enumerate(recs)
    ]  # fmt: skip
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION, "key": key.digest, "ingredients": key.ingredients,
        "num_items": n, "num_tokens": int(offsets[-1]), "dim": int(recs[0]["dim"]), "dtype": dtype,
        "shard_size": size, "offsets": _save_npy(partial / "offsets.npy", offsets), "shards": shards,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "glot_version": _glot_version(),
    }  # fmt: skip
    atomic_write_json(partial / "manifest.json", manifest)
    for r in recs:
        (partial / r["lengths"]["name"]).unlink()
    (partial / "progress.json").unlink()
    try:
        os.rename(partial, final)
    except OSError:
        if not final.exists():
            raise
        shutil.rmtree(partial, ignore_errors=True)  # a concurrent builder finished the same key first
        return
    mark_verified(final, [manifest["offsets"], *shards])  # hashed while building: no re-hash on first open


def _glot_version() -> str:
    try:
        from glot import __version__

        return str(__version__)
    except ImportError:
        return "unknown"


def _check_options(dtype: str, verify: str, batch_size: int, shard_size: int) -> None:
    check_dtype(dtype)
    if verify not in VERIFY_MODES:
        raise InputError(f"verify must be one of {VERIFY_MODES}, got {verify!r}")
    for name, value in (("shard_size", shard_size), ("batch_size", batch_size)):
        if not isinstance(value, int) or value < 1:
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

    Shapes: texts (B,) -> CachedStates of B items, D = backbone.hidden_size, storage ``dtype``.
    """
    texts = check_texts(texts)
    _check_options(dtype, verify, batch_size, shard_size)
    key = cache_key(backbone.fingerprint(), texts, dtype)
    final = (Path(cache_dir) if cache_dir is not None else default_cache_root()) / key.short
    if final.exists():
        try:
            return CachedStates.open(final, verify=verify, expected_key=key.digest)
        except CacheCorruptError as err:
            warnings.warn(
                f"glot cache entry {final} is unusable: {err}; rebuilding it", UserWarning, stacklevel=2
            )
            _remove_tree(final)
    _build_entry(backbone, texts, key, final, dtype, batch_size, shard_size, progress)
    return CachedStates.open(final, verify=verify, expected_key=key.digest)
