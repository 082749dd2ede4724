"""Model selection, early stopping and the lr's plateau cuts over a run's epochs (one rule for every run:
frozen heads, online, LoRA / full fine-tuning).

The selected epoch is the LATEST whose validation score is within ``select_slack`` validation examples of the
best (accuracy; other metrics: exact ties, as ``select_slack=0``): it trained longer for a score that one
example cannot tell apart, and on a small validation split the argmax epoch is often an early one picked by
noise (beyond the paper, which reports the best epoch). Early stopping counts from the last STRICT improvement
of the best score, so neither a tie nor the slack makes a run longer. Evidence (docs/results.md, section 6d):
on 634 leaderboard runs the latest epoch within one example scored +0.18 eval points on average over the
latest exactly tied one (100 runs better, 53 worse); on 82 earlier runs the latest tied epoch had scored +1.3
over the first (48 better, 10 worse).

The learning rate follows the same validation scores: after ``lr_plateau`` epochs in a row without a strict
improvement it is multiplied by ``lr_factor`` (:func:`lr_scale`, the rule of torch's ``ReduceLROnPlateau``),
recomputed from the stored scores so a resumed run trains each epoch at the lr of an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from glot.training.config import TrainConfig


def select_epoch(state: dict[str, Any], epoch: int, val: float | None, tolerance: float = 0.0) -> None:
    """Model selection after ``epoch``: ``best_val`` is the best validation score so far and ``best_epoch`` the
    selected epoch, the LATEST whose score is within ``tolerance`` of ``best_val`` (:func:`selection_tolerance`). The
    selection only ever moves to the new epoch, so the checkpoints kept (the latest and the selected) suffice.
    Early stopping counts from the last strict improvement (``improved_epoch``), so neither a tie nor the
    tolerance prolongs a run. Without validation the last epoch is selected."""
    best = state["best_val"]
    if val is None or best is None or val > best:
        state["improved_epoch"], state["best_val"] = epoch, val
    if val is None or best is None or val >= state["best_val"] - tolerance:
        state["best_epoch"] = epoch


def selection_tolerance(metric: str, slack: int, n_val: int) -> float:
    """How far below the best validation score an epoch may be and still be selected: ``slack`` examples of
    an ``n_val``-example validation split for accuracy (one example moves it by exactly 1 / n_val; a hair
    more so that float rounding never drops an epoch exactly that far below), 0 for any other metric."""
    if metric != "accuracy" or slack == 0 or n_val == 0:
        return 0.0
    return (slack + 1e-6) / n_val


def stops_early(state: dict[str, Any], epoch: int, config: TrainConfig) -> bool:
    """Whether the run stops after ``epoch``: ``config.patience`` epochs since the last strict improvement
    (before the last epoch; ``patience=None`` never stops early)."""
    patience, improved = config.patience, state.get("improved_epoch", state["best_epoch"])
    return patience is not None and epoch - improved >= patience and epoch < config.epochs


def lr_scale(vals: Sequence[float | None], plateau: int, factor: float) -> float:
    """The factor on the base lr for the epoch after the scored epochs ``vals`` (validation scores, oldest
    first): ``factor`` to the number of reductions so far, where a reduction happens after ``plateau`` epochs
    in a row without a strict improvement on the best score, and restarts the count. Equal to
    ``torch.optim.lr_scheduler.ReduceLROnPlateau(mode="max", factor=factor, patience=plateau - 1,
    threshold=0)`` stepped once per epoch. ``plateau=0``, or no validation (None), keeps the lr constant."""
    best, bad, scale = None, 0, 1.0
    for val in vals:
        if plateau <= 0 or val is None:
            return 1.0
        if best is None or val > best:
            best, bad = val, 0
            continue
        bad += 1
        if bad >= plateau:
            scale, bad = scale * factor, 0
    return scale
