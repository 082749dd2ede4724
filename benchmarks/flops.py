"""Matmul FLOP floors of the GLOT head and this machine's GEMM rate (shared by the head benchmarks).

A floor is the matmul work a part must do divided by the GEMM rate measured in the same run: no implementation
of the same model on the same hardware can beat it, so figure / floor says how much is left to gain.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from common import median_time
from glot import build_token_graph
from glot.pooling.graph import bucket_width, length_buckets


def head_flops(pooler: nn.Module, x: Tensor, ptr: Tensor) -> dict[str, float]:
    """Matmul FLOPs of a GLOT head on one packed batch: ``forward`` (graph + GNN + readout, inference) and a
    train step's parts (forward + backward; the frozen states need no gradient, also where JK "cat" hands them
    to the readout). The GNN counts the edge-list
    aggregation 2 E' P, the work the graph requires, whichever path runs. Shapes: x (N, D), ptr (B + 1,)."""
    n, d, cfg = x.shape[0], x.shape[1], pooler.config
    edges = build_token_graph(x, ptr, cfg.graph).edge_index
    e_gat = int((edges[0] != edges[1]).sum()) + n  # GATConv's own self-loops
    gnn_fwd = gnn = 0.0
    for k, conv in enumerate(pooler.gnn.convs):
        width = conv.heads * conv.out_channels
        lin, agg = 2 * n * conv.lin.in_channels * width, 2 * e_gat * width
        gnn_fwd += lin + agg
        gnn += lin * (2 if k == 0 else 3) + 3 * agg  # layer 1's input (the states) needs no gradient
    proj = pooler.readout.proj
    readout_fwd = 2 * n * proj.in_features * proj.out_features
    # backward: W's gradient, and the input gradient of the GNN's columns only (JK "cat" passes the frozen
    # states through as u's first D columns, and they need none)
    frozen = d if cfg.gnn.jk == "cat" else 0
    readout = 2 * readout_fwd + 2 * n * (proj.in_features - frozen) * proj.out_features
    lengths = ptr[1:] - ptr[:-1]
    slots = sum(len(g) * bucket_width(int(lengths[g[0]])) ** 2 for g in length_buckets(lengths, 1 << 24))
    graph = 2 * slots * d
    return {"graph": graph, "gnn": gnn, "readout": readout, "optimizer": 0.0, "edges_gat": e_gat,
            "step": graph + gnn + readout, "forward": graph + gnn_fwd + readout_fwd}  # fmt: skip


def gemm_rate(
    dtype: torch.dtype,
    repeats: int,
    clock: str,
    device: Any = "cpu",
    shape: tuple[int, int, int] = (4096, 384, 256),
    sync: Any = None,
) -> float:
    """GFLOP/s of an (n, k) @ (k, m) product in ``dtype`` on ``device`` (on the run's clock;
    ``sync`` e.g. ``torch.cuda.synchronize``); ``shape`` = (n, k, m)."""
    n, k, m = shape
    a = torch.randn(n, k, device=device).to(dtype)
    b = torch.randn(k, m, device=device).to(dtype)
    t = median_time(lambda: a @ b, repeats=repeats, warmup=2, sync=sync, clock=clock)["median_s"]
    return 2 * n * k * m / t / 1e9
