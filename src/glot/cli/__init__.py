"""The ``glot`` command line. Each subcommand lives in its own module ``glot.cli.<name>`` exposing
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``; modules are imported lazily so
``glot --help`` stays fast.

Error boundary: a problem the user caused prints ONE line ``glot: error: ...`` (exit 2): bad arguments,
``CLIError``, ``glot.errors.GlotError`` (InputError / InputTypeError, raised by every validator of the library)
and file-system errors on a path (missing file, a file where a folder is needed, no permission, read-only or
full disk), named with the path and the fix. Anything else is a bug of ours and keeps its traceback.

Output: every command takes ``--quiet`` (only the result tables and errors), ``--verbose`` (library warnings,
transformers' logs, progress bars even when piped) and ``--no-progress``; :func:`glot.progress.output` applies
them in one place. Progress bars draw only on a terminal, so piped logs stay free of bar lines.

Process: before a command runs, :func:`glot.allocator.tune_allocator` keeps glibc from handing freed tensor
memory back to the OS every step (``GLOT_TUNE_MALLOC=0`` opts out; ``--verbose`` logs what it did).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from glot.cli.common import CLIError, add_output_arguments, error, os_error_message
from glot.errors import GlotError
from glot.progress import log, output

# name -> module under glot.cli (module names avoid clashing with stdlib/builtins)
COMMANDS: dict[str, str] = {
    "models": "models",
    "cache": "cache",
    "train": "train",
    "compare": "compare",
    "encode": "encode",
    "eval": "eval",
    "explain": "explain",
    "bench": "bench",
    "mteb": "mteb",
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
    from glot.cli.options import one_line_errors

    module = importlib.import_module(f"glot.cli.{COMMANDS[name]}")
    parser = argparse.ArgumentParser(prog=f"glot {name}", description=HELPS[name])
    one_line_errors(parser)  # every command, not only those with model arguments
    module.add_arguments(parser)
    add_output_arguments(parser)
    return parser, module


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = build_parser()
    if not argv or argv[0] in ("-h", "--help", "--version"):
        top.parse_args(argv or ["--help"])
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        return error(f"unknown command {name!r}; choose one of: {', '.join(COMMANDS)} (see `glot --help`)")
    parser, module = _command_parser(name)
    args = parser.parse_args(rest)
    try:
        with output(args.verbosity, progress=not args.no_progress):
            from glot.allocator import tune_allocator

            log.debug("allocator %s", tune_allocator())
            return int(module.run(args) or 0)  # type: ignore[attr-defined]
    except (CLIError, GlotError) as err:  # user errors: one line; every other exception is a bug (traceback)
        return error(_one_line(err))
    except BrokenPipeError:  # output piped into `head` & co. that closed early: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return error("interrupted; finished work was kept (rerun the same command to resume)", code=130)
    except ModuleNotFoundError as err:
        if (err.name or "glot").split(".")[0] == "glot":  # a module of ours missing: a broken install or bug
            raise
        return error(f"{err}; install the missing package (e.g. pip install 'glot-pooling[all]')")
    except OSError as err:
        message = os_error_message(err)
        if message is None:  # not about a user's path: a bug or the machine; keep the traceback
            raise
        return error(message)


def _one_line(err: BaseException) -> str:
    """The message of a user error as one line (a multi-line message is joined, never truncated)."""
    return " ".join(str(err).split("\n")).strip() or type(err).__name__


if __name__ == "__main__":
    raise SystemExit(main())
