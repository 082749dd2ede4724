"""Ragged hidden-state cache: a frozen backbone's real-token states, computed once, memory-mapped after.

Layout of one entry, ``<cache_root>/<key[:16]>/``::

    manifest.json        key + its ingredients, counts, dim, dtype, every data file with size and sha256
    offsets.npy          int64 (B + 1,): item i owns global token rows offsets[i]:offsets[i + 1]
    shard-00000.npy ...  (N_s, D) token states of items [s * shard_size, (s + 1) * shard_size), in item order

Shards are contiguous item ranges (length bucketing happens inside a shard, inside ``backbone.iter_packed``)
and are KEPT as shards: finalizing is one directory rename, never a copy of the data. Concatenating the
shard files in order gives the flat (N_tokens, D) array that ``offsets`` indexes. bfloat16 is stored as raw
uint16 bits. Files are plain ``.npy`` read with ``allow_pickle=False`` and ``mmap_mode="r"``.

A build writes into ``<key[:16]>.partial/``; every finished shard is saved atomically and recorded in
``progress.json``, so an interrupted build resumes at the first unfinished shard.

Verification on open (``verify=``): ``"size"`` checks the manifest, key, file sizes and array shapes (cheap);
``"full"`` also re-hashes every file (sha256); ``"auto"`` (default) is ``"full"`` the first time a process
opens an entry (and again if a file's mtime/size changed since), ``"size"`` afterwards. An entry that fails
is reported with a ``UserWarning`` naming the path and the problem, deleted and rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

FORMAT_VERSION = 1
STORAGE_DTYPES: dict[str, tuple[np.dtype[Any], torch.dtype]] = {
    "float16": (np.dtype(np.float16), torch.float16),
    "bfloat16": (np.dtype(np.uint16), torch.bfloat16),  # raw bits; viewed back as torch.bfloat16
    "float32": (np.dtype(np.float32), torch.float32),
}
VERIFY_MODES = ("auto", "full", "size", "none")
_VERIFIED: dict[str, tuple[tuple[str, int, int], ...]] = {}  # entry path -> file stats at last full check


@runtime_checkable
class BackboneLike(Protocol):
    """What the cache needs from a backbone (``glot.backbone.FrozenBackbone`` satisfies it)."""

    hidden_size: int

    def fingerprint(self) -> dict[str, Any]: ...

    def iter_packed(
        self, texts: Sequence[str], batch_size: int = 64, progress: bool = True, desc: str = ...
    ) -> Iterator[tuple[np.ndarray, Tensor, Tensor]]: ...


class CacheCorruptError(RuntimeError):
    """A cache entry on disk is missing, truncated or does not match its manifest."""


class PackedBatch(NamedTuple):
    """A packed mini-batch from the cache. Shapes: x (N, D) float32, ptr (B + 1,) int64, index (B,) int64."""

    x: Tensor
    ptr: Tensor
    index: Tensor  # type: ignore[assignment]  # (shadows tuple.index on purpose: the natural name)


@dataclass(frozen=True)
class CacheKey:
    """Content key of a cache entry: sha256 of the canonical JSON of ``ingredients``."""

    digest: str
    ingredients: dict[str, Any]

    @property
    def short(self) -> str:
        """The directory name of the entry (first 16 hex digits)."""
        return self.digest[:16]


def check_texts(texts: object) -> list[str]:
    """Return ``texts`` as a list of str, or raise TypeError naming the first bad item / ValueError if empty."""
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise TypeError(f"texts must be a list of str, got {type(texts).__name__}; wrap one text as [text]")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts must be a list of str, but texts[{i}] is {type(t).__name__}: {t!r:.60}")
    if len(texts) == 0:
        raise ValueError("texts is empty; the cache needs at least one text")
    return list(texts)


def check_dtype(dtype: str) -> str:
    """Validate a storage dtype name."""
    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"storage dtype {dtype!r} is not supported; use one of {sorted(STORAGE_DTYPES)}")
    return dtype


def texts_fingerprint(texts: Sequence[str]) -> str:
    """sha256 over the texts in order (each length-prefixed, so boundaries are unambiguous)."""
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8", "surrogatepass")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def cache_key(fingerprint: dict[str, Any], texts: Sequence[str], dtype: str = "float16") -> CacheKey:
    """Key from the backbone fingerprint, storage dtype, texts and format version; any change -> new key."""
    ingredients = {
        "backbone": fingerprint,
        "dtype": check_dtype(dtype),
        "texts_sha256": texts_fingerprint(texts),
        "num_texts": len(texts),
        "format_version": FORMAT_VERSION,
    }
    try:
        canon = json.dumps(ingredients, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    except TypeError as err:
        raise TypeError(
            f"backbone.fingerprint() must be JSON-serialisable, got {fingerprint!r:.200}"
        ) from err
    return CacheKey(hashlib.sha256(canon.encode()).hexdigest(), json.loads(canon))


def default_cache_root() -> Path:
    """``$GLOT_HOME/cache``; GLOT_HOME defaults to ``platformdirs.user_cache_dir("glot")``."""
    home = os.environ.get("GLOT_HOME")
    if not home:
        import platformdirs

        home = platformdirs.user_cache_dir("glot")
    return Path(home) / "cache"


# ---------------------------------------------------------------------------------------------- file helpers
def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _atomic_write_bytes(path: Path, write: Any) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _save_npy(path: Path, arr: np.ndarray) -> dict[str, Any]:
    """Atomically write ``arr`` as .npy; return its file record (name, bytes, sha256)."""
    _atomic_write_bytes(path, lambda f: np.lib.format.write_array(f, arr, allow_pickle=False))
    return {"name": path.name, "bytes": path.stat().st_size, "sha256": _sha256_file(path)}


def _save_json(path: Path, obj: Any) -> None:
    _atomic_write_bytes(path, lambda f: f.write(json.dumps(obj, indent=1, sort_keys=True).encode()))


def _remove_tree(path: Path) -> None:
    """Move aside first (atomic), then delete, so a half-deleted entry is never mistaken for a good one."""
    doomed = path.with_name(f"{path.name}.trash-{os.getpid()}-{time.monotonic_ns()}")
    os.replace(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- verification
def _read_manifest(path: Path, expected_key: str | None) -> dict[str, Any]:
    try:
        manifest = json.loads((path / "manifest.json").read_text())
        fields = ("key", "num_items", "num_tokens", "dim", "dtype", "shard_size", "offsets", "shards")
        missing = [f for f in fields if f not in manifest]
    except (OSError, ValueError) as err:
        raise CacheCorruptError(f"manifest.json is unreadable: {err}") from err
    if missing:
        raise CacheCorruptError(f"manifest.json lacks fields {missing}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CacheCorruptError(f"format_version {manifest.get('format_version')!r} != {FORMAT_VERSION}")
    if expected_key is not None and manifest["key"] != expected_key:
        raise CacheCorruptError(
            f"manifest key {manifest['key'][:16]}... does not match {expected_key[:16]}..."
        )
    if manifest["dtype"] not in STORAGE_DTYPES:
        raise CacheCorruptError(f"unknown storage dtype {manifest['dtype']!r}")
    return manifest


def _check_files(path: Path, records: list[dict[str, Any]], verify: str) -> None:
    """Sizes always (unless verify="none"); sha256 when verify is "full", or "auto" and not yet checked."""
    if verify == "none":
        return
    stats = []
    for rec in records:
        try:
            st = (path / rec["name"]).stat()
        except OSError as err:
            raise CacheCorruptError(f"data file {rec['name']} is missing ({err.strerror})") from err
        if st.st_size != rec["bytes"]:
            raise CacheCorruptError(
                f"{rec['name']} has {st.st_size} bytes, manifest says {rec['bytes']} (truncated?)"
            )
        stats.append((rec["name"], st.st_size, st.st_mtime_ns))
    if verify == "full" or (verify == "auto" and _VERIFIED.get(str(path)) != tuple(stats)):
        for rec in records:
            if _sha256_file(path / rec["name"]) != rec["sha256"]:
                raise CacheCorruptError(f"{rec['name']} fails its sha256 checksum (corrupted)")
        _VERIFIED[str(path)] = tuple(stats)


def _load_npy(path: Path, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise CacheCorruptError(f"{path.name} is not a readable .npy file: {err}") from err
    if arr.shape != shape or arr.dtype != dtype:
        raise CacheCorruptError(f"{path.name} holds {arr.dtype}{arr.shape}, expected {dtype}{shape}")
    return arr


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

    @classmethod
    def open(cls, path: str | Path, *, verify: str = "auto", expected_key: str | None = None) -> CachedStates:
        """Open and verify an entry; raise CacheCorruptError on any mismatch (see module doc for ``verify``)."""
        path = Path(path)
        manifest = _read_manifest(path, expected_key)
        records = [manifest["offsets"], *manifest["shards"]]
        _check_files(path, records, verify)
        offsets = _load_npy(
            path / manifest["offsets"]["name"], (manifest["num_items"] + 1,), np.dtype(np.int64)
        )
        if offsets[0] != 0 or offsets[-1] != manifest["num_tokens"] or bool((np.diff(offsets) <= 0).any()):
            raise CacheCorruptError(f"offsets.npy is inconsistent with num_tokens={manifest['num_tokens']}")
        np_dtype = STORAGE_DTYPES[manifest["dtype"]][0]
        shards = [
            _load_npy(path / rec["name"], (rec["num_tokens"], manifest["dim"]), np_dtype)
            for rec in manifest["shards"]
        ]
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
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        order = np.arange(len(self)) if indices is None else self._check_indices(indices)
        if shuffle:
            order = order[np.random.default_rng(seed).permutation(order.size)]
        for start in range(0, order.size, batch_size):
            chunk = order[start : start + batch_size]
            if drop_last and chunk.size < batch_size:
                break
            x, ptr = self.packed(chunk)
            yield PackedBatch(x, ptr, torch.from_numpy(chunk.copy()))


# ---------------------------------------------------------------------------------------------- building
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
        raise ValueError(
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
                raise ValueError(f"text {lo + i} ({texts[i]!r:.40}) produced no tokens; drop or fix it")
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
        return all(_sha256_file(partial / f["name"]) == f["sha256"] for f in files)
    except OSError:
        return False


def _build_entry(
    backbone: BackboneLike, texts: list[str], key: CacheKey, final: Path, dtype: str, batch_size: int,
    shard_size: int, progress: bool,
) -> None:  # fmt: skip
    """Build (or resume) ``<final>.partial`` shard by shard, then finalize it into ``final``."""
    from tqdm.auto import tqdm

    partial = final.with_name(final.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {"key": key.digest, "shard_size": shard_size, "done": {}}
    if (partial / "progress.json").exists():
        try:
            old = json.loads((partial / "progress.json").read_text())
            state = old if old.get("key") == key.digest else state  # same key: resume with its shard size
        except ValueError:
            pass
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
            _save_json(partial / "progress.json", state)
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
    _save_json(partial / "manifest.json", manifest)
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
    records = [manifest["offsets"], *shards]
    _VERIFIED[str(final)] = tuple(
        (r["name"], r["bytes"], (final / r["name"]).stat().st_mtime_ns) for r in records
    )  # hashed while building: the first open in this process need not re-hash


def _glot_version() -> str:
    try:
        from glot import __version__

        return str(__version__)
    except ImportError:
        return "unknown"


# ---------------------------------------------------------------------------------------------- entry point
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
    check_dtype(dtype)
    if verify not in VERIFY_MODES:
        raise ValueError(f"verify must be one of {VERIFY_MODES}, got {verify!r}")
    for name, value in (("shard_size", shard_size), ("batch_size", batch_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
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
