"""Start-up time: ``import glot``, ``glot --help`` and ``glot train --help`` as fresh processes.

Each command runs as a new Python process (wall time, medians over repeats, contenders interleaved per repeat),
optionally next to the same commands on another checkout's ``src`` (``--baseline-src``, e.g. a ``git worktree``
of an older commit), so a before/after ratio is measured side by side on the same machine and load.

Run: ``python benchmarks/bench_startup.py [--baseline-src /tmp/old/src] [--repeats 7]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import add_common_arguments, apply_quick, machine_info, summarize
from report import args_json, check_out, command_line, fmt_ms, header, md_table, write_results

SRC = Path(__file__).resolve().parent.parent / "src"
COMMANDS = {
    "import glot": ["-c", "import glot"],
    "glot --help": ["-c", "import sys; from glot.cli import main; sys.argv = ['glot', '--help']; main()"],
    "glot train --help": [
        "-c",
        "import sys; from glot.cli import main; sys.argv = ['glot', 'train', '--help']; main(['train', '--help'])",
    ],
}


def _once(src: Path, argv: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(src)}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *argv], env=env, check=False, capture_output=True)
    return time.perf_counter() - t0


def measure(sources: dict[str, Path], repeats: int) -> dict[str, dict[str, Any]]:
    """Median wall seconds per (source, command), every repeat running each pair once, in a rotated order."""
    pairs = [(s, c) for s in sources for c in COMMANDS]
    times: dict[tuple[str, str], list[float]] = {p: [] for p in pairs}
    for r in range(repeats):
        for s, c in pairs[r % len(pairs) :] + pairs[: r % len(pairs)]:
            times[(s, c)].append(_once(sources[s], COMMANDS[c]))
    return {f"{s} | {c}": summarize(v) for (s, c), v in times.items()}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--baseline-src", type=Path, default=None, help="another checkout's src/ to compare")
    args = parser.parse_args(argv)
    apply_quick(args, argv, repeats=2)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    check_out(args)
    sources = {"this checkout": SRC}
    if args.baseline_src is not None:
        sources["baseline"] = args.baseline_src
    results = measure(sources, args.repeats)
    rows = []
    for command in COMMANDS:
        row: list[Any] = [command, fmt_ms(results[f"this checkout | {command}"])]
        if "baseline" in sources:
            base, new = results[f"baseline | {command}"], results[f"this checkout | {command}"]
            row += [fmt_ms(base), f"{base['median_s'] / new['median_s']:.1f}x"]
        rows.append(row)
    columns = ["command", "this checkout ms"] + (["baseline ms", "speed-up"] if "baseline" in sources else [])
    info = machine_info()
    text = header("Start-up: import glot and --help", command_line("bench_startup.py", argv), info, args)
    text += (
        f"\nWall time of a fresh Python process, medians [min-max] over {args.repeats} interleaved repeats"
        + (f"; baseline = `{args.baseline_src}`" if args.baseline_src else "")
        + ".\n\n"
        + md_table(columns, rows)
    )
    print(text)
    if not args.no_write:
        write_results("startup", {"machine": info, "args": args_json(args), "results": results}, text, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
