"""Packed token batches: the one representation tokens travel in through glot.

A packed batch stores the real tokens of B sentences back to back, ``x`` of shape (N, D), with ``ptr`` of
shape (B + 1,) such that sentence ``b`` owns rows ``ptr[b]:ptr[b + 1]``. Padding never exists in packed form.
This is the layout PyG uses for mini-batches of graphs; see DESIGN.md ("tokens stay packed").
"""

from __future__ import annotations

import torch
from torch import Tensor

from glot.errors import InputError


def check_padded(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    """Validate padded input and return the mask as bool (True = real token).

    A non-bool mask must hold only 0 and 1: an HF-style additive mask (0 keep, -1e4 pad) would otherwise turn
    every padding slot into a real token and every real token into padding.

    Shapes: hidden (B, L, D), attention_mask (B, L) -> (B, L) bool.
    """
    if not isinstance(hidden, Tensor) or hidden.dim() != 3:
        shape = tuple(hidden.shape) if isinstance(hidden, Tensor) else type(hidden).__name__
        raise InputError(
            f"hidden must be a (B, L, D) tensor, got {shape}; pass last_hidden_state of the backbone"
        )
    if not isinstance(attention_mask, Tensor) or tuple(attention_mask.shape) != tuple(hidden.shape[:2]):
        got = (
            tuple(attention_mask.shape)
            if isinstance(attention_mask, Tensor)
            else type(attention_mask).__name__
        )
        raise InputError(
            f"attention_mask must be (B, L) = {tuple(hidden.shape[:2])} to match hidden, got {got}"
        )
    if attention_mask.dtype != torch.bool and bool(((attention_mask != 0) & (attention_mask != 1)).any()):
        seen = torch.unique(attention_mask.detach().flatten()[:100_000]).tolist()[:6]
        raise InputError(
            f"attention_mask ({attention_mask.dtype}) holds values {seen}, not only 0/1; pass a boolean mask, "
            "True = real token (an additive mask, 0 keep / -1e4 pad, converts with mask == 0)"
        )
    mask = attention_mask.bool()
    if hidden.shape[0] > 0 and bool((mask.sum(dim=1) == 0).any()):
        empty = torch.nonzero(mask.sum(dim=1) == 0).flatten().tolist()
        raise InputError(
            f"sentences {empty} have no real token (attention_mask all zero); every sentence needs >= 1 token"
        )
    return mask


def pack(hidden: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Drop padding: padded states -> packed states. Works for left and right padding alike.

    Shapes: hidden (B, L, D), attention_mask (B, L) -> x (N, D), ptr (B + 1,) with N = attention_mask.sum().
    """
    mask = check_padded(hidden, attention_mask)
    rows = mask.reshape(-1).nonzero().squeeze(1)  # row-major: sentence by sentence, tokens in their order
    x = hidden.reshape(-1, hidden.shape[-1]).index_select(0, rows)  # = hidden[mask], ~3x faster on a CPU
    return x, lengths_to_ptr(mask.sum(dim=1))


def lengths_to_ptr(lengths: Tensor) -> Tensor:
    """Shapes: lengths (B,) -> ptr (B + 1,) int64."""
    ptr = torch.zeros(lengths.numel() + 1, dtype=torch.long, device=lengths.device)
    ptr[1:] = torch.cumsum(lengths.long(), dim=0)
    return ptr


def check_packed(x: Tensor, ptr: Tensor) -> None:
    """Validate a packed batch. Shapes: x (N, D), ptr (B + 1,)."""
    if not isinstance(x, Tensor) or x.dim() != 2:
        raise InputError(f"x must be a packed (N, D) tensor, got {tuple(getattr(x, 'shape', ()))}")
    if not isinstance(ptr, Tensor) or ptr.dim() != 1 or ptr.numel() < 1:
        raise InputError(
            f"ptr must be a 1-D (B + 1,) tensor of offsets, got {tuple(getattr(ptr, 'shape', ()))}"
        )
    if int(ptr[0]) != 0 or int(ptr[-1]) != x.shape[0]:
        raise InputError(
            f"ptr must start at 0 and end at N = x.shape[0] = {x.shape[0]}, got ptr[0]={int(ptr[0])}, "
            f"ptr[-1]={int(ptr[-1])}"
        )
    lengths = ptr[1:] - ptr[:-1]
    if bool((lengths <= 0).any()):
        bad = torch.nonzero(lengths <= 0).flatten().tolist()
        raise InputError(
            f"sentences {bad} have no token (ptr not strictly increasing); each needs >= 1 token"
        )


def ptr_to_batch(ptr: Tensor) -> Tensor:
    """Sentence id of every packed token. Shapes: ptr (B + 1,) -> batch (N,) int64."""
    lengths = ptr[1:] - ptr[:-1]
    return torch.repeat_interleave(torch.arange(lengths.numel(), device=ptr.device), lengths)


def unpack(x: Tensor, ptr: Tensor, pad_value: float = 0.0) -> tuple[Tensor, Tensor]:
    """Packed -> right-padded. Shapes: x (N, D), ptr (B + 1,) -> hidden (B, L_max, D), mask (B, L_max)."""
    lengths = ptr[1:] - ptr[:-1]
    bsz, lmax = lengths.numel(), int(lengths.max()) if lengths.numel() else 0
    mask = torch.arange(lmax, device=x.device)[None, :] < lengths[:, None]
    hidden = x.new_full((bsz, lmax, x.shape[-1]), pad_value)
    hidden[mask] = x
    return hidden, mask


def padded_count(n: int) -> int:
    """``n`` tokens rounded up to one of 16 sizes per octave (a multiple of 2^(bits - 5); below 32 itself), so
    that under 6.25% is added and a run's batches share a few token counts (see :func:`pad_singletons`)."""
    step = max(int(n).bit_length() - 5, 0)
    return -(-int(n) >> step) << step


def pad_singletons(x: Tensor, ptr: Tensor) -> tuple[Tensor, Tensor]:
    """The batch with zero-state one-token sentences appended up to :func:`padded_count` tokens.

    Every per-token matmul's M dimension is the token count; CPU bf16 matmuls (oneDNN) set up kernels per new
    shape, which made a train step on a batch of a new count 1.2-1.4x (GLOT) and 1.5-1.7x (AdaPool) one seen
    before (benchmarks/bench_shapes.py). Rounding the count lets a run reuse a few shapes. The added sentences are
    one token each, so no real token shares a sentence, a graph edge or a softmax with them; the caller drops
    their outputs (the rows past the real B). Shapes: x (N, D), ptr (B + 1,) -> (N', D), (B + N' - N + 1,).
    """
    n = x.shape[0]
    extra = padded_count(n) - n
    if extra == 0:
        return x, ptr
    tail = torch.arange(1, extra + 1, device=ptr.device, dtype=ptr.dtype) + ptr[-1]
    return torch.cat([x, x.new_zeros(extra, x.shape[1])]), torch.cat([ptr, tail])
