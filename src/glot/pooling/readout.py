"""Readouts on packed tokens: the learned attention readout (GLOT step 3, AdaPool's scorer) and simple ones.

Attention readout (Mantri et al., ICLR 2026, Sec. 3.3): m_i = v^T tanh(W u_i + b), pi = softmax of m over the
tokens of each sentence, z = sum_i pi_i u_i. The segment softmax is PyG's; the sums are ``index_add_``. The
scores are computed in the equal form 2 v^T sigmoid(2 (W u_i + b)), shifted by a constant that the softmax
drops (:meth:`AttentionReadout.scores`).

Initialisation (beyond the paper): ``v`` starts at zero, so every score is 0 and pi is uniform: a learned pooler
starts exactly where mean pooling of its token states is, and training moves it away only where that helps
(on small data a randomly initialised scorer starts from an arbitrary weighting and needs epochs to undo it).
W still gets its usual random init, and v's gradient is nonzero from the first step.

The score layer ``v`` has no bias: a scalar c added to every score cancels in the softmax
(softmax(m + c) = softmax(m)), so it never changes an output and its gradient is exactly zero. Checkpoints
written before it was dropped carry a ``score.bias`` key: the module drops it on load (every load path,
``load_state_dict`` included), so they load and compute the same outputs (up to float rounding).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter, softmax

from glot.pooling.packing import ptr_to_batch


def default_readout_hidden(in_dim: int) -> int:
    """Width of W in the reference code: max(128, in_dim // 2)."""
    return max(128, in_dim // 2)


class AttentionReadout(nn.Module):
    """Learned attention pooling. Shapes: u (N, F), ptr (B + 1,) -> z (B, F); weights (N,).

    ``u`` may come as column blocks (a list of (N, F_j) tensors, F = sum F_j, as
    :func:`glot.pooling.gnn.jumping_knowledge` gives them): each block meets its own slice of W, so u is never
    concatenated and a block that needs no gradient (the frozen states) gets no input gradient. The outputs are
    those of the concatenated u up to float rounding.
    """

    def __init__(self, in_dim: int, hidden: int | None = None) -> None:
        super().__init__()
        self.hidden = hidden if hidden is not None else default_readout_hidden(in_dim)
        self.proj = nn.Linear(in_dim, self.hidden)
        self.score = nn.Linear(self.hidden, 1, bias=False)  # a bias would cancel in the softmax
        nn.init.zeros_(self.score.weight)  # every score 0: uniform weights, the pooler starts as mean pooling

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        if self.score.bias is None:  # older checkpoints carry the dead bias (see module doc): drop it
            state_dict.pop(prefix + "score.bias", None)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def weights(self, u: Tensor | Sequence[Tensor], ptr: Tensor) -> Tensor:
        """Per-token readout weights pi, summing to 1 within each sentence. Shapes: (N, F) -> (N,)."""
        blocks = [u] if isinstance(u, Tensor) else list(u)
        return softmax(self.scores(blocks), ptr=ptr).to(
            reduce(torch.promote_types, (b.dtype for b in blocks))
        )

    def scores(self, blocks: list[Tensor]) -> Tensor:
        """The scores m_i up to one constant, in at least fp32 (also under bf16 autocast, see
        glot.training.precision). Shapes: blocks (N, F_j) -> (N,).

        tanh(y) = 2 sigmoid(2y) - 1, so m = v^T tanh(y) = 2 v^T sigmoid(2y) - sum(v), and the constant cancels in
        the softmax (and in v's gradient: a sentence's score gradients sum to zero). torch's CPU tanh is slow: the
        tanh form took 3x the sigmoid form's time in fp32 and 2x in bf16 (4.4 vs 1.4 ms and 2.8 vs 1.5 ms for
        4,113 x 448 values; benchmarks/bench_kernels.py), so the sigmoid form is what runs. It runs in fp32 on the
        projection y (bf16 under autocast: the GEMM's output is then the only bf16 rounding), and so does the
        score product.
        """
        y = self._project(blocks)
        s = torch.sigmoid(y.to(torch.promote_types(y.dtype, torch.float32)) * 2)
        with torch.autocast(s.device.type, enabled=False):
            return nn.functional.linear(s, self.score.weight.to(s.dtype)).squeeze(-1) * 2

    def _project(self, blocks: list[Tensor]) -> Tensor:
        """W u + b from u's column blocks: one GEMM per block, each accumulated into the last (addmm)."""
        if len(blocks) == 1:
            return self.proj(blocks[0])
        w, edges = self.proj.weight, [0]
        for block in blocks:
            edges.append(edges[-1] + block.shape[-1])
        assert edges[-1] == w.shape[1], f"blocks of {edges[-1]} columns for a readout of width {w.shape[1]}"
        out = nn.functional.linear(blocks[-1], w[:, edges[-2] :], self.proj.bias)
        for j in range(len(blocks) - 1):
            out = torch.addmm(out, blocks[j], w[:, edges[j] : edges[j + 1]].t())
        return out

    def forward(self, u: Tensor | Sequence[Tensor], ptr: Tensor) -> Tensor:
        blocks = [u] if isinstance(u, Tensor) else list(u)
        pi = self.weights(blocks, ptr)[:, None]
        # each block in pi's dtype first, so that no kernel mixes dtypes (tests/test_precision.py checks it): for
        # this product the mixed form measured no slower than the cast (bench_kernels.py), for others it was 2x
        pooled = [segment_sum(block.to(pi.dtype) * pi, ptr) for block in blocks]
        return pooled[0] if len(pooled) == 1 else torch.cat(pooled, dim=-1)


def segment_sum(x: Tensor, ptr: Tensor) -> Tensor:
    """Shapes: x (N, F), ptr (B + 1,) -> (B, F).

    ``index_add_`` rather than a scatter: its backward is one row ``index_select``, which stays fast on the
    strided column slices in which the pooled blocks' gradients arrive (a scatter's backward, a gather, slowed
    the bf16 readout step by ~15% there; benchmarks/bench_step.py)."""
    return x.new_zeros(ptr.numel() - 1, x.shape[1]).index_add_(0, ptr_to_batch(ptr), x)


def mean_readout(x: Tensor, ptr: Tensor) -> Tensor:
    """Mean over each sentence's real tokens. Shapes: (N, F), (B + 1,) -> (B, F)."""
    return scatter(x, ptr_to_batch(ptr), dim=0, dim_size=ptr.numel() - 1, reduce="mean")


def max_readout(x: Tensor, ptr: Tensor) -> Tensor:
    """Element-wise max over each sentence's real tokens. Shapes: (N, F), (B + 1,) -> (B, F)."""
    return scatter(x, ptr_to_batch(ptr), dim=0, dim_size=ptr.numel() - 1, reduce="max")


def first_token(x: Tensor, ptr: Tensor) -> Tensor:
    """CLS pooling: each sentence's first real token. Shapes: (N, F), (B + 1,) -> (B, F)."""
    return x[ptr[:-1]]


def last_token(x: Tensor, ptr: Tensor) -> Tensor:
    """EOS pooling: each sentence's last real token (left or right padding alike, packing removed it)."""
    return x[ptr[1:] - 1]
