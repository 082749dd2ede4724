"""Streaming, sharded embeddings for corpora that do not fit in memory (``glot encode -o FOLDER``); resumable.

The input is read line by line, ``shard_rows`` non-blank lines at a time, so a 10M-line file is never held
whole; chunk ``c`` is embedded into ``part-<c>.npy`` (rows ``[c * shard_rows, (c + 1) * shard_rows)`` of the
result) by rank ``c % world_size``, so ``torchrun --nproc_per_node N`` writes N shards at a time. When every
rank is done, rank 0 writes ``index.json``::

    {"format": "glot-embeddings", "version": 1, "rows": N, "dim": D, "dtype": "float32", "shard_rows": S,
     "key": ..., "ingredients": {...},
     "shards": [{"name": "part-00000.npy", "first_row": 0, "rows": S, "bytes": ..., "sha256": ...,
                 "texts_sha256": ...}, ...],
     ...the encoder's description (pooler, normalize, input)}

Resume, by the rules of the hidden-state cache's partial builds (:mod:`glot.cache.shards`): the folder is keyed
on everything that determines its rows (``ingredients``: the encoder's backbone fingerprint, pooler and
transform digests, head dtype and options, plus ``shard_rows`` and the input file's sha256). Each rank records a
finished part in its own progress file (``progress.json`` for rank 0, ``progress-rank<r>.json``) right after the
part's atomic write, with the sha256 of the part and of the texts it embedded. A rerun of the same command
(rank 0, before anyone writes) deletes a killed writer's temp files, merges the progress files and keeps a part
only if its record is well formed and its file has the recorded size, sha256, shape and dtype; every rank then
embeds only the chunks not kept (a kept chunk's texts must hash as recorded). A folder holding parts of another
key (another input, model or options) or of no key (an older glot) is refused with one line naming the fix, as a
run folder is (:func:`glot.training.checkpoint.prepare_run_dir`): a new folder, or ``--overwrite``, which
deletes glot's files in it first.

``index.json`` is removed when a run starts (after the progress is saved) and written last, so a folder with an
index is complete; parts the index does not list (an earlier, longer run) and the progress files are then
deleted. :func:`load` reads a folder back (checked against its index). Each chunk is embedded the same way
whatever the number of ranks, so N processes give the same rows as one.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from glot import distributed as dist
from glot.cache.key import texts_fingerprint
from glot.errors import InputError
from glot.io import atomic_save_npy, atomic_write_json, read_json, remove_stale_temps, sha256_file
from glot.progress import tqdm
from glot.training.runkey import config_differences

INDEX = "index.json"
FORMAT = "glot-embeddings"
VERSION = 1
PART_GLOB = "part-*.npy"
PROGRESS = "progress.json"
RANK_PROGRESS_GLOB = "progress-rank*.json"


def iter_chunks(source: str | Path, rows: int) -> Iterator[list[str]]:
    """The non-blank lines of ``source`` (a text file, or ``"-"`` for stdin) in lists of ``rows`` (the last
    may be shorter), reading one line at a time. Lines keep everything but their line break."""
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise InputError(f"shard rows must be a positive int, got {rows!r}")
    fh = sys.stdin if str(source) == "-" else open(source, encoding="utf-8")  # noqa: SIM115
    try:
        chunk: list[str] = []
        for line in fh:
            text = line.rstrip("\r\n")
            if text.strip():
                chunk.append(text)
                if len(chunk) == rows:
                    yield chunk
                    chunk = []
        if chunk:
            yield chunk
    finally:
        if fh is not sys.stdin:
            fh.close()


def part_name(c: int) -> str:
    return f"part-{c:05d}.npy"


def progress_file(out: Path, rank: int) -> Path:
    """Where ``rank`` records its finished parts (rank 0 / one process: ``progress.json``)."""
    return out / (PROGRESS if rank == 0 else f"progress-rank{rank}.json")


def _write_mine(
    embed: Callable[[list[str]], np.ndarray], source: str | Path, out: Path, rows: int, progress: bool,
    state: dict[str, Any],
) -> list[dict[str, Any]]:  # fmt: skip
    """Embed and write this rank's chunks that ``state["done"]`` does not hold; return all its records."""
    from glot.cache.shards import _fault_hook  # the cache's test hook: GLOT_TEST_EXIT_AFTER_SHARDS=R:K

    me, world = dist.rank(), dist.world_size()
    # rank 0's progress file starts from every kept record (the merged ones), the others' from none
    mine: dict[str, Any] = {**state, "done": dict(state["done"]) if me == 0 else {}}
    records, written = [], 0
    with tqdm(disable=not progress, desc="encoding", unit="text") as bar:
        for c, chunk in enumerate(iter_chunks(source, rows)):
            if c % world != me:
                continue
            texts, kept = texts_fingerprint(chunk), state["done"].get(str(c))
            if kept is not None and kept.get("texts_sha256") != texts:
                raise _refuse(
                    out, f"part {part_name(c)} of other texts (the input changed since it was written)"
                )
            if kept is None:
                kept = mine["done"][str(c)] = _embed_part(embed, chunk, out, c, rows, texts)
                atomic_write_json(progress_file(out, me), mine)  # the part is finished once recorded
                written += 1
                _fault_hook(me, written)
            mine["done"][str(c)] = kept
            records.append(kept)
            bar.update(len(chunk))
    return records


def _embed_part(
    embed: Callable[[list[str]], np.ndarray], chunk: list[str], out: Path, c: int, rows: int, texts: str
) -> dict[str, Any]:
    """Embed chunk ``c`` into its part file (atomic) and return the part's record."""
    emb = np.asarray(embed(chunk), dtype=np.float32)
    assert emb.ndim == 2 and len(emb) == len(chunk), f"embed returned {emb.shape} for {len(chunk)} texts"
    path = atomic_save_npy(out / part_name(c), emb)
    return {
        "name": path.name, "first_row": c * rows, "rows": len(chunk), "dim": int(emb.shape[1]),
        "bytes": path.stat().st_size, "sha256": sha256_file(path), "texts_sha256": texts,
    }  # fmt: skip


def _refuse(out: Path, what: str) -> InputError:
    return InputError(
        f"{out} holds {what}; pass a new -o folder, or --overwrite (overwrite=True) to replace its embeddings"
    )


def _glot_files(out: Path) -> list[Path]:
    """The files of ``out`` this module writes (parts, progress files, the index)."""
    names = [*out.glob(PART_GLOB), *out.glob(RANK_PROGRESS_GLOB), out / PROGRESS, out / INDEX]
    return [p for p in names if p.is_file()]


def input_digest(source: str | Path) -> str:
    """What identifies the input: the sha256 of a file's bytes; stdin (``"-"``) cannot be hashed before it is
    read, so its parts are checked text by text (each record's ``texts_sha256``)."""
    return "stdin" if str(source) == "-" else sha256_file(source)


def _key(ingredients: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(ingredients, sort_keys=True, default=str).encode()).hexdigest()


def _recorded(out: Path) -> tuple[str | None, dict[str, Any], dict[str, Any]]:
    """(the key the folder's files were written with, its ingredients, its part records by chunk)."""
    index, state = (read_json(out / n) if (out / n).is_file() else None for n in (INDEX, PROGRESS))
    key: str | None = None
    ingredients: dict[str, Any] = {}
    done: dict[str, Any] = {}
    if isinstance(index, dict) and index.get("key"):
        key, ingredients = index["key"], index.get("ingredients") or {}
        for r in index.get("shards", []):
            done[str(r["first_row"] // index["shard_rows"])] = {**r, "dim": index["dim"]}
    for other in [state, *(read_json(p) for p in sorted(out.glob(RANK_PROGRESS_GLOB)))]:
        if isinstance(other, dict) and other.get("key") and (key is None or other["key"] == key):
            key, ingredients = other["key"], other.get("ingredients") or ingredients
            done.update({c: r for c, r in other.get("done", {}).items() if isinstance(r, dict)})
    return key, ingredients, done


def _part_done(out: Path, c: str, rec: dict[str, Any], rows: int) -> bool:
    """A recorded part counts as finished only if its record is well formed and its file has the recorded
    size, sha256, shape and dtype (the cache's rule for a shard of an interrupted build)."""
    try:
        path = out / part_name(int(c))
        assert (
            rec["name"] == path.name
            and rec["first_row"] == int(c) * rows
            and path.stat().st_size == rec["bytes"]
        )
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        assert arr.shape == (rec["rows"], rec["dim"]) and arr.dtype == np.float32
        return bool(sha256_file(path) == rec["sha256"] and isinstance(rec.get("texts_sha256"), str))
    except (AssertionError, KeyError, TypeError, ValueError, OSError):
        return False


def _start(
    out: Path, source: str | Path, rows: int, ingredients: dict[str, Any], overwrite: bool
) -> dict[str, Any]:
    """Rank 0, before anyone writes: check the folder belongs to this run (else refuse), keep its verified
    parts in ``progress.json`` and remove the index (so it reads as unfinished). Returns the run's state."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--output {out} is a file; sharded output needs a folder name (or end it in .npy)")
    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for path in _glot_files(out):
            path.unlink()
    remove_stale_temps(out)
    ingredients = {**ingredients, "shard_rows": rows, "input": input_digest(source)}
    key = _key(ingredients)
    stored, old, done = _recorded(out)
    if stored is None and _glot_files(out):
        raise _refuse(
            out,
            "embeddings without a key (written by an older glot, or damaged), which this run cannot resume",
        )
    if stored is not None and stored != key:
        raise _refuse(
            out,
            f"embeddings of another input, model or options (differs in: {config_differences(old, ingredients)})",
        )
    done = {c: r for c, r in done.items() if _part_done(out, c, r, rows)}
    state = {"key": key, "ingredients": ingredients, "shard_rows": rows, "done": done}
    atomic_write_json(out / PROGRESS, state)
    for other in out.glob(RANK_PROGRESS_GLOB):  # merged above
        other.unlink()
    (out / INDEX).unlink(missing_ok=True)
    return state


def _finish(
    out: Path, gathered: list[list[dict[str, Any]]], state: dict[str, Any], meta: dict[str, Any]
) -> dict[str, Any]:
    """Rank 0, after every rank wrote its parts: the index, then delete parts it does not list."""
    rows = int(state["shard_rows"])
    shards = sorted((dict(r) for recs in gathered for r in recs), key=lambda r: r["first_row"])
    kept = sum(state["done"].get(str(r["first_row"] // rows)) == r for r in shards)
    if not shards:
        raise InputError(f"no texts in {meta.get('input')!r}: expected one non-empty text per line")
    dims = {r.pop("dim") for r in shards}
    assert len(dims) == 1 and [r["first_row"] for r in shards] == [i * rows for i in range(len(shards))]
    for r in shards:
        assert (out / r["name"]).stat().st_size == r["bytes"], f"{r['name']} changed after it was written"
    index = {
        **meta, "format": FORMAT, "version": VERSION, "rows": sum(r["rows"] for r in shards),
        "dim": dims.pop(), "dtype": "float32", "shard_rows": rows, "shards": shards, "key": state["key"],
        "ingredients": state["ingredients"],
    }  # fmt: skip
    atomic_write_json(out / INDEX, index)
    listed = {r["name"] for r in shards}
    for stale in [*out.glob(PART_GLOB), *out.glob(RANK_PROGRESS_GLOB), out / PROGRESS]:
        if stale.name not in listed:
            stale.unlink(missing_ok=True)
    return {**index, "parts_computed": len(shards) - kept}


def encode_to_folder(
    embed: Callable[[list[str]], np.ndarray],
    source: str | Path,
    out: str | Path,
    *,
    shard_rows: int = 50_000,
    meta: dict[str, Any] | None = None,
    ingredients: dict[str, Any] | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Stream ``source`` through ``embed`` into the sharded folder ``out`` (resuming the finished parts of the
    same run); return its index, plus ``parts_computed`` (the parts this call embedded). ``ingredients``: what determines ``embed``'s output (the folder's key, with
    ``shard_rows`` and the input's sha256). Collective under a process group (every rank calls it with the same
    arguments; see :mod:`glot.distributed`).

    Shapes: embed: texts (B,) -> (B, D) float32; the folder holds N rows of width D over its parts.
    """
    out = Path(out)
    if dist.active() and str(source) == "-":
        raise InputError(
            "several ranks cannot share stdin; pass the input as a file when launched by torchrun"
        )
    state = dist.on_main(_start, out, source, shard_rows, dict(ingredients or {}), overwrite)
    mine = dist.everywhere(_write_mine, embed, source, out, shard_rows, progress and dist.is_main(), state)
    gathered = dist.all_gather_object(mine)
    meta = {**(meta or {}), "input": str(source)}
    return dict(dist.on_main(_finish, out, gathered, state, meta))


def load(folder: str | Path, mmap: bool = True) -> np.ndarray:
    """The (N, D) float32 embeddings of a folder :func:`encode_to_folder` wrote, in input order.

    Shapes: -> (N, D) float32.
    """
    folder = Path(folder)
    index = read_json(folder / INDEX)
    if not isinstance(index, dict) or index.get("format") != FORMAT or index.get("version") != VERSION:
        raise InputError(f"{folder / INDEX} is not a glot-embeddings v{VERSION} index; re-run glot encode")
    parts = []
    for r in index["shards"]:
        name = Path(str(r["name"])).name  # never leave the folder
        arr = np.load(folder / name, mmap_mode="r" if mmap else None, allow_pickle=False)
        if arr.shape != (r["rows"], index["dim"]) or arr.dtype != np.float32:
            raise InputError(f"{folder / name} holds {arr.dtype}{arr.shape}, the index says ({r['rows']}, "
                             f"{index['dim']}) float32; the folder is damaged, re-run glot encode")  # fmt: skip
        parts.append(arr)
    return np.concatenate(parts) if parts else np.zeros((0, int(index["dim"])), np.float32)
