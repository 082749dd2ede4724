"""`glot train` in 1 vs 2 processes (torchrun, gloo on CPU) over one hidden-state cache: time per epoch.

Run: ``python benchmarks/bench_distributed_train.py [--task tweets] [--n-train 2000] [--pooler glot]
[--n-eval 500] [--epochs 2] [--batch-size 32] [--repeats 2]`` (``--quick``: a small run). Backbone: the packaged
all-MiniLM-L6-v2; the cache is built once, before any timing, so every launch only trains.

Contenders, each a fresh ``torchrun --standalone --nproc_per_node N -m glot train`` (interleaved per repeat):
1 process x 1 thread, 1 process x 2 threads, 2 processes x 1 thread. Time per epoch = the run's own epoch
seconds (``metrics.json`` history: train + validation + eval predictions, start-up excluded); the launch's
wall time (start-up included) is given too. All contenders train with the same global batch, so they must
reach the same eval metric (checked and reported).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import glot
from common import add_common_arguments, apply_quick, machine_info
from report import args_json, check_out, command_line, header, md_table, write_results

CONTENDERS = (
    ("1 process x 1 thread", 1, 1),
    ("1 process x 2 threads", 1, 2),
    ("2 processes x 1 thread", 2, 1),
)


def _launch(nproc: int, threads: int, argv: list[str], out: Path) -> dict[str, Any]:
    """One torchrun launch of `glot train`; its epoch seconds, wall seconds and eval metric."""
    import time

    env = dict(os.environ, PYTHONPATH=str(Path(glot.__file__).parents[1]), OMP_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m",
           "glot", *argv, "--threads", str(threads), "--out", str(out)]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(
            f"glot train failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    metrics = json.loads((out / "seed-0" / "metrics.json").read_text())
    shutil.rmtree(out)
    epochs = [h["seconds"] for h in metrics["history"]]
    return {"epoch_s": epochs, "wall_s": wall, "eval": metrics["eval"]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="tweets")
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-eval", type=int, default=500)
    parser.add_argument("--pooler", default="glot")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    apply_quick(args, argv, n_train=200, n_eval=100, epochs=1, repeats=1)
    check_out(args)
    info, command = machine_info(), command_line("bench_distributed_train.py", argv)
    work = Path(tempfile.mkdtemp(prefix="glot-bench-ddp-"))
    base = ["train", "--model", "minilm", "--task", args.task, "--n-train", str(args.n_train), "--n-eval",
            str(args.n_eval), "--cache-dir", str(work / "cache"), "--no-progress", "--pooler", args.pooler,
            "--epochs", str(args.epochs), "--batch-size", str(args.batch_size)]  # fmt: skip
    from glot.cli import main as glot_main

    assert glot_main(["cache", *base[1:12]]) == 0  # build the cache once, untimed
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in CONTENDERS}
    try:
        for _ in range(args.repeats):
            for name, nproc, threads in CONTENDERS:
                runs[name].append(_launch(nproc, threads, base, work / "run"))
                print(name, runs[name][-1], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows, one = [], None
    for name, _, _ in CONTENDERS:
        epoch = statistics.median(s for r in runs[name] for s in r["epoch_s"])
        wall = statistics.median(r["wall_s"] for r in runs[name])
        one = one or epoch
        evals = sorted({round(r["eval"], 6) for r in runs[name]})
        rows.append([name, f"{epoch:.2f}", f"{one / epoch:.2f}", f"{wall:.1f}", ", ".join(map(str, evals))])
    text = header("Distributed training: 1 vs 2 processes (torchrun, gloo)", command, info, args)
    text += (
        f"`glot train --model minilm --task {args.task} --n-train {args.n_train} --n-eval {args.n_eval} --pooler {args.pooler} "
        f"--batch-size {args.batch_size}` over one float16 cache (built before timing); {args.epochs} epochs x "
        f"{args.repeats} launches per contender, interleaved. Epoch s = median of the runs' own epoch times "
        "(train + validation + eval predictions); speed-up against 1 process x 1 thread.\n\n"
    )
    text += md_table(
        ["contender", "epoch s", "speed-up", "launch wall s (start-up incl.)", "eval metric"], rows
    )
    print(text)
    if not args.no_write:
        write_results(
            "distributed_train", {"machine": info, "args": args_json(args), "runs": runs}, text, args
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
