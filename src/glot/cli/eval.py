"""``glot eval``: score a finished ``glot train`` run (every seed in it) on the exact task it was trained on.

The task is rebuilt from the spec the run recorded (``task.info["spec"]``, :func:`glot.data.task_from_spec`),
so the scored split holds exactly the rows the run held out, and the data must be unchanged since training:
the sha256 of every split's texts and labels (``run_config["task"]["data"]``) is compared first. ``--task``
and its options are optional; when given they must describe the run's own task, else the command refuses
(another split seed or eval fraction would score training rows). States come from the run's own cache
entry when it is still there (then the eval metric of ``metrics.json`` is reproduced exactly); otherwise the
backbone embeds only the texts of the scored split.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from glot.cli.common import CLIError, add_json_argument, console, maybe_write_json, print_table, warn
from glot.cli.options import (
    add_length_arguments,
    add_task_arguments,
    cli_device,
    length_options,
    load_task,
    one_line_errors,
    torch_threads,
)
from glot.data import task_from_spec
from glot.training.config import DEVICE_HELP
from glot.training.metrics import compute, format_mean_std, mean_std

# torch, transformers, PyG and the modules built on them are imported inside the functions (lazy command
# loading): `glot eval --help` loads none of them (tests/test_imports.py).

HELP = "evaluate a trained run on a task's evaluation split"

_TASK_FLAGS = ("task_option", "n_train", "n_eval", "data_seed", "max_length")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    one_line_errors(parser)
    parser.epilog = (
        "By default the run's own task is rebuilt from the spec it recorded (same rows in every split) and "
        "refused if its data changed since training. --task and its options may be given, but must describe "
        "the run's task."
    )
    parser.add_argument(
        "run_dir", type=Path, help="a `glot train` --out folder (one seed or seed-*/ folders)"
    )
    add_task_arguments(parser, required=False)
    parser.set_defaults(data_seed=None)  # None = not given (the run's spec decides)
    parser.add_argument("--split", default="eval", help="split to score (default eval)")
    add_length_arguments(parser.add_argument_group("long texts"), "task truncation (default: the run's)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="hidden-state cache folder")
    parser.add_argument(
        "--cache-dtype",
        default=None,
        choices=("float16", "bfloat16", "float32", "int8"),
        help="default: the run's",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="default: the run's eval batch size")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as glot train)")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP + " (default auto, as glot train)")
    parser.add_argument("--no-progress", action="store_true")
    add_json_argument(parser)


def _canon(spec: Any) -> str:
    return json.dumps(spec, sort_keys=True, default=str)


def _run_task(run: Path, config: dict[str, Any], args: argparse.Namespace, tasks: dict[str, Any]) -> Any:
    """The task the run was trained on: rebuilt from its spec, or from --task when that is the same spec."""
    spec = (config["task"].get("info") or {}).get("spec")
    if args.task is None:
        given = [f"--{f.replace('_', '-')}" for f in _TASK_FLAGS if getattr(args, f) not in (None, [])]
        if given:
            raise CLIError(
                f"{', '.join(given)} describe a task: pass them with --task, or drop them to use the run's own"
            )
        if spec is None:
            raise CLIError(
                f"{run} records no task spec (an older glot, or a Task built in Python); pass --task and the "
                "options it was trained with"
            )
        if _canon(spec) not in tasks:
            tasks[_canon(spec)] = task_from_spec(spec)
        return tasks[_canon(spec)]
    if "given" not in tasks:
        args.data_seed = 0 if args.data_seed is None else args.data_seed
        tasks["given"] = load_task(args)
    task = tasks["given"]
    if spec is not None and _canon(task.info.get("spec")) != _canon(spec):
        raise CLIError(
            f"--task and its options build {_canon(task.info.get('spec'))} but {run} was trained on "
            f"{_canon(spec)}; another split could score training rows: drop --task to use the run's own task"
        )
    return task


def _check_data(run: Path, config: dict[str, Any], task: Any) -> None:
    """Refuse when the texts or labels of the run's splits changed since training."""
    from glot.training.checkpoint import data_fingerprint

    data = config["task"].get("data")
    if data is None:
        warn(f"{run} records no data hash (older glot); cannot check the data is unchanged")
        return
    missing = [s for s in data["splits"] if s not in task.splits]
    if missing or data_fingerprint(task, data["splits"]) != data["sha256"]:
        raise CLIError(
            f"the data of task {task.name!r} changed since {run} was trained (texts, labels or split rows of "
            f"{'/'.join(data['splits'])} differ from the recorded sha256); restore the data or retrain"
        )


def _run_cache(task: Any, config: dict[str, Any], cache_dir: Path | None) -> Any:
    """The run's own cache entry mapped onto ``task`` (same states as in training), or None if it is gone."""
    from glot.cache import CacheCorruptError, CachedStates, default_cache_root
    from glot.cache.task import CachedTask, task_texts

    recorded, key = config.get("cache") or {}, config.get("cache_key")
    if not key or "splits" not in recorded:
        return None
    texts, ids = task_texts(task, recorded["splits"])
    roots = [Path(recorded["path"]).parent, *([cache_dir] if cache_dir else []), default_cache_root()]
    for path in (root / key[:16] for root in roots):
        if path.is_dir():
            try:
                states = CachedStates.open(path, expected_key=key)
            except (CacheCorruptError, OSError, ValueError):
                continue
            if len(states) == len(texts):
                return CachedTask(task=task, states=states, ids=ids, backbone=config["backbone"])
    return None


def _states(task: Any, config: dict[str, Any], args: argparse.Namespace, backbones: dict[str, Any]) -> Any:
    """Cached states for scoring: the run's own entry if present, else ONLY the scored split's texts."""
    from glot.cache.task import cache_task
    from glot.export.hub import load_backbone

    run_dtype = (config.get("cache") or {}).get("dtype", "float16")
    reference = dict(config["backbone"])
    lengths = {k: v for k, v in length_options(args).items() if k != "max_length"}  # max_length: a task flag
    same = all(reference.get(k, "truncate" if k == "long" else None) == v for k, v in lengths.items())
    if args.cache_dtype in (None, run_dtype) and same:
        reused = _run_cache(task, config, args.cache_dir)
        if reused is not None:
            return reused
    key = _canon({**{k: v for k, v in reference.items() if k != "fingerprint"}, **lengths})
    if key not in backbones:
        backbones[key] = load_backbone(reference, device=cli_device(args.device), **lengths)
    return cache_task(
        task, backbones[key], splits=[args.split], cache_dir=args.cache_dir,
        dtype=args.cache_dtype or run_dtype, progress=not args.no_progress,
    )  # fmt: skip


def _score_run(run: Path, args: argparse.Namespace, memo: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Metric of one seed folder on ``args.split`` of the task it was trained on."""
    from glot.training.loop import load_run, predict
    from glot.training.precision import for_run

    pooler, head, config = load_run(run)
    device = cli_device(args.device)  # where the run's pooler + head score (saved on the CPU: any device)
    pooler, head = pooler.to(device), head.to(device)
    pooler = for_run(pooler, config["train"].get("head_dtype"))  # the precision the run trained and scored at
    task = _run_task(run, config, args, memo.setdefault("tasks", {}))
    if args.split not in task.splits:
        raise CLIError(f"task {task.name!r} has no split {args.split!r}; it has {', '.join(task.splits)}")
    _check_data(run, config, task)
    cached = _states(task, config, args, memo.setdefault("backbones", {}))
    rows = np.arange(len(task.splits[args.split]))
    batch = args.batch_size or config["train"]["eval_batch_size"]
    with torch_threads(args.threads):
        preds = predict(pooler, head, cached, args.split, rows, task.metric, batch)
    labels = task.splits[args.split].labels
    value = float(compute(task.metric, preds.numpy(), None if task.metric == "mrr" else labels))
    return {
        "run": str(run), "seed": config["train"]["seed"], "pooler": config["train"]["pooler"], "value": value,
        "task": task.name, "metric": task.metric, "states": str(cached.states.path),
        "states_from_run_cache": cached.cache_key == config.get("cache_key"),
    }  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from glot.training.checkpoint import run_dirs

    cli_device(args.device)  # --device cuda without CUDA: one line before anything is read
    if not args.run_dir.is_dir():
        raise CLIError(f"run folder {args.run_dir} does not exist; pass the --out folder of `glot train`")
    runs = run_dirs(args.run_dir)
    if not runs:
        raise CLIError(f"{args.run_dir} holds no glot run (no run_config.json, no seed-*/ folders with one)")
    memo: dict[str, dict[str, Any]] = {}
    results = [_score_run(r, args, memo) for r in runs]
    values = [r["value"] for r in results]
    mean, std = mean_std(values)
    name, metric = results[0]["task"], results[0]["metric"]
    rows: list[list[Any]] = [[r["seed"], r["pooler"], r["value"]] for r in results]
    if len(rows) > 1:  # one seed: its row is the result, no ±
        rows.append(["mean ± std", "", format_mean_std(values)])
    print_table(f"{name} {args.split} {metric} — {args.run_dir}", ["seed", "pooler", metric], rows)
    if not all(r["states_from_run_cache"] for r in results):
        console.print(f"the run's cache entry is gone: embedded the {args.split} split's texts anew")
    maybe_write_json(
        args.json,
        {"task": name, "split": args.split, "metric": metric, "per_seed": results, "mean": mean,
         "std": std if len(values) > 1 else None, "n": len(values)},
    )  # fmt: skip
    return 0
