"""Distributed cache build: ``glot cache`` as 1 process vs ``torchrun --nproc_per_node N -m glot cache``.

Each contender is a fresh command building a fresh cache entry (a new folder per run) of the same task and
backbone; contenders are interleaved per repeat. Two times per run: ``build s`` is what ``glot cache`` itself
reports (embedding + writing + the ranks' coordination, model loading excluded) and ``wall s`` is the whole
command (start-up, model loading, the launcher). On a machine with C cores the rows are

- 1 process, 1 thread: the per-core baseline (ideal N-rank speed-up = N);
- 1 process, C threads: what one process gets from the same cores (intra-op threads);
- N processes x 1 thread (torchrun, gloo on CPU; nccl and one GPU per rank on a GPU machine).

Run: ``python benchmarks/bench_distributed.py [--n-train 1000] [--nproc 2] [--repeats 3]`` (``--quick``: 200
texts, 1 repeat). On one GPU pass ``--nproc 1``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import add_common_arguments, apply_quick, machine_info, summarize
from report import args_json, check_out, command_line, header, md_table, write_results

SRC = Path(__file__).resolve().parent.parent / "src"


def contenders(nproc: int, cores: int) -> dict[str, tuple[int, int]]:
    """name -> (processes, threads per process); processes 0 = plain ``python -m glot``."""
    rows = {"1 process, 1 thread": (0, 1)}
    if cores > 1:
        rows[f"1 process, {cores} threads"] = (0, cores)
    rows[f"{nproc} process{'es' if nproc > 1 else ''} x 1 thread (torchrun)"] = (nproc, 1)
    return rows


def _once(procs: int, threads: int, args: argparse.Namespace, work: Path) -> dict[str, float]:
    cache, out = Path(tempfile.mkdtemp(dir=work)), work / "run.json"
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}"] if procs else []
    cmd = [sys.executable, *launcher, "-m", "glot", "cache", "--model", args.model, "--task", args.task,
           "--n-train", str(args.n_train), "--n-eval", str(args.n_eval), "--shard-size", str(args.shard_size),
           "--batch-size", str(args.batch_size), "--cache-dir", str(cache), "--json", str(out), "-q",
           "--no-progress"]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": str(SRC),
        "OMP_NUM_THREADS": str(threads),
        "TOKENIZERS_PARALLELISM": "false",
    }
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    info = json.loads(out.read_text())
    shutil.rmtree(cache, ignore_errors=True)
    return {
        "wall_s": wall,
        "build_s": float(info["seconds"]),
        "texts": info["texts"],
        "shards": info["shards"],
    }


def measure(args: argparse.Namespace, rows: dict[str, tuple[int, int]]) -> dict[str, dict[str, Any]]:
    names = list(rows)
    runs: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="glot-bench-dist-") as tmp:
        for r in range(args.repeats):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                runs[name].append(_once(*rows[name], args, Path(tmp)))
    return {
        n: {"build": summarize([x["build_s"] for x in v]), "wall": summarize([x["wall_s"] for x in v]),
            "processes": max(1, rows[n][0]), "threads": rows[n][1], "texts": v[0]["texts"],
            "shards": v[0]["shards"]}
        for n, v in runs.items()
    }  # fmt: skip


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--task", default="tweets")
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--n-eval", type=int, default=200)
    parser.add_argument(
        "--shard-size", type=int, default=100, help="texts per shard (the unit split over ranks)"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--nproc", type=int, default=2, help="ranks of the torchrun row (1 on one GPU)")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="threads of the 1-process row")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    apply_quick(args, argv, n_train=160, n_eval=40, shard_size=25, repeats=1)
    return args


def _rows(results: dict[str, dict[str, Any]]) -> list[list[Any]]:
    base = results["1 process, 1 thread"]
    out = []
    for name, r in results.items():
        b, w = r["build"], r["wall"]
        out.append([
            name, f"{b['median_s']:.1f} [{b['min_s']:.1f}-{b['max_s']:.1f}]",
            f"{w['median_s']:.1f} [{w['min_s']:.1f}-{w['max_s']:.1f}]",
            f"{base['build']['median_s'] / b['median_s']:.2f}x", f"{base['wall']['median_s'] / w['median_s']:.2f}x",
        ])  # fmt: skip
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    check_out(args)
    rows = contenders(args.nproc, args.cores)
    info = machine_info()
    load_before = os.getloadavg()
    results = measure(args, rows)
    first = next(iter(results.values()))
    text = header("Distributed cache build: 1 process vs torchrun", command_line("bench_distributed.py", argv),
                  info, args)  # fmt: skip
    text += (
        f"\n`glot cache --model {args.model} --task {args.task}`: {first['texts']} texts in {first['shards']} "
        f"shards of {args.shard_size}; medians [min-max] over {args.repeats} interleaved repeats, a fresh cache "
        "folder per run. build s = the time `glot cache` reports (embed + write + coordination, model load "
        "excluded); wall s = the whole command (start-up, model load, launcher). Speed-up = 1 process, 1 "
        "thread / row.\n\n"
        + md_table(["run", "build s", "wall s", "build speed-up", "wall speed-up"], _rows(results))
        + f"\nShards are the unit of work: {first['shards']} shards over {args.nproc} ranks give the busiest rank "
        f"{-(-first['shards'] // args.nproc)} of them, so the build speed-up is at most "
        f"{first['shards'] / -(-first['shards'] // args.nproc):.2f}x (equal shards) even on idle cores; each rank "
        "also starts Python and loads the backbone itself, which the wall time pays once per rank.\n"
        + f"\nLoad average (1/5/15 min) before {'/'.join(f'{x:.1f}' for x in load_before)}, after "
        f"{'/'.join(f'{x:.1f}' for x in os.getloadavg())}.\n"
    )
    print(text)
    if not args.no_write:
        write_results(
            "distributed", {"machine": info, "args": args_json(args), "results": results}, text, args
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
