"""Report helpers for the benchmark scripts: markdown tables, section headers, benchmarks/results/ files.

Import it from a script in this folder as ``from report import ...`` (the folder is on ``sys.path``, as for
``common``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import machine_line
from glot.io import atomic_write_json, atomic_write_text

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PRELIMINARY = "preliminary, machine shared"


def fmt_ms(summary: dict[str, Any]) -> str:
    """``median [min-max]`` in milliseconds."""
    ms = 1000.0
    return f"{summary['median_s'] * ms:.2f} [{summary['min_s'] * ms:.2f}-{summary['max_s'] * ms:.2f}]"


def md_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; floats get 3 significant digits."""

    def cell(v: Any) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def header(title: str, command: str, info: dict[str, Any], args: argparse.Namespace) -> str:
    """Section heading + status, command, clock and machine lines shared by every result file."""
    status = f"**Quick run ({PRELIMINARY}).**" if args.quick else "Full run."
    clock = getattr(args, "clock", "wall")
    what = "wall-clock time" if clock == "wall" else "process CPU time (not wall time)"
    return f"## {title}\n\n{status} Command: `{command}`. Times are {what}.\n\n{machine_line(info)}\n\n"


def command_line(script: str, argv: Sequence[str] | None) -> str:
    """How to reproduce: the script path plus the arguments actually given."""
    args = list(sys.argv[1:] if argv is None else argv)
    return " ".join([f"python benchmarks/{script}", *args])


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Plain-text table to stdout (the markdown table reads fine in a terminal)."""
    print(md_table(columns, rows))


def write_results(name: str, json_data: Any, markdown: str) -> tuple[Path, Path]:
    """Write ``benchmarks/results/<name>.json`` and ``<name>.md``, each atomically; return both paths."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    jpath = atomic_write_json(RESULTS_DIR / f"{name}.json", json_data)
    mpath = atomic_write_text(RESULTS_DIR / f"{name}.md", markdown.rstrip() + "\n")
    print(f"wrote {jpath} and {mpath}")
    return jpath, mpath
