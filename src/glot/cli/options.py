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

#: Pooler options exposed as flags: flag name -> (build_pooler key, type, help).
POOLER_FLAGS: dict[str, tuple[str, Any, str]] = {
    "tau": ("tau", float, "GLOT graph threshold: edge iff cos > tau (paper 0.1-0.8; stress test 0.6)"),
    "num-layers": ("num_layers", int, "GNN / MLP layers K (paper 2 or 4)"),
    "hidden-dim": ("hidden_dim", int, "GNN / MLP width P (paper 64-256)"),
    "conv": ("conv", str, "GNN layer: gat (default), gatv2, gcn, gin, gine"),
    "jk": ("jk", str, "jumping knowledge: cat (default), max, mean, none"),
    "knn": ("knn", int, "keep only each token's k most similar neighbours above tau"),
    "heads": ("heads", int, "attention heads of GAT/GATv2"),
    "readout-hidden": ("readout_hidden", int, "width of the attention readout's scorer"),
}


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
    """--model, --dtype, --layer, --max-length, --cache-dir, --cache-dtype, --threads, --no-progress."""
    one_line_errors(parser)
    g = parser.add_argument_group("backbone and cache")
    g.add_argument("--model", default=default, help=f"zoo alias, local folder or hub id (default: {default})")
    g.add_argument("--dtype", default="auto", help="backbone compute dtype: auto, float32, bfloat16, float16")
    g.add_argument("--layer", type=int, default=-1, help="hidden_states index (-1 = last layer, the paper)")
    g.add_argument("--max-length", type=int, default=None, help="truncation (default: the task's, e.g. 128)")
    g.add_argument(
        "--cache-dir", type=Path, default=None, help="hidden-state cache (default $GLOT_HOME/cache)"
    )
    g.add_argument("--cache-dtype", default="float16", choices=("float16", "bfloat16", "float32"))
    g.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads while training heads (default 1: small ops, no oversubscription on busy machines; "
        "0 = torch's default)",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bars")


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


def add_pooler_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per pooler option (only the options a given pooler takes are passed to it)."""
    g = parser.add_argument_group("pooler options (GLOT defaults: GAT, K=2, P=256, JK cat, tau=0.8)")
    for flag, (_key, kind, text) in POOLER_FLAGS.items():
        g.add_argument(f"--{flag}", type=kind, default=None, help=text)


def add_optim_arguments(parser: argparse.ArgumentParser, epochs: int = 3, lr: float = 2e-4) -> None:
    """Optimizer, schedule and model-selection flags."""
    g = parser.add_argument_group("training")
    g.add_argument("--optimizer", default="adam", choices=("adam", "adamw"))
    g.add_argument("--lr", type=float, default=lr, help=f"learning rate (default {lr:g})")
    g.add_argument("--weight-decay", type=float, default=0.0)
    g.add_argument("--epochs", type=int, default=epochs, help=f"max epochs (default {epochs})")
    g.add_argument("--batch-size", type=int, default=32)
    g.add_argument(
        "--val-fraction", type=float, default=0.1, help="share of train held out for model selection"
    )
    g.add_argument(
        "--patience", type=int, default=None, help="early stopping after N epochs without improvement"
    )
    g.add_argument("--grad-clip", type=float, default=None, help="max gradient norm (default off)")


def pooler_options(args: argparse.Namespace, pooler: str) -> dict[str, Any]:
    """The pooler flags that were given and that ``pooler`` accepts."""
    from glot.pooling.poolers import POOLERS

    given = {key: getattr(args, flag.replace("-", "_")) for flag, (key, _, _) in POOLER_FLAGS.items()}
    return {k: v for k, v in given.items() if v is not None and k in POOLERS[pooler].options}


def check_pooler(name: str) -> str:
    from glot.pooling.poolers import POOLERS

    if name not in POOLERS:
        raise CLIError(f"unknown pooler {name!r}; choose one of: {', '.join(POOLERS)}")
    return name


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

    ``max_length`` None leaves the truncation to the backbone's default (the model's own configured limit).
    """
    from glot.backbones import zoo
    from glot.backbones.frozen import FrozenBackbone

    name = args.model
    if name not in zoo.aliases() and not Path(name).exists() and os.environ.get("HF_HUB_OFFLINE") == "1":
        raise CLIError(
            f"unknown model {name!r}: not a zoo alias ({', '.join(zoo.aliases())}) nor a local folder"
        )
    lengths: dict[str, Any] = {} if max_length is None else {"max_length": max_length}
    try:
        return FrozenBackbone.from_pretrained(name, dtype=args.dtype, layer=args.layer, **lengths)
    except OSError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CLIError(
            f"cannot load model {name!r} ({first}); use a zoo alias ({', '.join(zoo.aliases())}), a local folder "
            "or a hub id reachable online"
        ) from None


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


def train_config(args: argparse.Namespace, pooler: str, **overrides: Any) -> Any:
    """TrainConfig from the parsed flags; bad values become one-line CLI errors."""
    from glot.training.loop import TrainConfig

    config = TrainConfig(
        pooler=pooler, pooler_options=pooler_options(args, pooler), optimizer=args.optimizer, lr=args.lr,
        weight_decay=args.weight_decay, epochs=args.epochs, batch_size=args.batch_size,
        val_fraction=args.val_fraction, patience=args.patience, max_length=args.max_length, grad_clip=args.grad_clip,
    )  # fmt: skip
    config = config.replace(**overrides)
    try:
        config.validate()
    except ValueError as err:
        raise CLIError(str(err)) from None
    return config
