"""``glot mteb``: evaluate a trained run (or a saved encoder / Hub repo) on MTEB tasks by name.

Needs the Hub for the task data (``mteb.get_tasks``); offline, build local task objects and call
``mteb.evaluate(GLOTMTEBEncoder.from_pretrained(run), [task])`` instead (see docs/integrations.md).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from glot.cli.common import CLIError, add_json_argument, console, maybe_write_json, print_table
from glot.cli.options import add_length_arguments, length_options
from glot.integrations import require_extra

# mteb, sentence-transformers (optional extras) and torch are imported inside run(): `glot mteb --help`
# loads none of them (tests/test_imports.py).

HELP = "evaluate a trained run on MTEB tasks"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, metavar="DIR",
                        help="training run folder, folder from glot.export.hub.save_pretrained, or Hub repo id")  # fmt: skip
    parser.add_argument("--tasks", required=True, metavar="T1,T2",
                        help="comma-separated MTEB task names, e.g. STS12,SciFact,EmotionClassification")  # fmt: skip
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="MTEB result cache folder (per-task JSON; reruns skip finished tasks)")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=32, help="texts per backbone batch (default 32)")
    parser.add_argument("--dtype", default=None, help="backbone dtype override (float32, bfloat16, auto)")
    parser.add_argument("--device", default=None, help="device override (cpu, cuda, cuda:1)")
    parser.add_argument(
        "--name", default=None, help="model name for MTEB results (default glot/<backbone>-<pooler>)"
    )
    add_length_arguments(parser.add_argument_group("long texts"), "tokens per forward (default: the run's)")
    add_json_argument(parser)


def _task_names(spec: str) -> list[str]:
    names = [t.strip() for t in spec.split(",") if t.strip()]
    if not names:
        raise CLIError(f"--tasks needs at least one MTEB task name, got {spec!r}")
    return names


def _offline_hint(task: Any, err: BaseException) -> CLIError:
    name, dataset = task.metadata.name, (task.metadata.dataset or {}).get("path", "?")
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return CLIError(
        f"MTEB task {name!r} needs its data from the Hugging Face Hub ({dataset}), which cannot be reached "
        f"({first}); offline, build the task from local data in Python and run mteb.evaluate("
        "GLOTMTEBEncoder.from_pretrained(run), [task]) (see docs/integrations.md)"
    )


def evaluate(model: Any, tasks: list[Any], out: Path | None, batch_size: int) -> list[dict[str, Any]]:
    """Run ``mteb.evaluate`` task by task; one row per task: name, type, main score name, score, seconds.

    A task whose data cannot be fetched (offline, Hub down) stops with one line naming it; results of the
    tasks before it stay in the ``out`` cache.
    """
    import mteb

    cache = mteb.ResultCache(cache_path=out) if out is not None else None
    start, results = time.perf_counter(), []
    for task in tasks:
        console.print(f"MTEB: {task.metadata.name} ...")
        try:
            encode: Any = {"batch_size": batch_size}  # mteb.types.EncodeKwargs
            results.append(
                mteb.evaluate(model, [task], cache=cache, encode_kwargs=encode, show_progress_bar=False)
            )
        except (OSError, ConnectionError) as err:  # datasets / huggingface_hub network errors are OSErrors
            raise _offline_hint(task, err) from None
    seconds = time.perf_counter() - start
    meta = {t.metadata.name: t.metadata for t in tasks}
    rows = []
    for result in results:
        for task_result in result.task_results:
            md = meta.get(task_result.task_name)
            rows.append({
                "task": task_result.task_name,
                "type": md.type if md is not None else "",
                "metric": md.main_score if md is not None else "main_score",
                "score": float(task_result.get_score()),
                "seconds": task_result.evaluation_time,
            })  # fmt: skip
        for failure in result.exceptions or []:
            console.print(f"[red]failed[/red]: {failure}")
    console.print(f"MTEB finished in {seconds:.1f} s")
    return rows


def run(args: argparse.Namespace) -> int:
    try:
        mteb = require_extra("mteb", "glot mteb")
        require_extra("sentence_transformers", "glot mteb")
        from glot.integrations.mteb import GLOTMTEBEncoder
    except ImportError as err:
        raise CLIError(str(err).splitlines()[0]) from None
    names = _task_names(args.tasks)
    try:
        tasks = list(mteb.get_tasks(tasks=names))
    except KeyError as err:
        raise CLIError(f"unknown MTEB task: {err}") from err
    model = GLOTMTEBEncoder.from_pretrained(
        args.run, batch_size=args.batch_size, dtype=args.dtype, device=args.device, name=args.name,
        **length_options(args),
    )  # fmt: skip
    rows = evaluate(model, tasks, args.out, args.batch_size)
    meta = model.mteb_model_meta
    name, revision = (meta.name, meta.revision) if meta is not None else (args.name, None)
    print_table(
        f"MTEB: {name} (revision {revision})",
        ["task", "type", "metric", "score"],
        [(r["task"], r["type"], r["metric"], r["score"]) for r in rows],
    )
    maybe_write_json(args.json, {"model": name, "revision": revision, "run": str(args.run),
                                 "results": rows})  # fmt: skip
    return 0 if len(rows) == len(tasks) else 1
