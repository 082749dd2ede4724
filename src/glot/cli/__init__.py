"""The ``glot`` command line. Each subcommand lives in its own module ``glot.cli.<name>`` exposing
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``; modules are imported lazily so
``glot --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from .common import CLIError, error

# name -> module under glot.cli (module names avoid clashing with stdlib/builtins)
COMMANDS: dict[str, str] = {
    "models": "models",
    "cache": "cache_cmd",
    "train": "train_cmd",
    "compare": "compare",
    "encode": "encode",
    "eval": "eval_cmd",
    "explain": "explain",
    "bench": "bench",
    "mteb": "mteb_cmd",
}

HELPS: dict[str, str] = {
    "models": "list the offline packaged backbones (size, type, width, licence, installed)",
    "cache": "run a frozen backbone over a task once and store its token states",
    "train": "train a pooler + task head on cached states (or LoRA / full fine-tuning)",
    "compare": "poolers x seeds x distractor ratios on the stress test -> table, JSON, plot",
    "encode": "embed texts with a trained run (or a backbone + pooler) to .npy",
    "eval": "evaluate a trained run on a task's evaluation split",
    "explain": "pictures for one sentence: similarity heatmap, token graph, readout weights",
    "bench": "speed / memory benchmarks (head vs naive loop, GLOT vs LoRA, long inputs)",
    "mteb": "evaluate a trained run on MTEB tasks",
}


def build_parser() -> argparse.ArgumentParser:
    from glot import __version__

    parser = argparse.ArgumentParser(
        prog="glot",
        description="GLOT: sentence vectors and classifiers from frozen language models via token graphs "
        "(Mantri et al., ICLR 2026). Run `glot compare` for the main demo.",
    )
    parser.add_argument("--version", action="version", version=f"glot-pooling {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in HELPS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _command_parser(name: str) -> tuple[argparse.ArgumentParser, object]:
    module = importlib.import_module(f"glot.cli.{COMMANDS[name]}")
    parser = argparse.ArgumentParser(prog=f"glot {name}", description=HELPS[name])
    module.add_arguments(parser)
    return parser, module


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = build_parser()
    if not argv or argv[0] in ("-h", "--help", "--version"):
        top.parse_args(argv or ["--help"])
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        top.print_usage(sys.stderr)
        return error(f"unknown command {name!r}; choose one of: {', '.join(COMMANDS)}")
    parser, module = _command_parser(name)
    args = parser.parse_args(rest)
    try:
        return int(module.run(args) or 0)  # type: ignore[attr-defined]
    except CLIError as err:
        return error(str(err))
    except (ValueError, TypeError, FileNotFoundError, ImportError) as err:
        return error(f"{type(err).__name__}: {err}")
    except BrokenPipeError:  # output piped into `head` & co. that closed early: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return error("interrupted; finished work was kept (rerun the same command to resume)", code=130)


if __name__ == "__main__":
    raise SystemExit(main())
