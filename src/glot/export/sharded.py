"""Streaming, sharded embeddings for corpora that do not fit in memory (``glot encode -o FOLDER``).

The input is read line by line, ``shard_rows`` non-blank lines at a time, so a 10M-line file is never held
whole; chunk ``c`` is embedded into ``part-<c>.npy`` (rows ``[c * shard_rows, (c + 1) * shard_rows)`` of the
result) by rank ``c % world_size``, so ``torchrun --nproc_per_node N`` writes N shards at a time. When every
rank is done, rank 0 writes ``index.json``::

    {"format": "glot-embeddings", "version": 1, "rows": N, "dim": D, "dtype": "float32", "shard_rows": S,
     "shards": [{"name": "part-00000.npy", "first_row": 0, "rows": S, "bytes": ..., "sha256": ...}, ...],
     ...the encoder's description (pooler, normalize, input)}

Every file is written atomically; ``index.json`` is removed when a run starts and written last, so a folder
with an index is complete, and parts the index does not list (an earlier, longer run) are deleted.
:func:`load` reads a folder back (checked against its index). Each chunk is embedded the same way whatever
the number of ranks, so N processes give the same rows as one.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from glot import distributed as dist
from glot.errors import InputError
from glot.io import atomic_save_npy, atomic_write_json, read_json, sha256_file
from glot.progress import tqdm

INDEX = "index.json"
FORMAT = "glot-embeddings"
VERSION = 1
PART_GLOB = "part-*.npy"


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


def _write_mine(
    embed: Callable[[list[str]], np.ndarray], source: str | Path, out: Path, rows: int, progress: bool
) -> list[dict[str, Any]]:
    """Embed and write this rank's chunks; return their records."""
    me, world = dist.rank(), dist.world_size()
    records = []
    with tqdm(disable=not progress, desc="encoding", unit="text") as bar:
        for c, chunk in enumerate(iter_chunks(source, rows)):
            if c % world != me:
                continue
            emb = np.asarray(embed(chunk), dtype=np.float32)
            assert emb.ndim == 2 and len(emb) == len(chunk), (
                f"embed returned {emb.shape} for {len(chunk)} texts"
            )
            path = atomic_save_npy(out / part_name(c), emb)
            records.append({
                "name": path.name, "first_row": c * rows, "rows": len(chunk), "dim": int(emb.shape[1]),
                "bytes": path.stat().st_size, "sha256": sha256_file(path),
            })  # fmt: skip
            bar.update(len(chunk))
    return records


def _start(out: Path) -> None:
    """Rank 0, before anyone writes: the folder exists and holds no index (so it reads as unfinished)."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--output {out} is a file; sharded output needs a folder name (or end it in .npy)")
    out.mkdir(parents=True, exist_ok=True)
    (out / INDEX).unlink(missing_ok=True)


def _finish(
    out: Path, gathered: list[list[dict[str, Any]]], rows: int, meta: dict[str, Any]
) -> dict[str, Any]:
    """Rank 0, after every rank wrote its parts: the index, then delete parts it does not list."""
    shards = sorted((r for recs in gathered for r in recs), key=lambda r: r["first_row"])
    if not shards:
        raise InputError(f"no texts in {meta.get('input')!r}: expected one non-empty text per line")
    dims = {r.pop("dim") for r in shards}
    assert len(dims) == 1 and [r["first_row"] for r in shards] == [i * rows for i in range(len(shards))]
    for r in shards:
        assert (out / r["name"]).stat().st_size == r["bytes"], f"{r['name']} changed after it was written"
    index = {
        **meta, "format": FORMAT, "version": VERSION, "rows": sum(r["rows"] for r in shards),
        "dim": dims.pop(), "dtype": "float32", "shard_rows": rows, "shards": shards,
    }  # fmt: skip
    atomic_write_json(out / INDEX, index)
    listed = {r["name"] for r in shards}
    for stale in out.glob(PART_GLOB):
        if stale.name not in listed:
            stale.unlink()
    return index


def encode_to_folder(
    embed: Callable[[list[str]], np.ndarray],
    source: str | Path,
    out: str | Path,
    *,
    shard_rows: int = 50_000,
    meta: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Stream ``source`` through ``embed`` into the sharded folder ``out``; return its index. Collective
    under a process group (every rank calls it with the same arguments; see :mod:`glot.distributed`).

    Shapes: embed: texts (B,) -> (B, D) float32; the folder holds N rows of width D over its parts.
    """
    out = Path(out)
    if dist.active() and str(source) == "-":
        raise InputError(
            "several ranks cannot share stdin; pass the input as a file when launched by torchrun"
        )
    dist.on_main(_start, out)
    mine = dist.everywhere(_write_mine, embed, source, out, shard_rows, progress and dist.is_main())
    gathered = dist.all_gather_object(mine)
    meta = {**(meta or {}), "input": str(source)}
    return dict(dist.on_main(_finish, out, gathered, shard_rows, meta))


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
