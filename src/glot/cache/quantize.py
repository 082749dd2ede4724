"""int8 storage of cached token states: symmetric quantisation with one float32 scale per token.

A token's state x (D floats) is stored as D int8 codes ``q = round(x / s)`` with ``s = max|x| / 127`` (1 for an
all-zero state), followed by the 4 bytes of ``s`` (little-endian float32) in the SAME row, so a shard stays one
``.npy`` file of shape (N, D + 4) and every check of a shard (size, sha256, shape) covers the scales too. Decoding
is ``q * s``: each element is off by at most ``s / 2 = max|x| / 254`` of its own token, and a token's largest
element is exact. A row takes D + 4 bytes instead of 2 D (float16): about half (0.51x at D = 384, 0.50x at
D = 4,096).

:mod:`glot.cache.shards` calls :func:`encode` when it writes an ``"int8"`` entry and :mod:`glot.cache.store`
calls :func:`decode` when it reads one; :func:`stored_width` is the row width on disk of any storage dtype.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from glot.errors import InputError

__all__ = ["QUANTIZED", "SCALE_BYTES", "decode", "encode", "logical_dim", "stored_width"]

#: Storage dtypes whose rows carry a per-token scale after the codes.
QUANTIZED = ("int8",)
#: Bytes of the per-token scale at the end of each stored row (a little-endian float32).
SCALE_BYTES = 4
_SCALE = np.dtype("<f4")
_LEVELS = 127.0


def stored_width(dtype: str, dim: int) -> int:
    """Columns of a stored shard row for states of width ``dim`` (``dim`` + the scale bytes for int8)."""
    return dim + SCALE_BYTES if dtype in QUANTIZED else dim


def logical_dim(dtype: str, width: int) -> int:
    """Inverse of :func:`stored_width`: the state width D of stored rows of ``width`` columns."""
    return width - SCALE_BYTES if dtype in QUANTIZED else width


def encode(x: Tensor, first_item: int = 0) -> np.ndarray:
    """Quantise token states to int8 rows with their scale appended (see the module doc).

    ``first_item`` (the batch's first text, for the error message) only names where NaN/inf states came from.
    Shapes: x (N, D) any float dtype -> (N, D + 4) int8.
    """
    t = x.detach().to("cpu", torch.float32)
    if not bool(torch.isfinite(t).all()):
        raise InputError(
            f"backbone states are NaN/inf in the batch holding text {first_item}; int8 storage needs finite "
            "states (check the backbone's --dtype: float16 models can overflow, try float32 or bfloat16)"
        )
    amax = t.abs().amax(dim=1, keepdim=True) if t.shape[0] else torch.zeros(0, 1)
    scale = torch.where(amax > 0, amax / _LEVELS, torch.ones_like(amax))
    codes = torch.round(t / scale).clamp_(-_LEVELS, _LEVELS).to(torch.int8).numpy()
    scale_bytes = scale.numpy().astype(_SCALE).view(np.int8)  # (N, 4): the float32 bits, as int8 columns
    return np.concatenate([codes, scale_bytes], axis=1)


def decode(rows: np.ndarray) -> Tensor:
    """States back from int8 rows written by :func:`encode`. Shapes: (N, D + 4) int8 -> (N, D) float32."""
    assert rows.dtype == np.int8 and rows.ndim == 2 and rows.shape[1] > SCALE_BYTES, (rows.dtype, rows.shape)
    dim = rows.shape[1] - SCALE_BYTES
    scale = np.ascontiguousarray(rows[:, dim:]).view(_SCALE).astype(np.float32)  # (N, 1)
    return torch.from_numpy(rows[:, :dim].astype(np.float32) * scale)
