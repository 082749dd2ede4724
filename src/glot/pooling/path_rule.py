"""Which GAT path a batch takes: the measured cost model behind ``TokenGNN``'s choice (issue 12 item 2).

The dense, length-bucketed path (:mod:`glot.pooling.dense_gat`) and the edge-list path of sparse products
(:mod:`glot.pooling.sparse_gat`) compute the same function; which is faster depends on the graph's density, the
layer width and the precision the layers' matmuls run in. Per layer the edge path does scalar work per GAT edge
(E' of them, self-loops included) and sparse products of E' x width elements; the dense path computes slots =
sum over buckets of b L^2 attention scores (a few elementwise passes) and one batched matmul over them, plus a
fixed cost per bucket. In units of one element of the edge path's sparse products, dense iff

    E' x (edge_fixed + width) > slots x (slot + slot_width x width) + buckets x bucket.

The constants differ by precision. Under bf16 (autocast, or a pooler cast to bf16) the dense path's batched
matmuls run in bf16 while the edge path's sparse products stay fp32 (CPU sparse kernels have no bf16, see
:func:`glot.pooling.sparse_gat.aggregate`) and pay casts on the way in and out, so the dense path wins on
sparser graphs than in fp32. benchmarks/fit_dense_rule.py refits the constants from bench_dense_gat.py runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor

if TYPE_CHECKING:
    from glot.pooling.dense_gat import DenseTokenGraph


class PathCosts(NamedTuple):
    """The cost model's constants for one precision (see the module doc for the rule)."""

    edge_fixed: float  # per GAT edge: logit, softmax, the sampled product's per-edge cost
    slot: float  # per attention slot of the dense path
    slot_width: float  # per attention slot and output channel (the batched matmul)
    bucket: float  # per length bucket: the dense path's fixed op overhead


#: fp32: fitted (benchmarks/fit_dense_rule.py) to the fp32 sweeps of three 2-core CPUs: an AVX2-only EPYC, an
#: AVX-512 Xeon (45 rows each) and a Zen 4 EPYC (73 rows): L = 64..512, tau = 0.3..0.8, P = 64/256, train and
#: no_grad. Fitted on two of them it picked within 10% of the faster path in 41 / 45, 45 / 45 and 72 / 73 rows
#: of the third, where the first rule (fitted to the AVX2 machine alone: 128, 3.84, 0.30, 2e5) did in 40, 43 and
#: 68; on a Zen 5 EPYC it was not fitted to, in 69 / 73 (the first rule: 65). For one bucket of 4,096 tokens in
#: sentences of 64 dense wins from about E' > 0.10 of the slots, at P = 64 and 256 alike; the per-bucket cost
#: keeps batches of many short buckets (tweets) on the edge list.
FP32 = PathCosts(edge_fixed=90.0, slot=0.0, slot_width=0.10, bucket=2.15e6)

#: bf16 (autocast, or weights cast to bf16): fitted to the 73-row bf16 sweeps of a Zen 4 EPYC and of a Zen 5
#: EPYC (both avx512_bf16; the Zen 5 sweep was disturbed in four rows by a concurrent test run and is not kept),
#: then checked on a second, clean Zen 5 sweep it was not fitted to: within 10% of the faster path in 71 / 73
#: rows, 0.9% slower in all than always picking the faster (the first rule: 62 / 73, 7.5%). For one bucket of
#: 4,096 tokens in sentences of 64 dense wins from about E' > 0.06 of the slots at P = 64 and 0.08 at P = 256.
BF16 = PathCosts(edge_fixed=64.0, slot=0.0, slot_width=0.10, bucket=2.15e5)

#: The constants by the dtype the GAT layers' matmuls run in; float16 shares bf16's (half-precision matmuls,
#: fp32 sparse products alike). Every fit, its scores and the checks: benchmarks/results/dense_rule_fit.md.
COSTS: dict[torch.dtype, PathCosts] = {torch.float32: FP32, torch.bfloat16: BF16, torch.float16: BF16}


def matmul_dtype(x: Tensor) -> torch.dtype:
    """The dtype the layers' matmuls run in on input ``x``: autocast's where it is on for x's device, else x's."""
    device = x.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return x.dtype


class RuleTerms(NamedTuple):
    """What the rule reads off a dense graph: GAT edges E' (self-loops included), attention slots, buckets."""

    edges: int
    slots: int
    buckets: int


def rule_terms(graph: DenseTokenGraph) -> RuleTerms:
    """E' counts GATConv's own self-loops: one per token, whatever the graph's ``self_loops``."""
    slots = sum(bucket.adj.numel() for bucket in graph.buckets)
    edges = sum(int(bucket.adj.sum()) for bucket in graph.buckets) + graph.num_nodes
    return RuleTerms(edges, slots, len(graph.buckets))


def dense_wins(terms: RuleTerms, width: int, costs: PathCosts) -> bool:
    """The rule of the module doc on precomputed terms. Plain arithmetic, so it also runs elementwise on numpy
    arrays of terms and of constants (benchmarks/fit_dense_rule.py scores a grid of constants that way)."""
    dense_cost = terms.slots * (costs.slot + costs.slot_width * width) + terms.buckets * costs.bucket
    return (terms.slots > 0) & (terms.edges * (costs.edge_fixed + width) > dense_cost)


def dense_is_faster(graph: DenseTokenGraph, width: int, dtype: torch.dtype = torch.float32) -> bool:
    """Whether the dense path is the faster for this graph, layer width (heads x channels) and matmul dtype
    (:func:`matmul_dtype`; other dtypes use the fp32 constants). Training and no_grad forwards share the
    constants: their measured ratios did not differ enough to pay for a second set."""
    return dense_wins(rule_terms(graph), width, COSTS.get(dtype, FP32))
