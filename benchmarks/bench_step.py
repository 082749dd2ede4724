"""Where a GLOT train step's time goes -- graph, GNN, readout, optimizer -- old path vs new path (issue 12).

Run: ``python benchmarks/bench_step.py [--quick] [--train-epochs 10]``.

``old`` = the graph built per batch (``build_token_graph``), PyG's own edge-list GATConv (per-edge messages) and
the readout on the concatenated u (0.5's path: backward then computes an input gradient for all of u, the frozen
states included); ``new`` = the batch's graph assembled from graphs built once for the cache
(:mod:`glot.pooling.graph_cache`), the GAT path picked by the measured rule
(:func:`glot.pooling.path_rule.dense_is_faster`: dense, or the edge list by sparse products,
:mod:`glot.pooling.sparse_gat`) and the readout on u's column blocks (:func:`glot.pooling.gnn.jumping_knowledge`: no input gradient for the frozen states). Both
share the weights and run interleaved.
Cases: ``demo`` = a B = 32 batch of the demo's own states (MiniLM over the stress test at ratio 0.9, the
``glot compare`` defaults; its cache is reused when present), head K = 4, P = 64, tau = 0.6; ``tweets`` = the
first 128 tweets (MiniLM), GLOT defaults K = 2, P = 256, tau = 0.8. Parts: graph (build, or assemble + dense
masks), GNN (K layers, forward + backward), readout + head + loss (forward + backward), optimizer (Adam step),
and the whole step; AdaPool's step on the same batch for scale. Beside each figure its matmul FLOP floor at the
fp32 GEMM rate measured in the run (the GNN's floor counts the edge-list aggregation 2 E' P, the work the
graph requires, whichever path runs). ``--train-epochs N`` also trains AdaPool, GLOT-old and GLOT-new on the
demo's cache with the demo's settings (lr 1e-2, batch 32) for N epochs in one process, side by side.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import glot.pooling.sparse_gat as sparse_gat
from common import add_common_arguments, apply_quick, apply_threads, compare_times, machine_info
from flops import gemm_rate
from flops import head_flops as flops
from glot import build_pooler, build_token_graph
from glot.pooling.base import ReadoutPooler
from glot.pooling.dense_gat import dense_from_edges
from glot.pooling.gnn import join_blocks
from glot.pooling.graph_cache import SentenceGraphs
from glot.pooling.path_rule import dense_is_faster
from glot.training.precision import autocast, resolve_head_dtype
from report import args_json, command_line, fmt_ms, header, md_table, write_results

DEMO = {"tau": 0.6, "num_layers": 4, "hidden_dim": 64}
TWEETS = {"tau": 0.8}
PARTS = ("graph", "gnn", "readout", "optimizer", "step")
AUTO_DTYPE = resolve_head_dtype("auto")  # what glot trains with on this CPU


def demo_cache(n_train: int) -> Any:
    """The demo's cache: MiniLM over the stress test at ratio 0.9 (``glot compare`` defaults)."""
    from glot.backbones.frozen import FrozenBackbone
    from glot.cache.task import cache_task
    from glot.data import get_task

    task = get_task("stress", distractor_ratio=0.9, seed=0, n_train=n_train, n_eval=500)
    backbone = FrozenBackbone.from_pretrained("minilm", max_length=task.max_length)
    return cache_task(task, backbone, progress=False)


class MemStore:
    """One batch as a state store (``lengths``, ``packed(ids)``) so its graphs can be built once."""

    def __init__(self, x: Tensor, ptr: Tensor) -> None:
        self.x, self.ptr, self.lengths = x, ptr, (ptr[1:] - ptr[:-1]).numpy()

    def packed(self, ids: np.ndarray) -> tuple[Tensor, Tensor]:
        rows = [self.x[int(self.ptr[i]) : int(self.ptr[i + 1])] for i in ids]
        lengths = torch.from_numpy(self.lengths[np.asarray(ids)])
        return torch.cat(rows), torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])


def contenders(pooler: nn.Module, x: Tensor, ptr: Tensor) -> dict[str, Callable[[], Any]]:
    """Zero-argument callables: each part, old and new, and the whole step of each (and AdaPool's)."""
    cfg = pooler.config.graph
    ids = np.arange(ptr.numel() - 1)
    graphs = SentenceGraphs.build(MemStore(x, ptr).packed, MemStore(x, ptr).lengths, cfg)
    old, new = copy.deepcopy(pooler), copy.deepcopy(pooler)
    old.gnn.dense_choice = "edge"
    old.token_blocks = _concatenated(old.token_blocks)  # type: ignore[method-assign]
    edges = build_token_graph(x, ptr, cfg)
    dense = dense_from_edges(edges, ptr, x.shape[0])
    width = pooler.gnn.convs[0].heads * pooler.gnn.convs[0].out_channels
    use_dense = new.gnn.prefers_dense(ptr) and dense_is_faster(dense, width)  # the fp32 parts' rule

    def new_graph() -> Any:
        batch = graphs.batch(ids, ptr)
        return dense_from_edges(batch.edges, ptr, x.shape[0]) if use_dense else batch

    u0 = new.gnn(x, edges.edge_index).detach()
    weights = torch.randn(u0.shape, generator=torch.Generator().manual_seed(2))
    labels = torch.arange(ptr.numel() - 1) % 3

    @_pyg_gat
    def gnn_old() -> None:
        (old.gnn(x, edges.edge_index, edges.edge_weight) * weights).sum().backward()

    def gnn_new() -> None:
        u = (
            new.gnn(x, dense=dense._replace(memo={}))
            if use_dense
            else new.gnn(x, edges.edge_index, edges.edge_weight)
        )
        (u * weights).sum().backward()

    fns: dict[str, Callable[[], Any]] = {
        "graph old": lambda: build_token_graph(x, ptr, cfg),
        "graph new": new_graph,
        "gnn old": gnn_old,
        "gnn new": gnn_new,
        "readout old": _readout_step(pooler, [u0.clone().requires_grad_()], ptr, labels),
        "readout new": _readout_step(pooler, [x, u0[:, x.shape[1] :].clone().requires_grad_()], ptr, labels),
        "optimizer": _optimizer_step(pooler),
        "step old": _pyg_gat(_train_step(old, x, ptr, labels, lambda: None)),
        "step new": _train_step(new, x, ptr, labels, lambda: graphs.batch(ids, ptr)),
    }
    if AUTO_DTYPE != "fp32":  # the new path at the precision glot trains with here (head_dtype="auto")
        for version in ("old", "new"):
            fns[f"readout {version} {AUTO_DTYPE}"] = _with_autocast(fns[f"readout {version}"], AUTO_DTYPE)
        fns[f"step new {AUTO_DTYPE}"] = _train_step(
            copy.deepcopy(new), x, ptr, labels, lambda: graphs.batch(ids, ptr), AUTO_DTYPE
        )
        torch.manual_seed(0)
        ada = build_pooler("adapool", x.shape[1])
        fns[f"step adapool {AUTO_DTYPE}"] = _train_step(ada, x, ptr, labels, lambda: None, AUTO_DTYPE)
    torch.manual_seed(0)
    fns["step adapool"] = _train_step(build_pooler("adapool", x.shape[1]), x, ptr, labels, lambda: None)
    fns["_dense"] = lambda: use_dense
    return fns


def _pyg_gat(fn: Callable[[], None]) -> Callable[[], None]:
    """``fn`` with GAT layers on an edge list running PyG's own GATConv.forward (the old path's messages)."""

    def run() -> None:
        sparse_gat.ENABLED = False
        try:
            fn()
        finally:
            sparse_gat.ENABLED = True

    return run


def _concatenated(token_blocks: Callable[..., list[Tensor]]) -> Callable[..., list[Tensor]]:
    """The old readout input: u concatenated (it then needs a gradient as a whole), not in blocks; wraps a
    pooler's bound ``token_blocks`` or the class's own function alike."""
    return lambda *args, **kwargs: [join_blocks(token_blocks(*args, **kwargs))]


def _readout_step(pooler: nn.Module, u: list[Tensor], ptr: Tensor, labels: Tensor) -> Callable[[], None]:
    """Readout + head + loss, forward + backward, on u given as one tensor (old) or in blocks (new)."""
    readout, head = copy.deepcopy(pooler.readout), nn.Linear(sum(b.shape[1] for b in u), 3)
    return lambda: F.cross_entropy(head(readout(u, ptr)), labels).backward()


def _with_autocast(fn: Callable[[], None], dtype: str) -> Callable[[], None]:
    def run() -> None:
        with autocast(dtype):
            fn()

    return run


def _optimizer_step(pooler: nn.Module) -> Callable[[], None]:
    model = copy.deepcopy(pooler)
    params = [*model.parameters(), *nn.Linear(model.out_dim, 3).parameters()]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    opt = torch.optim.Adam(params, lr=1e-4)
    return opt.step


def _train_step(
    pooler: nn.Module,
    x: Tensor,
    ptr: Tensor,
    labels: Tensor,
    graph: Callable[[], Any],
    dtype: str = "fp32",
) -> Callable[[], None]:
    """One step as glot's loop runs it: the pooler (under ``dtype``'s autocast), an fp32 head, loss, Adam."""
    torch.manual_seed(1)
    head = nn.Linear(pooler.out_dim, 3)
    opt = torch.optim.Adam([*pooler.parameters(), *head.parameters()], lr=1e-4)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast(dtype):
            z = pooler.forward_packed(x, ptr, graph=graph())
        F.cross_entropy(head(z.float()), labels).backward()
        opt.step()

    return step


def run_case(
    name: str, options: dict[str, Any], x: Tensor, ptr: Tensor, rate: float, args: Any
) -> dict[str, Any]:
    torch.manual_seed(0)
    pooler = build_pooler("glot", x.shape[1], **options)
    fns = contenders(pooler, x, ptr)
    use_dense = fns.pop("_dense")()
    with torch.no_grad():
        batch = SentenceGraphs.build(MemStore(x, ptr).packed, MemStore(x, ptr).lengths, pooler.config.graph)
        got = pooler.forward_packed(x, ptr, graph=batch.batch(np.arange(ptr.numel() - 1), ptr))
        pooler.gnn.dense_choice = "edge"
        torch.testing.assert_close(got, pooler.forward_packed(x, ptr), rtol=1e-4, atol=1e-4)
    times = compare_times(fns, repeats=args.repeats, warmup=args.warmup, clock=args.clock)
    fl = flops(pooler, x, ptr)
    row = {"case": name, "B": ptr.numel() - 1, "N": x.shape[0], **options, "new_gat_path": "dense" if use_dense
           else "edge", "flops": fl, "gemm_gflops_fp32": rate, "times": times}  # fmt: skip
    print(f"{name}: " + ", ".join(f"{k} {fmt_ms(v)}" for k, v in times.items()), flush=True)
    return row


def train_side_by_side(epochs: int, n_train: int, out: Path) -> dict[str, Any]:
    """AdaPool, GLOT-old, GLOT-new trained on the demo's cache with the demo's settings, one after another."""
    import glot.pooling.dense_gat as dense_gat
    import glot.pooling.graph_cache as graph_cache
    from glot.training.loop import TrainConfig, fit

    cached, res = demo_cache(n_train), {}
    runs = (
        ("adapool", "adapool", True, 512),
        ("glot old", "glot", False, 0),
        ("glot new", "glot", True, 512),
    )
    blocks = ReadoutPooler.token_blocks
    try:
        for label, pooler, enabled, limit in runs:
            graph_cache.ENABLED, dense_gat.DENSE_MAX_TOKENS = enabled, limit
            sparse_gat.ENABLED = enabled
            old = label == "glot old"  # 0.5's path also read out the concatenated u
            ReadoutPooler.token_blocks = _concatenated(blocks) if old else blocks  # type: ignore[method-assign]
            options = DEMO if pooler == "glot" else {}
            config = TrainConfig(pooler=pooler, lr=1e-2, epochs=epochs, batch_size=32, pooler_options=options)
            t0 = time.perf_counter()
            metrics = fit(cached, config, out / label.replace(" ", "-"), progress=False, overwrite=True)
            res[label] = {"seconds": time.perf_counter() - t0, "eval": metrics.get("eval")}
            print(f"train {label}: {res[label]['seconds']:.1f} s, eval {res[label]['eval']}", flush=True)
    finally:
        graph_cache.ENABLED, dense_gat.DENSE_MAX_TOKENS, sparse_gat.ENABLED = True, 512, True
        ReadoutPooler.token_blocks = blocks  # type: ignore[method-assign]
    return res


def _cell(times: dict[str, Any], key: str, flop: float, rate: float) -> str:
    ms = times[key]["median_s"] * 1e3
    return f"{ms:.1f} (floor {1e3 * flop / 1e9 / rate:.1f})" if flop else f"{ms:.1f}"


def markdown(
    rows: list[dict[str, Any]], train: dict[str, Any], info: dict[str, Any], cmd: str, args: Any
) -> str:
    text = header("Where a GLOT train step's time goes: old path vs new path", cmd, info, args)
    text += (
        f"Medians over {args.repeats} interleaved "
        "repeats, ms; in brackets the part's matmul FLOP floor at the fp32 GEMM rate measured in this run. "
        "old = graph built per batch + PyG's edge-list GATConv (per-edge messages) + readout on the "
        "concatenated u (0.5); new = graph assembled from graphs built once for the cache + the GAT path the "
        "measured rule picks (dense, or edge = the edge list by sparse products) + readout on "
        "u's column blocks (no input gradient for the frozen states). readout = readout + head + loss, "
        "forward + backward; "
        "optimizer = one Adam step over the pooler + head. Parts are timed alone, so they need not add up to "
        "the step exactly.\n\n"
    )
    cols = ["case", "B", "N", "E'", "K", "P", "tau", "new GAT path", "part", "old ms", "new ms", "old/new"]
    table = []
    for r in rows:
        t, fl, rate = r["times"], r["flops"], r["gemm_gflops_fp32"]
        for part in PARTS:
            o, n = (part, part) if part == "optimizer" else (f"{part} old", f"{part} new")
            new_floor = 0.0 if part == "graph" else fl[part] - (fl["graph"] if part == "step" else 0.0)
            table.append([r["case"], r["B"], r["N"], fl["edges_gat"], r.get("num_layers", 2), r.get("hidden_dim", 256),
                          r["tau"], r["new_gat_path"], part, _cell(t, o, fl[part], rate), _cell(t, n, new_floor, rate),
                          f"{t[o]['median_s'] / t[n]['median_s']:.2f}x"])  # fmt: skip
        ada = t["step adapool"]["median_s"]
        table.append([r["case"], r["B"], r["N"], "", "", "", "", "", "AdaPool step (ratio: GLOT / AdaPool)",
                      f"{t['step old']['median_s'] / ada:.1f}x", f"{t['step new']['median_s'] / ada:.1f}x",
                      f"{ada * 1e3:.1f} ms"])  # fmt: skip
        low = f"step new {AUTO_DTYPE}"
        if low in t:  # the new path at the auto dtype, against its floor at that dtype's GEMM rate
            step_floor = fl["step"] - fl["graph"]
            table.append([r["case"], r["B"], r["N"], "", "", "", "", "", f"step, new path: fp32 vs {AUTO_DTYPE} autocast",
                          _cell(t, "step new", step_floor, rate), _cell(t, low, step_floor, info[f"gemm_gflops_{AUTO_DTYPE}"]),
                          f"{t['step new']['median_s'] / t[low]['median_s']:.2f}x"])  # fmt: skip
            ro, rn, ro_floor = f"readout old {AUTO_DTYPE}", f"readout new {AUTO_DTYPE}", fl["readout"]
            table.append([r["case"], r["B"], r["N"], "", "", "", "", "", f"readout at {AUTO_DTYPE}: old vs new",
                          _cell(t, ro, ro_floor, info[f"gemm_gflops_{AUTO_DTYPE}"]),
                          _cell(t, rn, ro_floor, info[f"gemm_gflops_{AUTO_DTYPE}"]),
                          f"{t[ro]['median_s'] / t[rn]['median_s']:.2f}x"])  # fmt: skip
            ada_low = t[f"step adapool {AUTO_DTYPE}"]["median_s"]
            table.append([r["case"], r["B"], r["N"], "", "", "", "", "", f"AdaPool step at {AUTO_DTYPE} (ratio: GLOT / AdaPool)",
                          "", f"{t[low]['median_s'] / ada_low:.1f}x", f"{ada_low * 1e3:.1f} ms"])  # fmt: skip
    text += md_table(cols, table)
    text += f"\nfp32 GEMM rate (4096 x 384 x 256): {rows[0]['gemm_gflops_fp32']:.0f} GFLOP/s; bf16: "
    text += f"{info['gemm_gflops_bf16']:.0f} GFLOP/s. " + (
        f"Every row is fp32 except the `{AUTO_DTYPE}` rows, which run the pooler under the autocast "
        f'`head_dtype="auto"` picks on this CPU ({AUTO_DTYPE}; floor at the {AUTO_DTYPE} rate).\n'
        if AUTO_DTYPE != "fp32"
        else '`head_dtype="auto"` picks fp32 on this CPU (no native bf16), so every row is fp32.\n'
    )
    if train:
        ada = train["adapool"]["seconds"]
        text += (
            f"\n### Demo training side by side ({args.train_epochs} epochs, n_train {args.n_train}, lr 1e-2, "
            "batch 32, one seed; wall seconds of `fit`, validation and eval predictions included)\n\n"
        )
        text += md_table(
            ["pooler", "train s", "x AdaPool", "eval accuracy"],
            [[k, f"{v['seconds']:.1f}", f"{v['seconds'] / ada:.2f}x", v["eval"]] for k, v in train.items()],
        )
    text += "\nGPU figures: unmeasured (no GPU in this session; run `bash benchmarks/gpu_check.sh` on one).\n"
    return text


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--n-train", type=int, default=2000, help="stress-test train size (demo default 2000)"
    )
    parser.add_argument(
        "--train-epochs", type=int, default=0, help="also train demo-style for N epochs (0: off)"
    )
    args = parser.parse_args(argv)
    apply_quick(args, argv, repeats=2, warmup=1, n_train=200)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run both cases (and the optional training); write benchmarks/results/step.{json,md}."""
    import tempfile

    from bench_dense_gat import tweet_states

    args = parse_args(argv)
    apply_threads(args)
    info = machine_info()
    rate = gemm_rate(torch.float32, max(7, args.repeats), args.clock)
    info["gemm_gflops_bf16"] = gemm_rate(torch.bfloat16, max(7, args.repeats), args.clock)
    cached = demo_cache(args.n_train)
    rows_ = cached.ids["train"]["texts"][
        np.random.default_rng(0).permutation(len(cached.ids["train"]["texts"]))[:32]
    ]
    rows = [run_case("demo", DEMO, *cached.states.packed(rows_), rate, args)]
    rows.append(run_case("tweets", TWEETS, *tweet_states(128), rate, args))
    train = {}
    if args.train_epochs:
        with tempfile.TemporaryDirectory() as tmp:
            train = train_side_by_side(args.train_epochs, args.n_train, Path(tmp))
    text = markdown(rows, train, info, command_line("bench_step.py", argv), args)
    print(text)
    if not args.no_write:
        write_results(
            "step", {"machine": info, "args": args_json(args), "results": rows, "train": train}, text, args
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
