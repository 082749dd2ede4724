"""What a batch whose token count the process has not seen before costs, per head dtype (issue 12).

Run: ``python benchmarks/bench_shapes.py [--quick]``.

A packed batch's token count N is the M dimension of every per-token matmul; over a run it changes from batch
to batch. oneDNN builds a matmul primitive per shape (for bf16 it generates kernels), and keeps them in a
cache. This times one train step (pooler under glot's autocast, Linear head, cross-entropy, backward, Adam) on a
batch of 32 random-length sentences (60-128 tokens, random states) whose N is NEW to the process, against the
same step on one of three batches seen before (``repeat``), interleaved pair by pair. Poolers: GLOT with the
demo's head (K = 4, P = 64, tau = 0.6) and AdaPool; each at fp32 and, where the CPU runs it natively, bf16.
Each bf16 pooler is timed twice: through ``forward_packed`` under autocast (the batch as it comes), and through
``glot.training.precision.pool``, the entry training and encoding use, which rounds N up to one of 16 sizes per
octave with one-token sentences (``glot.pooling.packing.pad_singletons``), so new batches mostly hit shapes
already set up.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from common import add_common_arguments, apply_quick, apply_threads, machine_info, summarize
from glot import build_pooler
from glot.pooling.packing import lengths_to_ptr
from glot.training.precision import autocast, native_bf16, pool
from report import args_json, check_out, command_line, fmt_ms, header, md_table, write_results

HEADS = {"glot": {"tau": 0.6, "num_layers": 4, "hidden_dim": 64}, "adapool": {}}
ENTRIES = {False: "forward_packed (unpadded)", True: "precision.pool (token count rounded up)"}


def make_batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """32 sentences of 60-128 tokens of random states. Shapes: -> x (N, 384), ptr (33,)."""
    rng = random.Random(seed)
    lengths = torch.tensor([rng.randint(60, 128) for _ in range(32)])
    x = torch.randn(int(lengths.sum()), 384, generator=torch.Generator().manual_seed(seed))
    return x, lengths_to_ptr(lengths)


def run(name: str, dtype: str, repeats: int, padded: bool) -> dict[str, Any]:
    """Median step times on new-N and seen-N batches, alternating (a fresh pooler per contender pair)."""
    torch.manual_seed(0)
    pooler = build_pooler(name, 384, **HEADS[name])
    head = torch.nn.Linear(pooler.out_dim, 2)
    opt = torch.optim.Adam([*pooler.parameters(), *head.parameters()], lr=1e-3)
    labels = torch.zeros(32, dtype=torch.long)

    def step(x: torch.Tensor, ptr: torch.Tensor) -> float:
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        if padded:  # glot's own entry: under bf16 on a CPU it rounds the token count up first
            z = pool(pooler, x, ptr, dtype)
        else:
            with autocast(dtype):
                z = pooler.forward_packed(x, ptr)
        F.cross_entropy(head(z.float()), labels).backward()
        opt.step()
        return time.perf_counter() - start

    seen = [make_batch(seed) for seed in range(3)]
    for x, ptr in seen:  # their shapes are now known to the process
        step(x, ptr)
    times: dict[str, list[float]] = {"new N": [], "seen N": []}
    for i in range(repeats):
        times["new N"].append(step(*make_batch(10_000 + i)))  # a seed never used: an N not seen before
        times["seen N"].append(step(*seen[i % len(seen)]))
    out = {k: summarize(v) for k, v in times.items()}
    out["ratio"] = out["new N"]["median_s"] / out["seen N"]["median_s"]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--repeats", type=int, default=40, help="new-N / seen-N step pairs per contender")
    args = parser.parse_args(argv)
    apply_quick(args, argv, repeats=4)
    check_out(args)
    apply_threads(args)
    info = machine_info()
    dtypes = ["fp32", "bf16"] if native_bf16() else ["fp32"]
    rows = []
    for name in HEADS:
        for dtype in dtypes:
            for padded in (False, True) if dtype == "bf16" else (False,):
                r = run(name, dtype, args.repeats, padded)
                rows.append({"pooler": name, "dtype": dtype, "entry": ENTRIES[padded], **r})
                print(f"{name} {dtype} {ENTRIES[padded]}: new N {fmt_ms(r['new N'])} ms, "
                      f"seen N {fmt_ms(r['seen N'])} ms, x{r['ratio']:.2f}")  # fmt: skip
    text = header(
        "A batch of a new token count vs one seen before", command_line("bench_shapes.py", argv), info, args
    )
    text += (
        f"One train step on 32 sentences of 60-128 random-state tokens; medians [min-max] over {args.repeats} "
        "alternating pairs: a batch whose token count N the process has not seen, then one of three seen "
        "batches. The difference is the per-shape set-up of the matmuls (oneDNN primitives), paid once per new "
        "N. `precision.pool` (glot's entry) rounds N up to one of 16 sizes per octave first.\n\n"
    )
    table = [[r["pooler"], r["dtype"], r["entry"], fmt_ms(r["new N"]), fmt_ms(r["seen N"]), f"{r['ratio']:.2f}x"]
             for r in rows]  # fmt: skip
    text += md_table(["pooler", "head dtype", "entry", "new N ms", "seen N ms", "new / seen"], table)
    print(text)
    if not args.no_write:
        write_results("shapes", {"machine": info, "args": args_json(args), "results": rows}, text, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
