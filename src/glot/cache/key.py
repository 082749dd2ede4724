"""What names a cache entry: the content key (backbone fingerprint + storage dtype + texts) and where it lives."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from glot.backbones.zoo import glot_home
from glot.errors import InputError, InputTypeError

FORMAT_VERSION = 1
STORAGE_DTYPES: dict[str, tuple[np.dtype[Any], torch.dtype]] = {
    "float16": (np.dtype(np.float16), torch.float16),
    "bfloat16": (np.dtype(np.uint16), torch.bfloat16),  # raw bits; viewed back as torch.bfloat16
    "float32": (np.dtype(np.float32), torch.float32),
    "int8": (np.dtype(np.int8), torch.int8),  # + a float32 scale per token: glot.cache.quantize
}


@dataclass(frozen=True)
class CacheKey:
    """Content key of a cache entry: sha256 of the canonical JSON of ``ingredients``."""

    digest: str
    ingredients: dict[str, Any]

    @property
    def short(self) -> str:
        """The directory name of the entry (first 16 hex digits)."""
        return self.digest[:16]


def check_dtype(dtype: str) -> str:
    """Validate a storage dtype name."""
    if dtype not in STORAGE_DTYPES:
        raise InputError(f"storage dtype {dtype!r} is not supported; use one of {sorted(STORAGE_DTYPES)}")
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
        raise InputTypeError(
            f"backbone.fingerprint() must be JSON-serialisable, got {fingerprint!r:.200}"
        ) from err
    return CacheKey(hashlib.sha256(canon.encode()).hexdigest(), json.loads(canon))


def default_cache_root() -> Path:
    """``$GLOT_HOME/cache`` (:func:`glot.backbones.zoo.glot_home`: the user cache dir without GLOT_HOME)."""
    return glot_home() / "cache"


def resolve_cache_root(cache_dir: str | os.PathLike[str] | None) -> Path:
    """The folder cache entries live in (``cache_dir``, else :func:`default_cache_root`), created if missing.

    Raises InputError (one line naming the folder and the fix) when it is a file, cannot be created, or is
    not writable: every command that caches goes through here, so none of them ends in a traceback for it.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_root()
    origin = (
        "cache_dir (--cache-dir)" if cache_dir is not None else "the default cache folder ($GLOT_HOME/cache)"
    )
    fix = "point --cache-dir (cache_dir=) or $GLOT_HOME at a writable folder"
    if root.exists() and not root.is_dir():
        raise InputError(f"{origin} {str(root)!r} is a file, not a folder; {fix}")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{origin} {str(root)!r} cannot be created ({err.strerror}); {fix}") from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise InputError(f"{origin} {str(root)!r} is not writable; {fix}")
    return root
