"""Closeness of two computations of the same function, measured tensor by tensor."""

from __future__ import annotations

import torch


def assert_close_normwise(actual: torch.Tensor, expected: torch.Tensor, tol: float) -> None:
    """max |actual - expected| <= tol + tol * max |expected|, per tensor: ``torch.testing.assert_close``'s
    rule (atol = rtol = tol) with each entry's own size replaced by the tensor's largest.

    The measure for outputs that are sums with cancellation, as gradients are: an entry can be far smaller than
    the terms it sums, so float rounding alone can move it by more than an elementwise relative tolerance, and
    which entries it does depends on the CPU's kernels (AVX2 vs AVX-512 reductions) and the thread count.
    """
    assert actual.shape == expected.shape, f"shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    assert actual.dtype == expected.dtype, f"dtype {actual.dtype} != {expected.dtype}"
    if expected.numel() == 0:
        return
    scale = float(expected.abs().max())
    error = float((actual - expected).abs().max())
    assert error <= tol * (1.0 + scale), (
        f"max abs difference {error:.3g} exceeds {tol:g} x (1 + the largest value {scale:.3g})"
    )
