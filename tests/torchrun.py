"""Launch ``python -m glot ...`` as N CPU processes (gloo) with torchrun, for the distributed tests.

The children run this checkout's code (``src`` first on PYTHONPATH), offline, one torch thread each, and are
killed after ``timeout`` seconds so a test never hangs on a stuck collective.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="",
        PYTHONFAULTHANDLER="1",  # a rank killed by a signal prints every thread's Python stack first
    )  # fmt: skip
    env.update(extra)
    return env


def glot(nproc: int, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """``torchrun --standalone --nproc_per_node nproc -m glot *args`` (nproc 0: plain ``python -m glot``)."""
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] if nproc else []
    return subprocess.run(
        [sys.executable, *launcher, "-m", "glot", *args],
        env=child_env(**env), capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def failure(log: str, tail: int = 3000) -> str:
    """What a failed launch's assertion shows: the end of its log, and before it the Python stacks a rank
    killed by a signal printed (PYTHONFAULTHANDLER), which torchrun's long failure report would push out."""
    start = log.find("Fatal Python error")
    dump = "" if start < 0 or start >= len(log) - tail else log[start : start + 4000] + "\n[...]\n"
    return dump + log[-tail:]
