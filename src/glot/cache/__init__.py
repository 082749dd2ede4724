"""Ragged hidden-state cache: a frozen backbone's real-token states, computed once, memory-mapped after.

Where things are: :mod:`glot.cache.key` names an entry (content key, storage dtypes, cache root),
:mod:`glot.cache.store` reads a finished entry (:class:`CachedStates`, verification), and
:mod:`glot.cache.build` writes one (:func:`build_or_load`, shard-by-shard build with resume).

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

from glot.cache.build import BackboneLike, build_or_load
from glot.cache.key import (
    FORMAT_VERSION,
    STORAGE_DTYPES,
    CacheKey,
    cache_key,
    check_dtype,
    check_texts,
    default_cache_root,
    texts_fingerprint,
)
from glot.cache.store import VERIFY_MODES, CacheCorruptError, CachedStates, PackedBatch

__all__ = [
    "FORMAT_VERSION",
    "STORAGE_DTYPES",
    "VERIFY_MODES",
    "BackboneLike",
    "CacheCorruptError",
    "CacheKey",
    "CachedStates",
    "PackedBatch",
    "build_or_load",
    "cache_key",
    "check_dtype",
    "check_texts",
    "default_cache_root",
    "texts_fingerprint",
]
