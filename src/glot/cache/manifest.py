"""Schema and consistency checks of a cache entry's ``manifest.json``: nothing in it is trusted until checked.

:func:`check_manifest` checks types and the shard records against ``num_items``/``shard_size`` (contiguous item
ranges, token counts summing to ``num_tokens``, plain file names inside the entry); :func:`check_offsets` checks
them against the loaded ``offsets.npy``. Any failure is a :class:`CacheCorruptError`, which the loader turns
into "warn + rebuild", never a wrong state or a ``KeyError``.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from glot.cache.key import FORMAT_VERSION, STORAGE_DTYPES

_SHA256 = re.compile(r"[0-9a-f]{64}")
FIELDS = ("key", "num_items", "num_tokens", "dim", "dtype", "shard_size", "offsets", "shards")


class CacheCorruptError(RuntimeError):
    """A cache entry on disk is missing, truncated or does not match its manifest.

    ``bad_shards`` lists the shards that failed when everything else (manifest, offsets) checked out, so only
    those need recomputing; it is empty when the entry as a whole is unusable.
    """

    def __init__(self, message: str, bad_shards: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.bad_shards = bad_shards


def plain_name(name: object, what: str) -> str:
    """``name`` if it is a plain file name inside the entry (no folder part, no '..', not absolute)."""
    ok = (
        isinstance(name, str) and name not in ("", ".", "..") and "\0" not in name
        and PurePosixPath(name).name == name and PureWindowsPath(name).name == name
    )  # fmt: skip
    if not ok:
        raise CacheCorruptError(f"{what} names file {name!r:.80}, not a plain file name inside the entry")
    return str(name)


def _int(record: dict[str, Any], field: str, what: str, lo: int = 0) -> int:
    value = record.get(field)
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise CacheCorruptError(f"{what} field {field!r} must be an int >= {lo}, got {value!r:.60}")
    return value


def check_record(record: object, what: str) -> dict[str, Any]:
    """A data file record: ``{"name": plain file name, "bytes": int >= 0, "sha256": 64 hex digits}``."""
    if not isinstance(record, dict):
        raise CacheCorruptError(f"{what} must be an object, got {type(record).__name__}")
    plain_name(record.get("name"), what)
    _int(record, "bytes", what)
    sha = record.get("sha256")
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise CacheCorruptError(f"{what} field 'sha256' must be 64 hex digits, got {sha!r:.80}")
    return record


def shard_items(s: int, shard_size: int, num_items: int) -> list[int]:
    """The item range ``[lo, hi)`` shard ``s`` holds."""
    return [s * shard_size, min(num_items, (s + 1) * shard_size)]


def num_shards(shard_size: int, num_items: int) -> int:
    return -(-num_items // shard_size)


def check_manifest(manifest: object, expected_key: str | None) -> dict[str, Any]:
    """Types and internal consistency of a parsed manifest; raise CacheCorruptError on the first problem."""
    if not isinstance(manifest, dict):
        raise CacheCorruptError(f"manifest.json holds a {type(manifest).__name__}, not an object")
    missing = [f for f in FIELDS if f not in manifest]
    if missing:
        raise CacheCorruptError(f"manifest.json lacks fields {missing}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CacheCorruptError(f"format_version {manifest.get('format_version')!r:.40} != {FORMAT_VERSION}")
    key = manifest["key"]
    if not isinstance(key, str) or (expected_key is not None and key != expected_key):
        want = f"{expected_key[:16]}..." if expected_key else "a str"
        raise CacheCorruptError(f"manifest key {key!r:.20}... does not match {want}")
    if not isinstance(manifest["dtype"], str) or manifest["dtype"] not in STORAGE_DTYPES:
        raise CacheCorruptError(f"unknown storage dtype {manifest['dtype']!r:.40}")
    n, size = _int(manifest, "num_items", "manifest", 1), _int(manifest, "shard_size", "manifest", 1)
    total = _int(manifest, "num_tokens", "manifest", n)
    _int(manifest, "dim", "manifest", 1)
    check_record(manifest["offsets"], "manifest offsets")
    shards = manifest["shards"]
    if not isinstance(shards, list) or len(shards) != num_shards(size, n):
        count = len(shards) if isinstance(shards, list) else type(shards).__name__
        raise CacheCorruptError(
            f"manifest lists {count} shards; {n} items at shard_size {size} make {num_shards(size, n)}"
        )
    for s, rec in enumerate(shards):
        check_record(rec, f"manifest shard {s}")
        if rec.get("items") != shard_items(s, size, n):
            raise CacheCorruptError(
                f"manifest shard {s} holds items {rec.get('items')!r:.40}, but shard_size {size} "
                f"puts items {shard_items(s, size, n)} there"
            )
        _int(rec, "num_tokens", f"manifest shard {s}", 1)
    names = [manifest["offsets"]["name"], *(rec["name"] for rec in shards)]
    if len(set(names)) != len(names) or "manifest.json" in names:
        raise CacheCorruptError("manifest lists the same data file twice (or manifest.json as data)")
    _check_truncation(manifest.get("truncation"))
    if sum(rec["num_tokens"] for rec in shards) != total:
        raise CacheCorruptError(f"shard token counts do not add up to num_tokens={total}")
    return manifest


def _check_truncation(trunc: object) -> None:
    """Optional ``{"truncated": int >= 0 | None, "max_length": int >= 1 | None}``."""
    if trunc is None:
        return
    ok = isinstance(trunc, dict) and all(
        trunc.get(f) is None or (type(trunc.get(f)) is int and trunc[f] >= lo)
        for f, lo in (("truncated", 0), ("max_length", 1))
    )
    if not ok:
        raise CacheCorruptError(f"manifest field 'truncation' is malformed: {trunc!r:.80}")


def check_offsets(manifest: dict[str, Any], offsets: np.ndarray) -> None:
    """``offsets`` (B + 1,) must start at 0, grow strictly, end at num_tokens and split the shards' tokens."""
    total = manifest["num_tokens"]
    if offsets[0] != 0 or offsets[-1] != total or bool((np.diff(offsets) <= 0).any()):
        raise CacheCorruptError(f"offsets.npy is inconsistent with num_tokens={total}")
    for s, rec in enumerate(manifest["shards"]):
        lo, hi = rec["items"]
        if int(offsets[hi] - offsets[lo]) != rec["num_tokens"]:
            raise CacheCorruptError(
                f"manifest shard {s} claims {rec['num_tokens']} tokens, offsets.npy gives it "
                f"{int(offsets[hi] - offsets[lo])}"
            )
