"""``TrainConfig``: every setting of a training run, validated, with a JSON round trip."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

from glot.errors import InputError

__all__ = ["OPTIMIZERS", "TrainConfig"]

OPTIMIZERS = ("adam", "adamw")


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name} must be an integer >= 1, got {value!r}")


@dataclass
class TrainConfig:
    """Settings of one training run (one seed). Defaults follow the paper's GLUE recipe: Adam, lr 2e-4,
    batch 32; model selection on ``val_fraction`` of train (not the paper's selection on the eval split).

    ``pooler_options`` go to ``glot.build_pooler`` (e.g. ``{"tau": 0.6, "num_layers": 4}``), ``head_options``
    to ``glot.heads.build_head``. ``patience`` = stop after that many epochs without a validation
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
        """Raise ValueError naming the bad field, what it got and what it expects."""
        from glot.poolers import POOLERS

        if self.pooler not in POOLERS:
            raise InputError(f"unknown pooler {self.pooler!r}; valid names: {', '.join(sorted(POOLERS))}")
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if not isinstance(self.lr, (int, float)) or isinstance(self.lr, bool) or not self.lr > 0:
            raise InputError(f"lr must be a number > 0 (paper: 2e-4 GLUE, 1e-4 stress test), got {self.lr!r}")
        if not isinstance(self.weight_decay, (int, float)) or self.weight_decay < 0:
            raise InputError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        for name in ("epochs", "batch_size", "eval_batch_size"):
            _positive_int(name, getattr(self, name))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InputError(f"seed must be an integer >= 0, got {self.seed!r}")
        if not isinstance(self.val_fraction, (int, float)) or not 0.0 < self.val_fraction < 1.0:
            raise InputError(
                f"val_fraction must lie in (0, 1) (the share of train held out for model selection), "
                f"got {self.val_fraction!r}"
            )
        for name in ("patience", "max_length"):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise InputError(f"grad_clip must be None or > 0, got {self.grad_clip!r}")
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
