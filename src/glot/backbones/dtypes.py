"""Backbone precision: parse a user's dtype choice and pick a fast default for the machine.

Frozen backbone states are computed once and cached, so the backbone forward is the dominant cost of a GLOT
run. bfloat16 is 2.5-3.7x faster than float32 on CPUs with native bf16 instructions (avx512_bf16 / AMX) and
loses little (token-state cosine >= 0.9998 to float32, measured on MiniLM, mpnet, SmolLM2 and Gemma-3), while on
CPUs without them bf16 is emulated and slower. ``"auto"`` therefore chooses per machine.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
import transformers

from glot.errors import InputError

#: Accepted spellings of an explicit dtype (case-insensitive).
DTYPE_NAMES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}

#: Keyword that ``from_pretrained`` takes the dtype under (``torch_dtype`` before transformers 5).
FROM_PRETRAINED_DTYPE_KW = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"

_ALLOWED = ("auto", *DTYPE_NAMES, "torch.float32", "torch.bfloat16", "torch.float16")


@functools.lru_cache(maxsize=1)
def cpu_bf16_features() -> tuple[str, ...]:
    """This CPU's native bfloat16 features among ``("avx512_bf16", "amx_bf16")`` (empty: none, bf16 emulated).

    Asks torch first (``torch.cpu._is_avx512_bf16_supported`` / ``_is_amx_tile_supported``), then falls back
    to the Linux ``/proc/cpuinfo`` flags. Anything unknown counts as "no". The one capability probe of glot:
    the backbone's and the pooler head's ``"auto"`` dtypes both read it (:mod:`glot.training.precision`).
    """
    found: set[str] = set()
    for probe, feature in (
        ("_is_avx512_bf16_supported", "avx512_bf16"),
        ("_is_amx_tile_supported", "amx_bf16"),
    ):
        fn = getattr(torch.cpu, probe, None)
        if fn is not None:
            try:
                if bool(fn()):
                    found.add(feature)
            except Exception:  # pragma: no cover - private API, be defensive
                pass
    try:
        flags = set(Path("/proc/cpuinfo").read_text(errors="ignore").split())
    except OSError:
        flags = set()
    found |= flags & {"avx512_bf16", "amx_bf16"}
    return tuple(f for f in ("avx512_bf16", "amx_bf16") if f in found)


def cpu_has_fast_bf16() -> bool:
    """True when this CPU runs bfloat16 matmuls natively (avx512_bf16 or AMX tiles): :func:`cpu_bf16_features`."""
    return bool(cpu_bf16_features())


def auto_dtype(device: torch.device) -> torch.dtype:
    """The fastest accurate-enough dtype for ``device``: bf16 where it is native, else float32."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32
    return torch.float32


def resolve_dtype(spec: str | torch.dtype, device: torch.device | str = "cpu") -> torch.dtype:
    """Turn ``"auto"``, a name such as ``"bf16"``/``"float32"``, or a ``torch.dtype`` into a floating dtype.

    Raises ``ValueError`` naming the received value and the allowed ones.
    """
    if isinstance(spec, torch.dtype):
        if spec in DTYPE_NAMES.values():
            return spec
        raise InputError(f"dtype must be one of {', '.join(_ALLOWED)} (a floating dtype), got {spec}")
    if isinstance(spec, str):
        key = spec.strip().lower().removeprefix("torch.")
        if key == "auto":
            return auto_dtype(torch.device(device))
        if key in DTYPE_NAMES:
            return DTYPE_NAMES[key]
    raise InputError(f"dtype must be one of {', '.join(_ALLOWED)} or a torch.dtype, got {spec!r}")


def dtype_name(dtype: torch.dtype) -> str:
    """Canonical short name: torch.bfloat16 -> 'bfloat16'."""
    return str(dtype).removeprefix("torch.")
