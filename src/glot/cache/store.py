"""Reading a finished cache entry: manifest and file checks, then a read-only, memory-mapped view of it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from glot.cache.key import STORAGE_DTYPES
from glot.cache.manifest import CacheCorruptError, check_manifest, check_offsets
from glot.cache.quantize import QUANTIZED, decode, stored_width
from glot.errors import InputError
from glot.io import sha256_file

VERIFY_MODES = ("auto", "full", "size", "none")
_VERIFIED: dict[str, tuple[tuple[str, int, int], ...]] = {}  # entry path -> file stats at last full check


class PackedBatch(NamedTuple):
    """A packed mini-batch from the cache. Shapes: x (N, D) float32, ptr (B + 1,) int64, index (B,) int64."""

    x: Tensor
    ptr: Tensor
    index: Tensor  # type: ignore[assignment]  # (shadows tuple.index on purpose: the natural name)


# ---------------------------------------------------------------------------------------------- verification
def mark_verified(path: Path, records: list[dict[str, Any]]) -> None:
    """Record that the files of the entry at ``path`` were just hashed, so ``verify="auto"`` skips re-hashing
    them in this process until a file's size or mtime changes."""
    _VERIFIED[str(path)] = tuple(
        (r["name"], r["bytes"], (path / r["name"]).stat().st_mtime_ns) for r in records
    )


def read_manifest(path: Path, expected_key: str | None) -> dict[str, Any]:
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError) as err:
        raise CacheCorruptError(f"manifest.json is unreadable: {err}") from err
    return check_manifest(manifest, expected_key)


def _check_files(path: Path, records: list[dict[str, Any]], verify: str) -> dict[int, str]:
    """Problems by record index: sizes always (unless verify="none"); sha256 when verify is "full", or "auto"
    and the files changed since this process last hashed them. Empty when every file checks out."""
    if verify == "none":
        return {}
    problems: dict[int, str] = {}
    stats = []
    for i, rec in enumerate(records):
        try:
            st = (path / rec["name"]).stat()
        except OSError as err:
            problems[i] = f"data file {rec['name']} is missing ({err.strerror})"
            continue
        if st.st_size != rec["bytes"]:
            problems[i] = f"{rec['name']} has {st.st_size} bytes, manifest says {rec['bytes']} (truncated?)"
        stats.append((rec["name"], st.st_size, st.st_mtime_ns))
    if verify == "full" or (verify == "auto" and _VERIFIED.get(str(path)) != tuple(stats)):
        for i, rec in enumerate(records):
            if i not in problems and sha256_file(path / rec["name"]) != rec["sha256"]:
                problems[i] = f"{rec['name']} fails its sha256 checksum (corrupted)"
        if not problems:
            _VERIFIED[str(path)] = tuple(stats)
    return problems


def _load_npy(path: Path, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise CacheCorruptError(f"{path.name} is not a readable .npy file: {err}") from err
    if arr.shape != shape or arr.dtype != dtype:
        raise CacheCorruptError(f"{path.name} holds {arr.dtype}{arr.shape}, expected {dtype}{shape}")
    return arr


def _open_shards(path: Path, manifest: dict[str, Any], problems: dict[int, str]) -> list[np.ndarray]:
    """Memory-map every shard; raise CacheCorruptError naming the bad ones (``bad_shards``) if any fail."""
    np_dtype, width = STORAGE_DTYPES[manifest["dtype"]][0], stored_width(manifest["dtype"], manifest["dim"])
    shards: list[np.ndarray] = []
    for s, rec in enumerate(manifest["shards"]):
        if s + 1 in problems:
            continue
        try:
            shards.append(_load_npy(path / rec["name"], (rec["num_tokens"], width), np_dtype))
        except CacheCorruptError as err:
            problems[s + 1] = str(err)
    if problems:
        bad = tuple(sorted(i - 1 for i in problems))
        raise CacheCorruptError(
            f"{'; '.join(problems[i] for i in sorted(problems))} "
            f"({len(bad)} of {len(manifest['shards'])} shards damaged)",
            bad_shards=bad,
        )
    return shards


# ---------------------------------------------------------------------------------------------- reading
class CachedStates:
    """Read-only, memory-mapped view of one cache entry.

    Shapes: ``get(i)`` -> (L_i, D) float32; ``packed(idx)`` -> x (N, D) float32, ptr (B + 1,) int64.
    """

    def __init__(self, path: Path, manifest: dict[str, Any], offsets: np.ndarray, shards: list[np.ndarray]):
        self.path = path
        self.manifest = manifest
        self.offsets = offsets
        self.lengths: np.ndarray = np.diff(offsets)
        self.dim = int(manifest["dim"])
        self.num_tokens = int(manifest["num_tokens"])
        self.dtype = str(manifest["dtype"])
        self._shards = shards
        self._shard_size = int(manifest["shard_size"])
        self._shard_base = offsets[:-1][:: self._shard_size].copy()  # first global row of each shard
        trunc = manifest.get("truncation") or {}
        #: How many texts the backbone cut to ``truncated_at`` tokens while building (None: not reported).
        self.num_truncated: int | None = trunc.get("truncated")
        self.truncated_at: int | None = trunc.get("max_length")
        #: Shards the :func:`~glot.cache.build_or_load` call that returned this computed (over all ranks);
        #: None when it opened the entry as it was, [] when it only finalized an already complete build.
        self.built_shards: list[int] | None = None

    @classmethod
    def open(cls, path: str | Path, *, verify: str = "auto", expected_key: str | None = None) -> CachedStates:
        """Open and verify an entry; raise CacheCorruptError on any mismatch (see :mod:`glot.cache` for
        ``verify``)."""
        path = Path(path)
        manifest = read_manifest(path, expected_key)
        problems = _check_files(path, [manifest["offsets"], *manifest["shards"]], verify)
        if 0 in problems:
            raise CacheCorruptError(problems[0])
        offsets = _load_npy(
            path / manifest["offsets"]["name"], (manifest["num_items"] + 1,), np.dtype(np.int64)
        )
        check_offsets(manifest, offsets)
        shards = _open_shards(path, manifest, problems)
        return cls(path, manifest, offsets, shards)

    def __len__(self) -> int:
        return len(self.lengths)

    def __repr__(self) -> str:
        return f"CachedStates({len(self)} items, {self.num_tokens} tokens, D={self.dim}, {self.dtype}, {self.path})"

    def _rows(self, i: int) -> np.ndarray:
        s = i // self._shard_size
        base = self._shard_base[s]
        return self._shards[s][self.offsets[i] - base : self.offsets[i + 1] - base]

    def _to_tensor(self, arr: np.ndarray) -> Tensor:
        if self.dtype in QUANTIZED:
            return decode(arr)
        if self.dtype == "bfloat16":
            return torch.from_numpy(arr.view(np.int16)).view(torch.bfloat16).float()
        return torch.from_numpy(arr).float()

    def _check_indices(self, indices: Any) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            bad = int(idx[(idx < 0) | (idx >= len(self))][0])
            raise IndexError(f"item index {bad} out of range for a cache of {len(self)} items")
        return idx

    def get(self, i: int) -> Tensor:
        """Token states of item ``i``. Shapes: -> (L_i, D) float32."""
        (j,) = self._check_indices([i])
        return self._to_tensor(np.array(self._rows(int(j))))

    def packed(self, indices: Any) -> tuple[Tensor, Tensor]:
        """Packed states of the given items, in that order. Shapes: (B,) -> x (N, D) float32, ptr (B + 1,)."""
        idx = self._check_indices(indices)
        if idx.size == 0:
            return torch.zeros(0, self.dim), torch.zeros(1, dtype=torch.long)
        x = np.concatenate([self._rows(int(i)) for i in idx])
        ptr = torch.zeros(idx.size + 1, dtype=torch.long)
        ptr[1:] = torch.from_numpy(np.cumsum(self.lengths[idx]))
        return self._to_tensor(x), ptr

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        indices: Any = None,
        drop_last: bool = False,
    ) -> Iterator[PackedBatch]:
        """Packed mini-batches covering every item (or ``indices``) once; shuffling is deterministic by seed.

        Shapes: each batch x (N, D) float32, ptr (B + 1,), index (B,) item indices.
        """
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
        order = np.arange(len(self)) if indices is None else self._check_indices(indices)
        if shuffle:
            order = order[np.random.default_rng(seed).permutation(order.size)]
        for start in range(0, order.size, batch_size):
            chunk = order[start : start + batch_size]
            if drop_last and chunk.size < batch_size:
                break
            x, ptr = self.packed(chunk)
            yield PackedBatch(x, ptr, torch.from_numpy(chunk.copy()))
