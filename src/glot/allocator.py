"""Process allocator settings for CPU runs (issue 12): keep freed tensor memory instead of handing it back.

glibc's malloc returns a freed block of more than its mmap threshold (128 KB at first, rising to at most 32 MB as
blocks are freed) to the OS at once, and trims the top of its heap whenever more than its trim threshold is free
there. A training or encoding step allocates and frees the same few megabyte-sized tensors every step (GAT
messages, the readout's (N, F) inputs, the backbone's activations), so every step pays the kernel's page faults
again to zero fresh pages: measured on the head forward of ``benchmarks/bench_pooler.py`` (B = 128 tweets, one
thread) ~20% of its time (docs/benchmarks.md, "Allocator"). PyTorch's CPU performance guide gives the usual cure
as swapping in jemalloc or TCMalloc with ``LD_PRELOAD``; glibc's own ``mallopt`` reaches the same by fixing
both thresholds, with no extra package.

:func:`tune_allocator` sets ``M_MMAP_THRESHOLD`` to 32 MB (glibc's own upper bound for its dynamic threshold)
and ``M_TRIM_THRESHOLD`` to 256 MB, so up to 256 MB of freed memory stays mapped for the next step. The ``glot``
command line calls it once at start (the process is ours); importing the library never does (a library does not
change its host's allocator). It does nothing:

- off glibc (macOS, Windows, musl): there is no ``mallopt`` to call;
- when the user chose: ``GLOT_TUNE_MALLOC=0``, glibc's own variables ``MALLOC_MMAP_THRESHOLD_`` /
  ``MALLOC_TRIM_THRESHOLD_`` set, or another allocator preloaded (``LD_PRELOAD`` naming jemalloc, tcmalloc
  or mimalloc).
"""

from __future__ import annotations

import os
from typing import Any

#: mallopt parameter numbers (glibc <malloc.h>)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: what tune_allocator sets
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 256 << 20

OPT_OUT = "GLOT_TUNE_MALLOC"
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
_OTHER_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")

_done: str | None = None


def _libc() -> Any | None:
    """glibc, or None where the C library is another one (no ``gnu_get_libc_version``, no ``mallopt``).

    The process's own symbols (``CDLL(None)``) are searched: where glibc is the C library it is loaded already.
    """
    import ctypes  # here, not at import: glot --help stays fast

    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    if not (hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt")):
        return None
    return libc


def skip_reason() -> str | None:
    """Why :func:`tune_allocator` leaves the allocator alone in this environment, or None to tune it."""
    env = os.environ
    if env.get(OPT_OUT, "").strip().lower() in ("0", "false", "no", "off"):
        return f"{OPT_OUT}={env[OPT_OUT]}"
    chosen = [name for name in _USER_SETTINGS if name in env]
    if chosen:
        return f"{chosen[0]} is set"
    preload = env.get("LD_PRELOAD", "")
    other = next((name for name in _OTHER_ALLOCATORS if name in preload), None)
    if other is not None:
        return f"LD_PRELOAD has {other}"
    return None


def tune_allocator(libc: Any | None = None) -> str:
    """Fix glibc's mmap and trim thresholds for this process (see the module doc); idempotent.

    ``libc``: the C library to call (default: this process's, when it is glibc). Returns what it did, for logs:
    ``"tuned: ..."``, or ``"left alone: <reason>"``.
    """
    global _done
    if _done is None:
        reason = skip_reason()
        if reason is None:
            lib = libc if libc is not None else _libc()
            if lib is None:
                reason = "not glibc"
            elif not (
                lib.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                and lib.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
            ):
                reason = "mallopt refused the values"
        _done = (
            f"left alone: {reason}"
            if reason is not None
            else f"tuned: mmap threshold {MMAP_THRESHOLD >> 20} MB, trim threshold {TRIM_THRESHOLD >> 20} MB"
        )
    return _done
