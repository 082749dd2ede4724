"""Cost metrics of a fine-tuning run: peak resident memory, parameter counts, milliseconds per step."""

from __future__ import annotations

import resource
import statistics
from pathlib import Path
from typing import Any

from glot.training.finetune.model import FinetunedModel


def peak_rss_mb() -> float:
    """This process's resident-memory high-water mark in MiB (Linux VmHWM; ru_maxrss elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def trainable_parameters(model: FinetunedModel) -> dict[str, int]:
    """Parameter counts: trainable backbone/adapter weights, head, and the backbone's total."""
    enc = sum(p.numel() for p in model.encoder.parameters() if p.requires_grad)
    head = sum(p.numel() for p in model.head.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.backbone.model.parameters())
    return {"backbone_trainable": enc, "head": head, "trainable": enc + head, "backbone_total": total}


def _timing(step_times: list[tuple[float, float]], warmup: int) -> dict[str, Any]:
    """Median/min/max milliseconds per step after ``warmup`` steps: wall clock and process CPU time."""
    timed = step_times[warmup:] if len(step_times) > warmup else step_times
    out: dict[str, Any] = {"steps_timed": len(timed), "steps_warmup": len(step_times) - len(timed)}
    for prefix, values in (("", [w for w, _ in timed]), ("cpu_", [c for _, c in timed])):
        out |= {f"{prefix}ms_per_step_median": 1000.0 * statistics.median(values),
                f"{prefix}ms_per_step_min": 1000.0 * min(values), f"{prefix}ms_per_step_max": 1000.0 * max(values)}  # fmt: skip
    return out | {"steps_total": len(step_times)}
