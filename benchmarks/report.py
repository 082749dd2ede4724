"""Report helpers for the benchmark scripts: markdown tables, section headers, benchmarks/results/ files.

Import it from a script in this folder as ``from report import ...`` (the folder is on ``sys.path``, as for
``common``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import machine_line
from glot.io import atomic_write_json, atomic_write_text

RESULTS_DIR = Path(__file__).resolve().parent / "results"  # committed full-run results
QUICK_DIR_NAME = "glot-bench-quick"  # under the temp folder: where --quick runs write by default
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


def results_dir(quick: bool, out: Path | None = None) -> Path:
    """Where a run writes its result files: ``out`` if given, else benchmarks/results for a full run and a
    scratch folder for a ``--quick`` run. A quick run never writes over the committed full-run results.
    """
    if out is None:
        return Path(tempfile.gettempdir()) / QUICK_DIR_NAME if quick else RESULTS_DIR
    if quick and Path(out).resolve() == RESULTS_DIR.resolve():
        raise SystemExit(
            f"--quick results are preliminary: they never go to {RESULTS_DIR} (the committed full-run "
            "results); drop --out to use the scratch folder, or pass another folder"
        )
    return Path(out)


def check_out(args: argparse.Namespace) -> Path:
    """``results_dir`` of parsed script arguments; call it right after parsing so a refusal comes first."""
    return results_dir(bool(args.quick), getattr(args, "out", None))


def args_json(args: argparse.Namespace) -> dict[str, Any]:
    """Parsed arguments as JSON-ready values (paths as strings)."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}


def write_results(name: str, json_data: Any, markdown: str, args: argparse.Namespace) -> tuple[Path, Path]:
    """Write ``<name>.json`` and ``<name>.md`` into :func:`results_dir` of ``args``, each atomically."""
    folder = check_out(args)
    folder.mkdir(parents=True, exist_ok=True)
    jpath = atomic_write_json(folder / f"{name}.json", json_data)
    mpath = atomic_write_text(folder / f"{name}.md", markdown.rstrip() + "\n")
    print(f"wrote {jpath} and {mpath}")
    return jpath, mpath
