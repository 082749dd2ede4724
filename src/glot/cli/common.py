"""Shared CLI helpers: one-line errors, rich result tables, --json output, common arguments."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from glot.io import atomic_write_json

# Piped output (logs, CI, `| tee`) gets 120 columns instead of rich's 80, so result tables stay unsquashed.
console = Console(stderr=False, width=None if sys.stdout.isatty() else 120)


class CLIError(Exception):
    """A user-caused problem; printed as one line ``glot: error: ...`` with exit code 2."""


def error(message: str, code: int = 2) -> int:
    print(f"glot: error: {message}", file=sys.stderr)
    return code


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a readable table (rich) to stdout."""
    table = Table(title=title, show_lines=False)
    for i, col in enumerate(columns):
        table.add_column(str(col), justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*[_fmt(v) for v in row])
    console.print(table)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """The same table as GitHub markdown (for docs and --markdown outputs)."""
    lines = ["| " + " | ".join(map(str, columns)) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write the results as JSON to PATH")


def maybe_write_json(path: Path | None, data: Any) -> None:
    if path is not None:
        atomic_write_json(path, data)
        console.print(f"wrote {path}")
