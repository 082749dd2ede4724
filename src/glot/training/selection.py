"""Model selection and early stopping over a run's epochs (one rule for every run: frozen heads, online,
LoRA / full fine-tuning).

The selected epoch is the one with the best validation score; among epochs tied on it, the LATEST: it trained
longer for the same score, and on a small validation split accuracy ties often (beyond the paper, which reports
the best epoch). Early stopping counts from the last STRICT improvement, so a tie never makes a run longer.
Measured on 82 earlier runs of this project whose validation best was tied (docs/results.md, section 6): the
latest tied epoch scored +1.3 eval points on average over the first (48 better, 10 worse).
"""

from __future__ import annotations

from typing import Any

from glot.training.config import TrainConfig


def select_epoch(state: dict[str, Any], epoch: int, val: float | None) -> None:
    """Model selection after ``epoch``: the best validation score so far, and among epochs that tie on it the
    LATEST (it trained longer for the same score; on a small validation split accuracy ties often). Early
    stopping counts from the last strict improvement (``improved_epoch``), so a tie never prolongs a run.
    Without validation the last epoch is selected."""
    best = state["best_val"]
    if val is None or best is None or val > best:
        state["improved_epoch"] = epoch
    if val is None or best is None or val >= best:
        state["best_val"], state["best_epoch"] = val, epoch


def stops_early(state: dict[str, Any], epoch: int, config: TrainConfig) -> bool:
    """Whether the run stops after ``epoch``: ``config.patience`` epochs since the last strict improvement
    (before the last epoch; ``patience=None`` never stops early)."""
    patience, improved = config.patience, state.get("improved_epoch", state["best_epoch"])
    return patience is not None and epoch - improved >= patience and epoch < config.epochs
