"""Ragged hidden-state cache: a frozen backbone's real-token states, computed once, memory-mapped after.

Where things are: :mod:`glot.cache.key` names an entry (content key, storage dtypes, cache root),
:mod:`glot.cache.manifest` checks a manifest, :mod:`glot.cache.store` reads a finished entry
(:class:`CachedStates`, verification), :mod:`glot.cache.shards` writes one (shard-by-shard build with
resume, repair) and :mod:`glot.cache.build` ties them together under a lock (:func:`build_or_load`).

Layout of one entry, ``<cache_root>/<key[:16]>/``::

    manifest.json        key + its ingredients, counts, dim, dtype, every data file with size and sha256,
                         and ``truncation``: how many texts the backbone cut, at what max_length
    offsets.npy          int64 (B + 1,): item i owns global token rows offsets[i]:offsets[i + 1]
    shard-00000.npy ...  (N_s, D) token states of items [s * shard_size, (s + 1) * shard_size), in item order

plus ``<key[:16]>.lock`` beside it (the entry's lock file, left in place). Shards are contiguous item ranges
(length bucketing happens inside a shard, inside ``backbone.iter_packed``) and are KEPT as shards: finalizing
is one directory rename, never a copy of the data. Concatenating the shard files in order gives the flat
(N_tokens, D) array that ``offsets`` indexes. bfloat16 is stored as raw uint16 bits. Files are plain ``.npy``
read with ``allow_pickle=False`` and ``mmap_mode="r"``.

Concurrency: everything that writes an entry (build, resume, repair, delete) runs holding the per-key
``filelock`` lock; a second process asking for the same key waits, then opens the finished entry without
computing anything. A good finished entry is opened without the lock. The lock is an OS lock, released
when its holder dies (kill -9 included), so it never goes stale.

A build writes into ``<key[:16]>.partial/``; every finished shard is saved atomically and recorded in
``progress.json``, so an interrupted (even SIGKILLed) build resumes at the first unfinished shard. On resume
the temp files of a write the kill interrupted (``glot.io.TEMP_GLOB``) are deleted, recorded shards are kept
only if their files still hash right, and finalizing removes every file the manifest does not list.

Several processes (``torchrun --nproc_per_node N -m glot cache ...``, or any code that calls
:func:`build_or_load` on every rank of an initialised ``torch.distributed`` group): rank 0 takes the lock and
lists the missing shards, each rank embeds a disjoint, length-balanced share of them (records in
``progress-rank<r>.json``), rank 0 checks them and finalizes; the entry is the same as a one-process build's.

Verification on open (``verify=``): ``"size"`` checks the manifest, key, file sizes and array shapes (cheap);
``"full"`` also re-hashes every file (sha256); ``"auto"`` (default) is ``"full"`` the first time a process
opens an entry (and again if a file's mtime/size changed since), ``"size"`` afterwards. The manifest is never
trusted: field types, shard item ranges (contiguous, consistent with ``shard_size``), per-shard token counts
(against ``offsets.npy``) and file names (plain names inside the entry) are all checked. An entry that fails
is reported with a ``UserWarning`` naming the path and the problem, and never used:

- when only some shards are damaged (missing, wrong size or sha256, unreadable) and the manifest and offsets
  check out, the entry is moved back to ``<key[:16]>.partial/`` keeping its good shards, and only the
  damaged shards are recomputed;
- anything else (manifest unreadable or inconsistent, offsets damaged) deletes the entry and rebuilds it.
"""

from __future__ import annotations

from glot.cache.build import BackboneLike, build_or_load
from glot.cache.key import (
    FORMAT_VERSION,
    STORAGE_DTYPES,
    CacheKey,
    cache_key,
    check_dtype,
    default_cache_root,
    resolve_cache_root,
    texts_fingerprint,
)
from glot.cache.manifest import CacheCorruptError
from glot.cache.store import VERIFY_MODES, CachedStates, PackedBatch

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
    "default_cache_root",
    "resolve_cache_root",
    "texts_fingerprint",
]
