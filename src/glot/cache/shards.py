"""Writing one cache entry: run the backbone shard by shard into ``<key[:16]>.partial/`` (resumable), then
finalize it with one directory rename. The caller holds the entry's lock (see :mod:`glot.cache.build`).

Three steps, so several ranks can share the middle one: :func:`prepare_partial` (one process, under the lock:
clean up, merge progress, list the shards to do), :func:`compute_shards` (each rank its own disjoint shards,
recording them in its own progress file) and :func:`finish_partial` (one process, after all writers: check
every shard is there, write offsets + manifest, rename). :func:`build_entry` runs all three in one process."""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from glot import __version__
from glot.backbones.tokenize import Truncation, TruncationWarning
from glot.cache.key import FORMAT_VERSION, STORAGE_DTYPES, CacheKey
from glot.cache.manifest import CacheCorruptError, num_shards, plain_name, shard_items
from glot.cache.quantize import QUANTIZED, logical_dim, stored_width
from glot.cache.quantize import encode as quantize
from glot.cache.store import mark_verified
from glot.errors import InputError
from glot.io import atomic_save_npy, atomic_write_json, remove_stale_temps, sha256_file
from glot.progress import tqdm

#: Progress files of ranks > 0 (rank 0 and a one-process build use ``progress.json``).
RANK_PROGRESS_GLOB = "progress-rank*.json"


def save_npy(path: Path, arr: np.ndarray) -> dict[str, Any]:
    """Atomically write ``arr`` as .npy; return its file record (name, bytes, sha256)."""
    atomic_save_npy(path, arr)
    return {"name": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def _to_storage(x: Tensor, dtype: str, first_item: int) -> np.ndarray:
    """Shapes: x (N, D) any float dtype -> (N, D) numpy array in the storage dtype ((N, D + 4) for int8)."""
    if dtype in QUANTIZED:
        return quantize(x, first_item)
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
    backbone: Any, texts: list[str], lo: int, dtype: str, batch_size: int, bar: Any
) -> tuple[np.ndarray, np.ndarray, int | None]:
    """Run the backbone over one shard; return its states in item order, per-item lengths and how many texts
    the backbone truncated (None when it does not say). The backbone's own per-call truncation warning is
    silenced here: the cache reports one total for the whole build.

    Shapes: texts (S,) -> tokens (N_s, D) storage dtype, lengths (S,) int64.
    """
    pieces: list[np.ndarray | None] = [None] * len(texts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
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
    report = getattr(backbone, "last_truncation", None)
    cut = report.truncated if isinstance(report, Truncation) and report.total == len(texts) else None
    return np.concatenate([piece for piece in pieces if piece is not None]), lengths, cut


def _shard_done(partial: Path, rec: object, items: list[int]) -> bool:
    """A shard from an earlier (interrupted) run counts as done only if its record is well formed, covers
    ``items`` and its files match their sha256."""
    try:
        assert isinstance(rec, dict) and rec["items"] == items
        files = [rec["tokens"], rec["lengths"]]
        return all(sha256_file(partial / plain_name(f["name"], "progress")) == f["sha256"] for f in files)
    except (AssertionError, KeyError, TypeError, OSError, CacheCorruptError):
        return False


def _read_state(path: Path, key: CacheKey, shard_size: int | None) -> dict[str, Any] | None:
    """A progress file's state if it is well formed and of this key (and of ``shard_size``, when given)."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    size = old.get("shard_size") if isinstance(old, dict) else None
    ok = (
        isinstance(size, int) and not isinstance(size, bool) and size >= 1
        and isinstance(old.get("done"), dict) and old.get("key") == key.digest
        and (shard_size is None or size == shard_size)
    )  # fmt: skip
    return old if ok else None


def _load_progress(partial: Path, key: CacheKey, shard_size: int) -> dict[str, Any]:
    """The build state of ``partial``: an earlier run's (same key: resume with its shard size, merging the
    records other ranks left in ``progress-rank<r>.json``) or a fresh one."""
    state = _read_state(partial / "progress.json", key, None)
    if state is None:
        state = {"key": key.digest, "shard_size": shard_size, "done": {}}
    for other in sorted(partial.glob(RANK_PROGRESS_GLOB)):
        extra = _read_state(other, key, int(state["shard_size"]))
        for s, rec in (extra or {}).get("done", {}).items():
            state["done"].setdefault(s, rec)
    return state


def progress_file(partial: Path, rank: int) -> Path:
    """Where ``rank`` records its finished shards (rank 0 / one process: ``progress.json``)."""
    return partial / ("progress.json" if rank == 0 else f"progress-rank{rank}.json")


def prepare_partial(final: Path, key: CacheKey, shard_size: int, n: int) -> tuple[int, list[int]]:
    """Set up (or take up) ``<final>.partial``: delete a killed writer's temp files, merge every rank's
    progress into ``progress.json`` and return the shard size and the shards still to compute (recorded
    shards count as done only if their files still hash right). Caller holds the lock; no writer is live."""
    partial = final.with_name(final.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(partial)
    state = _load_progress(partial, key, shard_size)
    size = int(state["shard_size"])
    todo = [
        s for s in range(num_shards(size, n))
        if not _shard_done(partial, state["done"].get(str(s)), shard_items(s, size, n))
    ]  # fmt: skip
    state["done"] = {k: v for k, v in state["done"].items() if k.isdigit() and int(k) not in todo}
    atomic_write_json(partial / "progress.json", state)
    for other in partial.glob(RANK_PROGRESS_GLOB):  # merged above
        other.unlink()
    return size, todo


def compute_shards(
    backbone: Any, texts: list[str], final: Path, key: CacheKey, size: int, shards: Sequence[int],
    dtype: str, batch_size: int, progress: bool, rank: int = 0,
) -> None:  # fmt: skip
    """Compute ``shards`` (after :func:`prepare_partial`) into the partial folder, recording each finished
    one in this rank's progress file. Ranks given disjoint ``shards`` can run this at the same time."""
    partial, n = final.with_name(final.name + ".partial"), len(texts)
    record = progress_file(partial, rank)
    state = _read_state(record, key, size) or {"key": key.digest, "shard_size": size, "done": {}}
    total = sum(hi - lo for lo, hi in (shard_items(s, size, n) for s in shards))
    with tqdm(total=total, disable=not progress, desc="caching states", unit="text") as bar:
        for count, s in enumerate(shards, 1):
            lo, hi = shard_items(s, size, n)
            tokens, lengths, cut = _compute_shard(backbone, texts[lo:hi], lo, dtype, batch_size, bar)
            rec_len = save_npy(partial / f"shard-{s:05d}.lengths.npy", lengths)
            rec_tok = save_npy(partial / f"shard-{s:05d}.npy", tokens)
            state["done"][str(s)] = {
                "tokens": rec_tok, "lengths": rec_len, "dim": int(tokens.shape[1]), "items": [lo, hi],
                "truncated": cut,
            }  # fmt: skip
            atomic_write_json(record, state)
            _fault_hook(rank, count)


def _fault_hook(rank: int, count: int) -> None:
    """TEST HOOK: ``GLOT_TEST_EXIT_AFTER_SHARDS=R:K`` makes rank R exit (code 17, no cleanup) right after
    recording its K-th shard, to test that a rerun resumes after a killed rank. Unset in normal use."""
    spec = os.environ.get("GLOT_TEST_EXIT_AFTER_SHARDS")
    if spec and spec == f"{rank}:{count}":
        os._exit(17)


def finish_partial(final: Path, key: CacheKey, n: int, dtype: str, max_length: object) -> None:
    """Check that every shard is recorded and its files are there with the recorded size and shape (the
    writers hashed them), then finalize. Caller holds the lock, after every writer finished."""
    partial = final.with_name(final.name + ".partial")
    state = _load_progress(partial, key, 1)
    size = int(state["shard_size"])
    missing = [
        s for s in range(num_shards(size, n)) if not _shard_present(partial, state["done"].get(str(s)))
    ]
    if missing:
        raise RuntimeError(
            f"shards {missing[:8]} of {partial} are missing after every rank finished; with several "
            "processes the cache folder (--cache-dir) must be one folder all of them see (a shared filesystem)"
        )
    _finalize(partial, final, key, state, n, dtype, max_length)


def _shard_present(partial: Path, rec: object) -> bool:
    try:
        assert isinstance(rec, dict)
        for f in (rec["tokens"], rec["lengths"]):
            assert (partial / plain_name(f["name"], "progress")).stat().st_size == f["bytes"]
        arr = np.load(partial / rec["tokens"]["name"], mmap_mode="r", allow_pickle=False)
        return bool(arr.ndim == 2 and arr.shape[1] == rec["dim"])
    except (AssertionError, KeyError, TypeError, ValueError, OSError, CacheCorruptError):
        return False


def build_entry(
    backbone: Any, texts: list[str], key: CacheKey, final: Path, dtype: str, batch_size: int,
    shard_size: int, progress: bool,
) -> list[int]:  # fmt: skip
    """Build (or resume) ``<final>.partial`` shard by shard in this process, then finalize it into ``final``;
    return the shards it computed. Caller holds the lock."""
    size, todo = prepare_partial(final, key, shard_size, len(texts))
    compute_shards(backbone, texts, final, key, size, todo, dtype, batch_size, progress)
    finish_partial(final, key, len(texts), dtype, getattr(backbone, "max_length", None))
    return todo


def _truncation(recs: list[dict[str, Any]], max_length: object) -> dict[str, Any]:
    cuts = [r.get("truncated") for r in recs]
    known = all(isinstance(c, int) for c in cuts)
    return {
        "truncated": sum(int(c) for c in cuts if isinstance(c, int)) if known else None,
        "max_length": max_length if isinstance(max_length, int) else None,
    }


def _finalize(
    partial: Path, final: Path, key: CacheKey, state: dict[str, Any], n: int, dtype: str, max_length: object
) -> None:
    """Write offsets + manifest, drop every file the manifest does not list, then rename into place."""
    size, done = int(state["shard_size"]), state["done"]
    recs = [done[str(s)] for s in range(num_shards(size, n))]
    lengths = np.concatenate([np.load(partial / r["lengths"]["name"], allow_pickle=False) for r in recs])
    offsets = np.zeros(n + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(lengths)
    shards = []
    for s, r in enumerate(recs):
        lo, hi = shard_items(s, size, n)
        num = int(offsets[hi] - offsets[lo])
        shards.append({**r["tokens"], "items": [lo, hi], "num_tokens": num, "truncated": r.get("truncated")})
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION, "key": key.digest, "ingredients": key.ingredients,
        "num_items": n, "num_tokens": int(offsets[-1]), "dim": logical_dim(dtype, recs[0]["dim"]), "dtype": dtype,
        "shard_size": size, "offsets": save_npy(partial / "offsets.npy", offsets), "shards": shards,
        "truncation": _truncation(recs, max_length),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "glot_version": _glot_version(),
    }  # fmt: skip
    atomic_write_json(partial / "manifest.json", manifest)
    keep = {"manifest.json", manifest["offsets"]["name"], *(r["name"] for r in shards)}
    for stray in partial.iterdir():  # lengths files, progress.json, temp files of a killed writer
        if stray.name not in keep:
            stray.unlink()
    os.rename(partial, final)
    mark_verified(final, [manifest["offsets"], *shards])  # hashed while building: no re-hash on first open


def _glot_version() -> str:
    return str(__version__)


def salvage(final: Path, manifest: dict[str, Any], bad: Sequence[int]) -> None:
    """Turn a finished entry whose manifest and offsets check out but whose shards ``bad`` are damaged back
    into a ``.partial`` build that keeps every other shard: lengths files are rewritten from the offsets,
    ``progress.json`` lists the good shards, and the damaged files are deleted. The next build then
    recomputes only the ``bad`` shards. Caller holds the lock."""
    partial = final.with_name(final.name + ".partial")
    n, size = manifest["num_items"], manifest["shard_size"]
    offsets = np.load(final / manifest["offsets"]["name"], allow_pickle=False)
    if partial.exists():  # an older partial of the same key (a crash between steps): the entry supersedes it
        shutil.rmtree(partial)
    os.replace(final, partial)
    (partial / "manifest.json").unlink()
    done: dict[str, Any] = {}
    for s, rec in enumerate(manifest["shards"]):
        if s in bad:
            (partial / rec["name"]).unlink(missing_ok=True)
            continue
        lo, hi = shard_items(s, size, n)
        rec_len = save_npy(partial / f"shard-{s:05d}.lengths.npy", np.diff(offsets[lo : hi + 1]))
        tokens = {k: rec[k] for k in ("name", "bytes", "sha256")}
        width = stored_width(manifest["dtype"], manifest["dim"])  # progress records hold the stored width
        done[str(s)] = {"tokens": tokens, "lengths": rec_len, "dim": width, "items": [lo, hi],
                        "truncated": rec.get("truncated")}  # fmt: skip
    atomic_write_json(partial / "progress.json", {"key": manifest["key"], "shard_size": size, "done": done})
