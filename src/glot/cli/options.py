"""Argument helpers shared by the training commands (train, compare, cache, eval, encode): flag groups,
parsers for lists and KEY=VALUE options, task / backbone loading with one-line errors, torch threads."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

from glot.cli.common import CLIError


# ---------------------------------------------------------------------------------------------- parsing helpers
def parse_int_list(text: str, flag: str) -> list[int]:
    """``"0,1,2"`` -> [0, 1, 2]; CLIError naming the flag otherwise."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CLIError(f"{flag} takes comma-separated integers such as 0,1,2; got {text!r}") from None
    if not values or any(v < 0 for v in values) or len(set(values)) != len(values):
        raise CLIError(f"{flag} takes distinct non-negative integers such as 0,1,2; got {text!r}")
    return values


def _layer_arg(text: str) -> int | list[int]:
    """--layer: one hidden_states index or comma-separated indices (their states stacked side by side)."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"takes an integer or comma-separated integers such as 4,5,6; got {text!r}"
        ) from None
    return values[0] if len(values) == 1 else values


def parse_float_list(text: str, flag: str, lo: float = 0.0, hi: float = 1.0) -> list[float]:
    """``"0.2,0.9"`` -> [0.2, 0.9], each in [lo, hi]; CLIError otherwise."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CLIError(f"{flag} takes comma-separated numbers such as 0.2,0.5,0.9; got {text!r}") from None
    if not values or any(not lo <= v <= hi for v in values):
        raise CLIError(f"{flag} takes numbers in [{lo:g}, {hi:g}] such as 0.2,0.5,0.9; got {text!r}")
    return values


def parse_options(pairs: list[str] | None, flag: str) -> dict[str, Any]:
    """``["n_train=500", "position=end"]`` -> {"n_train": 500, "position": "end"} (int/float/bool/None/str)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise CLIError(f"{flag} takes KEY=VALUE, e.g. {flag} n_train=500; got {pair!r}")
        out[key.strip().replace("-", "_")] = _literal(raw.strip())
    return out


def _literal(raw: str) -> Any:
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


# ---------------------------------------------------------------------------------------------- argument groups
def one_line_errors(parser: argparse.ArgumentParser) -> None:
    """Make argparse report a bad argument as ONE line on stderr (exit code 2), not usage + message."""

    def error(message: str) -> NoReturn:
        print(f"glot: error: {parser.prog}: {message} (see `{parser.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)

    parser.error = error  # type: ignore[method-assign]


def add_model_arguments(parser: argparse.ArgumentParser, default: str | None = "minilm") -> None:
    """--model, --dtype, --layer, --max-length, --long, --chunk-overlap, --cache-dir, --cache-dtype, --threads,
    --no-progress."""
    one_line_errors(parser)
    g = parser.add_argument_group("backbone and cache")
    g.add_argument("--model", default=default, help=f"zoo alias, local folder or hub id (default: {default})")
    g.add_argument("--dtype", default="auto", help="backbone compute dtype: auto, float32, bfloat16, float16")
    g.add_argument(
        "--layer",
        type=_layer_arg,
        default=-1,
        help="hidden_states index (-1 = last layer, the paper), or several (4,5,6: stacked, for --mix-layers)",
    )
    add_length_arguments(g)
    g.add_argument(
        "--cache-dir", type=Path, default=None, help="hidden-state cache (default $GLOT_HOME/cache)"
    )
    g.add_argument(
        "--cache-dtype",
        default="float16",
        choices=("float16", "bfloat16", "float32", "int8"),
        help="storage dtype of cached states (default float16; int8: a scale per token, about half the bytes)",
    )
    g.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads while training heads (default 1: small ops, no oversubscription on busy machines; "
        "0 = torch's default)",
    )
    g.add_argument(
        "--device-map", default=None, choices=("auto",),
        help="auto: spread a backbone too big for one GPU over the visible GPUs (and CPU) with Accelerate",
    )  # fmt: skip
    g.add_argument("--no-progress", action="store_true", help="no progress bars")


MAX_LENGTH_HELP = (
    "tokens per forward (default: the task's: 128 for stress, tweets and GLUE, 512 for imdb; csv/jsonl: the "
    "model's own limit, e.g. 256 for minilm)"
)


def add_length_arguments(group: Any, max_length_help: str = MAX_LENGTH_HELP) -> None:
    """--max-length, --long, --chunk-overlap: how many tokens a forward takes and what happens to longer texts
    (every command that embeds has them; ``max_length_help`` names the command's own default)."""
    from glot.backbones.longtext import DEFAULT_OVERLAP, LONG_MODES

    group.add_argument("--max-length", type=int, default=None, help=max_length_help)
    group.add_argument(
        "--long",
        choices=LONG_MODES,
        default=None,
        help="texts longer than --max-length: truncate (keep the first max-length tokens, the paper; a warning "
        "counts them) or chunk (embed every token: windows of max-length tokens, one forward each, stitched "
        "into one token sequence, so the pooler sees the whole text) (default truncate)",
    )
    group.add_argument(
        "--chunk-overlap",
        type=int,
        default=None,
        metavar="N",
        help=f"with --long chunk: tokens two consecutive windows share (default {DEFAULT_OVERLAP}, at most a "
        "quarter of a window)",
    )


def length_options(args: argparse.Namespace) -> dict[str, Any]:
    """The --max-length / --long / --chunk-overlap values that were given, as FrozenBackbone keyword arguments
    (``max_length`` only when given; the caller decides its default)."""
    given = {k: getattr(args, k, None) for k in ("max_length", "long", "chunk_overlap")}
    if given["chunk_overlap"] is not None and given["long"] != "chunk":
        raise CLIError(
            f"--chunk-overlap {given['chunk_overlap']} only applies with --long chunk; add --long chunk"
        )
    return {k: v for k, v in given.items() if v is not None}


TASK_HELP = (
    "stress, tweets, a GLUE name (cola sst2 stsb mrpc qqp mnli qnli rte wnli), imdb, msmarco "
    "(--task-option path=FILE.jsonl), csv / jsonl (--task-option path=FILE), or a path to a .csv/.jsonl file "
    "with columns text[, text_pair] and label (classes) or score (similarity; score_scale = the largest |score| "
    "of the training rows unless --task-option score_scale=N). A file's eval split: a second "
    "file (--task-option eval=DEV.csv), else a 'split' column (train / eval|validation|dev / test: test rows "
    "evaluate when no eval rows exist), else eval_fraction=0.1 of the rows, carved with --data-seed"
)


def add_task_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """--task, --task-option, --n-train, --n-eval, --data-seed."""
    g = parser.add_argument_group("task")
    g.add_argument("--task", required=required, help=TASK_HELP)
    g.add_argument(
        "--task-option",
        action="append",
        metavar="KEY=VALUE",
        help="loader option (repeatable), e.g. eval=dev.csv, text_column=sentence, score_scale=1, "
        "eval_fraction=0.2, paper_subsets=false (GLUE); an unknown key lists the valid ones",
    )
    g.add_argument(
        "--n-train",
        type=int,
        default=None,
        help="train examples (stress: generated; else a seeded, class-stratified subset; GLUE qqp/qnli/mnli: "
        "of the paper's first 20,000)",
    )
    g.add_argument(
        "--n-eval", type=int, default=None, help="eval examples (stress: generated; else a seeded subset)"
    )
    g.add_argument(
        "--data-seed", type=int, default=0, help="seed of data generation / splits / subsets (default 0)"
    )


def load_task(args: argparse.Namespace) -> Any:
    """Build the task from --task / --task-option / --n-train / --n-eval / --data-seed / --max-length."""
    from glot.data import TASK_NAMES, get_task

    name = args.task
    if name not in TASK_NAMES and not name.lower().endswith((".csv", ".jsonl", ".json")):
        raise CLIError(
            f"unknown task {name!r}; choose one of: {', '.join(TASK_NAMES)} (or a .csv/.jsonl path)"
        )
    options = parse_options(args.task_option, "--task-option")
    flags = {"seed": args.data_seed, "n_train": args.n_train, "n_eval": args.n_eval}
    flags["max_length"] = getattr(args, "max_length", None)
    for key, value in flags.items():
        if value is None:
            continue
        flag = "--data-seed" if key == "seed" else f"--{key.replace('_', '-')}"
        if key in options and options[key] != value and not (key == "seed" and value == 0):
            raise CLIError(
                f"{key} given twice ({flag} {value} and --task-option {key}={options[key]}); keep one"
            )
        options.setdefault(key, value)
    return get_task(name, **options)


def load_backbone(args: argparse.Namespace, max_length: int | None) -> Any:
    """The frozen backbone named by --model; clean one-line errors for unknown or missing models.

    ``max_length`` None leaves the truncation to the backbone's default (the model's own configured limit);
    --long / --chunk-overlap are read from ``args`` when the command has them.
    """
    from glot.backbones import zoo
    from glot.backbones.frozen import FrozenBackbone

    name = args.model
    if name not in zoo.aliases() and not Path(name).exists() and os.environ.get("HF_HUB_OFFLINE") == "1":
        raise CLIError(
            f"unknown model {name!r}: not a zoo alias ({', '.join(zoo.aliases())}) nor a local folder"
        )
    lengths = {**length_options(args), **({} if max_length is None else {"max_length": max_length})}
    if getattr(args, "device_map", None) is not None:
        lengths["device_map"] = args.device_map
    elif getattr(args, "device", None) is not None:  # --device: backbone and pooler + head on one device
        lengths["device"] = cli_device(args.device)
    try:
        return FrozenBackbone.from_pretrained(name, dtype=args.dtype, layer=args.layer, **lengths)
    except OSError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CLIError(
            f"cannot load model {name!r} ({first}); use a zoo alias ({', '.join(zoo.aliases())}), a local folder "
            "or a hub id reachable online"
        ) from None


def cli_device(spec: str | None) -> Any:
    """``--device`` resolved by :func:`glot.distributed.device` (the one device rule); a bad value or CUDA asked
    for where there is none becomes a one-line CLI error."""
    from glot.distributed import device

    try:
        return device(spec)
    except ValueError as err:
        raise CLIError(str(err)) from None


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op threads (1 is fastest for small heads on a busy machine)."""
    import torch

    if n is None or n == 0:
        yield
        return
    if n < 0:
        raise CLIError(f"--threads must be >= 0 (0 = torch's default), got {n}")
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
