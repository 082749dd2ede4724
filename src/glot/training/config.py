"""``TrainConfig``: every setting of a training run, validated, with a JSON round trip."""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from glot.errors import InputError

__all__ = ["OPTIMIZERS", "TrainConfig"]

OPTIMIZERS = ("adam", "adamw")
#: Largest learning rate accepted: Adam's steps are ~lr per weight, so anything near this is already absurd
#: (and lr > ~3e37 overflows inside torch's Adam step).
MAX_LR = 10.0


def _finite(name: str, value: Any, expected: str, ok: Callable[[float], bool]) -> None:
    """Raise a one-line InputError unless ``value`` is a finite real number (not a bool) with ``ok(value)``."""
    real = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not real or not math.isfinite(value) or not ok(value):
        raise InputError(f"{name} must be {expected}, got {value!r}")


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name} must be an integer >= 1, got {value!r}")


@dataclass
class TrainConfig:
    """Settings of one training run (one seed). Defaults follow the paper's GLUE recipe: Adam, lr 2e-4,
    batch 32; model selection on ``val_fraction`` of train (not the paper's selection on the eval split).

    ``pooler_options`` go to ``glot.build_pooler`` (e.g. ``{"tau": 0.6, "num_layers": 4}``), ``head_options``
    to ``glot.training.heads.build_head``. ``patience`` = stop after that many epochs without a validation
    improvement (None = never). ``max_length`` = backbone truncation (None = the task's). ``grad_clip`` =
    max gradient norm (None = off).
    """

    pooler: str = "glot"
    pooler_options: dict[str, Any] = field(default_factory=dict)
    head_options: dict[str, Any] = field(default_factory=dict)
    optimizer: str = "adam"
    lr: float = 2e-4
    weight_decay: float = 0.0
    epochs: int = 3
    batch_size: int = 32
    eval_batch_size: int = 256
    seed: int = 0
    val_fraction: float = 0.1
    patience: int | None = None
    max_length: int | None = None
    grad_clip: float | None = None

    def validate(self) -> None:
        """Raise a one-line InputError naming the bad field, what it got and what it expects (numbers must be
        finite: NaN / inf learning rates, weight decays or clips are refused)."""
        from glot.pooling.poolers import POOLERS

        if self.pooler not in POOLERS:
            raise InputError(f"unknown pooler {self.pooler!r}; valid names: {', '.join(sorted(POOLERS))}")
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        _finite(
            "lr", self.lr, f"a finite number in (0, {MAX_LR:g}] (paper: 2e-4 GLUE, 1e-4 stress test)",
            lambda v: 0 < v <= MAX_LR,
        )  # fmt: skip
        _finite("weight_decay", self.weight_decay, "a finite number >= 0 (0 = off)", lambda v: v >= 0)
        for name in ("epochs", "batch_size", "eval_batch_size"):
            _positive_int(name, getattr(self, name))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InputError(f"seed must be an integer >= 0, got {self.seed!r}")
        _finite(
            "val_fraction", self.val_fraction,
            "a number in (0, 1) (the share of train held out for model selection)", lambda v: 0.0 < v < 1.0,
        )  # fmt: skip
        for name in ("patience", "max_length"):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        if self.grad_clip is not None:
            _finite(
                "grad_clip", self.grad_clip, "None (off) or a finite number > 0, e.g. 1.0", lambda v: v > 0
            )
        if not isinstance(self.pooler_options, dict) or not isinstance(self.head_options, dict):
            raise InputError("pooler_options and head_options must be dicts of keyword arguments")

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys warn, bad values raise."""
        known = {f.name for f in dataclasses.fields(cls)}
        for key in sorted(set(data) - known):
            warnings.warn(f"ignoring unknown key {key!r} in train config", UserWarning, stacklevel=2)
        config = cls(**{k: v for k, v in data.items() if k in known})
        config.validate()
        return config
