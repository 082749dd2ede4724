"""``glot train``: a pooler + task head on cached states (several seeds -> mean ± std), or LoRA / full FT."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

from glot.cli.common import (
    CLIError,
    add_json_argument,
    maybe_write_json,
    note,
    print_table,
    truncation_message,
    warn,
)
from glot.cli.config_flags import add_optim_arguments, add_pooler_arguments, check_pooler, train_config
from glot.cli.options import (
    add_model_arguments,
    add_task_arguments,
    load_backbone,
    load_task,
    parse_int_list,
    parse_options,
    torch_threads,
)
from glot.cli.runinfo import input_fit_label, sizes_label
from glot.pooling.config import POOLER_NAMES

HELP = "train a pooler + task head on cached states (or LoRA / full fine-tuning)"
#: tau chosen from the training states (glot.pooling.normalize): a threshold that suits every backbone
TRAIN_POOLER_DEFAULTS = {"tau": "auto"}


# ---------------------------------------------------------------------------------------------- the command
def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    add_task_arguments(parser)
    parser.add_argument("--pooler", default="glot", help=f"{', '.join(POOLER_NAMES)} (default glot)")
    add_pooler_arguments(
        parser, TRAIN_POOLER_DEFAULTS, about="An option the chosen --pooler does not take is an error."
    )
    add_optim_arguments(parser)
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds, e.g. 0,1,2 (default 0)")
    parser.add_argument(
        "--head-option", action="append", metavar="KEY=VALUE", help="task-head option (repeatable)"
    )
    parser.add_argument(
        "--finetune", choices=("lora", "full"), default=None, help="fine-tune the backbone instead"
    )
    parser.add_argument(
        "--states",
        choices=("cache", "online"),
        default=None,
        help="where the frozen backbone's token states come from: cache (default: computed once, memory-mapped) "
        "or online (the backbone runs on every batch, nothing on disk: for corpora whose cache would not fit)",
    )
    parser.add_argument("--out", type=Path, default=None, help="run folder (default runs/<task>-<pooler>)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a run with a different config in --out"
    )
    add_json_argument(parser)


def run(args: argparse.Namespace) -> int:
    from glot import distributed

    if args.finetune is not None and args.states is not None:
        raise CLIError(
            f"--states {args.states} does not apply to --finetune (it always runs the backbone); drop it"
        )
    with distributed.process_group():  # torchrun / accelerate launch: data-parallel over the ranks
        return _run(args, main=distributed.is_main())


def _run(args: argparse.Namespace, main: bool) -> int:
    if args.finetune == "lora":  # before the task and the backbone are loaded
        from glot.integrations import require_extra

        try:
            require_extra("peft", "--finetune lora")
        except ImportError as err:
            raise CLIError(str(err)) from None
    seeds = parse_int_list(args.seeds, "--seeds")
    pooler = check_pooler(args.pooler)
    config = train_config(args, pooler, head_options=parse_options(args.head_option, "--head-option"))
    task = load_task(args)
    out = args.out if args.out is not None else Path("runs") / f"{task.name}-{args.finetune or pooler}"
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} exists and is not a folder")
    progress = not args.no_progress and main
    if args.finetune is not None:
        result = _finetune(args, task, config, seeds, out)
    elif args.states == "online":
        from glot.training.online import OnlineTask, train_online

        online = OnlineTask(task, load_backbone(args, args.max_length or task.max_length))
        with torch_threads(args.threads):
            result = train_online(online, config, out, seeds, progress=progress, overwrite=args.overwrite)
    else:
        from glot.backbones.tokenize import TruncationWarning
        from glot.training.loop import cache_task, train

        backbone = load_backbone(args, args.max_length or task.max_length)
        with warnings.catch_warnings():  # said once, after the table, for a new and a reused cache alike
            warnings.simplefilter("ignore", TruncationWarning)
            cached = cache_task(
                task,
                backbone,
                cache_dir=args.cache_dir,
                dtype=args.cache_dtype,
                progress=progress,
            )
        with torch_threads(args.threads):
            result = train(cached, config, out, seeds, progress=progress, overwrite=args.overwrite)
    if main:  # distributed: every rank holds the same result; rank 0 reports it
        _print_result(result, task, args.finetune or pooler, out)
        _warn_truncation(result)
        maybe_write_json(args.json, result)
    return 0


def _finetune(
    args: argparse.Namespace, task: Any, config: Any, seeds: list[int], out: Path
) -> dict[str, Any]:
    """Dispatch to glot.training.finetune.run_finetune, one run folder per seed."""
    from glot.training.finetune import run_finetune
    from glot.training.loop import summarize

    per_seed = []
    for seed in seeds:
        with torch_threads(args.threads):
            per_seed.append(
                run_finetune(
                    task,
                    args.model,
                    args.finetune,
                    None if args.pooler == "glot" else args.pooler,
                    config.replace(seed=seed),
                    out / f"seed-{seed}",
                    overwrite=args.overwrite,
                    progress=not args.no_progress,
                )  # fmt: skip
            )
    return {
        "per_seed": per_seed,
        "summary": summarize(per_seed),
        "config": config.to_dict() | {"seeds": seeds},
    }


def _mean_std_cell(values: list[Any]) -> str:
    from glot.training.metrics import format_mean_std

    return "-" if any(v is None for v in values) else format_mean_std(values)


def _warn_truncation(result: dict[str, Any]) -> None:
    """Say how many of the task's texts the backbone cut (recorded in the cache and in each seed's metrics)."""
    trunc = (result["per_seed"][0].get("truncation") or {}) if result["per_seed"] else {}
    message = truncation_message(trunc.get("truncated"), trunc.get("texts", 0), trunc.get("max_length"))
    if message:
        warn(message)


def _print_result(result: dict[str, Any], task: Any, method: str, out: Path) -> None:
    rows = []
    for m in result["per_seed"]:
        opt = m.get("eval_best_epoch_optimistic") or {}
        rows.append(
            [
                m["seed"],
                m.get("best_val_epoch", "-"),
                m.get("val"),
                m.get("eval", "-"),
                opt.get("value", "-"),
                m.get("train_seconds", "-"),
            ]
        )
    per_seed = result["per_seed"]
    if len(per_seed) > 1 and all("eval" in m for m in per_seed):  # one seed: its row is the result, no ±
        optimistic = [(m.get("eval_best_epoch_optimistic") or {}).get("value") for m in per_seed]
        rows.append(
            [
                "mean ± std",
                "",
                _mean_std_cell([m.get("val") for m in per_seed]),
                _mean_std_cell([m["eval"] for m in per_seed]),
                _mean_std_cell(optimistic),
                f"{result['summary']['train_seconds']['mean']:.1f}",
            ]
        )
    columns = [
        "seed",
        "best epoch (val)",
        f"val {task.metric}",
        f"eval {task.metric}",
        "eval, best epoch on eval*",
        "train s",
    ]
    print_table(f"{task.name} — {method} — {out}{sizes_label(per_seed)}", columns, rows)
    fit = input_fit_label(per_seed)
    if fit:
        note(f"{method}: {fit}")
    note(
        "* optimistic: epoch picked on the eval split, as the paper reports; the 'eval' column is the honest number"
    )
