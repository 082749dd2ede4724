"""``glot eval``: score a finished ``glot train`` run (every seed in it) on a task split."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from glot.cli.common import CLIError, add_json_argument, maybe_write_json, print_table
from glot.cli.options import add_task_arguments, load_task, one_line_errors

HELP = "evaluate a trained run on a task's evaluation split"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    one_line_errors(parser)
    parser.add_argument(
        "run_dir", type=Path, help="a `glot train` --out folder (one seed or seed-*/ folders)"
    )
    add_task_arguments(parser)
    parser.add_argument("--split", default="eval", help="split to score (default eval)")
    parser.add_argument("--max-length", type=int, default=None, help="truncation (default: the run's)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="hidden-state cache folder")
    parser.add_argument("--cache-dtype", default="float16", choices=("float16", "bfloat16", "float32"))
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--no-progress", action="store_true")
    add_json_argument(parser)


def _score_run(run: Path, task: Any, args: argparse.Namespace, backbones: dict[str, Any]) -> dict[str, Any]:
    """Metric of one seed folder on ``args.split`` (the backbone named in its run_config, loaded once)."""
    import numpy as np

    from glot.hub import load_backbone
    from glot.metrics import compute
    from glot.taskcache import cache_task
    from glot.train import load_run, predict

    pooler, head, config = load_run(run)
    reference = dict(config["backbone"])
    if args.max_length is not None:
        reference["max_length"] = args.max_length
    key = repr(sorted((k, str(v)) for k, v in reference.items() if k != "fingerprint"))
    if key not in backbones:
        backbones[key] = load_backbone(reference)
    cached = cache_task(
        task, backbones[key], cache_dir=args.cache_dir, dtype=args.cache_dtype, progress=not args.no_progress
    )
    rows = np.arange(len(task.splits[args.split]))
    preds = predict(pooler, head, cached, args.split, rows, task.metric, args.batch_size)
    labels = task.splits[args.split].labels
    value = float(compute(task.metric, preds.numpy(), None if task.metric == "mrr" else labels))
    return {
        "run": str(run),
        "seed": config["train"]["seed"],
        "pooler": config["train"]["pooler"],
        "value": value,
    }


def run(args: argparse.Namespace) -> int:
    from glot.runs import run_dirs

    if not args.run_dir.is_dir():
        raise CLIError(f"run folder {args.run_dir} does not exist; pass the --out folder of `glot train`")
    runs = run_dirs(args.run_dir)
    if not runs:
        raise CLIError(f"{args.run_dir} holds no glot run (no run_config.json, no seed-*/ folders with one)")
    task = load_task(args)
    if args.split not in task.splits:
        raise CLIError(f"task {task.name!r} has no split {args.split!r}; it has {', '.join(task.splits)}")
    backbones: dict[str, Any] = {}
    results = [_score_run(r, task, args, backbones) for r in runs]
    values = [r["value"] for r in results]
    from glot.metrics import mean_std

    mean, std = mean_std(values)
    rows = [[r["seed"], r["pooler"], r["value"]] for r in results]
    if len(rows) > 1:
        rows.append(["mean ± std", "", f"{mean:.4f} ± {std:.4f}"])
    print_table(
        f"{task.name} {args.split} {task.metric} — {args.run_dir}", ["seed", "pooler", task.metric], rows
    )
    maybe_write_json(
        args.json,
        {
            "task": task.name,
            "split": args.split,
            "metric": task.metric,
            "per_seed": results,
            "mean": mean,
            "std": std,
        },
    )
    return 0
