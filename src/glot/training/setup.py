"""What one training run trains, and with which optimizer: the parts the one loop (:mod:`glot.training.loop`)
is handed.

A frozen-head run and a fine-tuning run differ only in their :class:`Setup`: where token states come from
(``source``: the cache, or a live backbone forward, :mod:`glot.training.sources`) and which modules are trained
(pooler + head, or + the LoRA-adapted / whole ``backbone``). Everything else, from the epoch order to the
checkpoints and the final artefacts, is the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from glot.backbones.identity import layer_names
from glot.cache.task import CachedTask
from glot.data import Task, stratified_indices
from glot.errors import InputError
from glot.pooling.layermix import check_stacking
from glot.pooling.poolers import Pooler, from_config
from glot.training.config import TrainConfig
from glot.training.heads import TaskHead, build_head
from glot.training.sources import StateSource

if TYPE_CHECKING:
    from glot.training.online import OnlineTask

__all__ = [
    "Finish",
    "Rows",
    "Setup",
    "TrainableWeights",
    "carve_validation",
    "make_optimizer",
    "row_counts",
    "split_rows",
]

#: Row indices per split: "train", "val" (carved from train) and "eval" (None without an eval split).
Rows = dict[str, "np.ndarray | None"]

#: ``finish(run_dir, state, optimizer, metrics)``: a run kind's own metrics (added to ``metrics`` in place)
#: and artefacts, called with the best-on-validation weights loaded, before ``metrics.json`` is written.
Finish = Callable[[Path, dict[str, Any], torch.optim.Optimizer, dict[str, Any]], None]


class TrainableWeights(nn.Module):
    """The trainable parameters of ``module`` as a module of their own, for checkpoints: its state dict holds
    exactly those (LoRA: the adapters; full fine-tuning: every backbone weight), under their parameter names.
    ``module`` is not registered inside it (its frozen weights are never saved)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.names = [n for n, p in module.named_parameters() if p.requires_grad]
        self._module = [module]  # a list, so nn.Module does not register it as a submodule

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Tensor]:  # type: ignore[override]
        params = dict(self._module[0].named_parameters())
        return {n: params[n].detach() for n in self.names}

    def load_state_dict(  # type: ignore[override]
        self, state_dict: Mapping[str, Tensor], strict: bool = True, assign: bool = False
    ) -> tuple[list[str], list[str]]:
        params = dict(self._module[0].named_parameters())
        missing = [n for n in self.names if n not in state_dict]
        unexpected = [n for n in state_dict if n not in self.names]
        assert not (strict and (missing or unexpected)), (missing[:3], unexpected[:3])
        with torch.no_grad():
            for name in self.names:
                if name in state_dict:
                    params[name].copy_(state_dict[name])
        return missing, unexpected


@dataclass
class Setup:
    """One run's parts. ``pooler`` and ``head`` are always trained (at ``TrainConfig.lr``); ``backbone``
    (fine-tuning only: the LoRA-adapted or whole model) has its trainable parameters trained too, at
    ``backbone_lr``, and checkpointed. ``source`` gives the batches' token states.

    ``max_steps`` bounds the optimizer steps (None: all epochs); ``evaluate=False`` (timing runs) scores
    nothing and keeps the last epoch; ``score_untrained`` scores the validation split before training
    (``state["val_untrained"]``); ``finish`` (see :data:`Finish`) adds the run kind's own metrics/artefacts.
    """

    task: Task
    source: StateSource
    pooler: Pooler
    head: TaskHead
    backbone: nn.Module | None = None
    backbone_lr: float | None = None
    max_steps: int | None = None
    evaluate: bool = True
    score_untrained: bool = False
    finish: Finish | None = None

    def checkpointed(self) -> dict[str, nn.Module]:
        """The modules a checkpoint saves, by file name: pooler, head (+ the backbone's trainable weights)."""
        modules: dict[str, nn.Module] = {"pooler": self.pooler, "head": self.head}
        if self.backbone is not None:
            modules["backbone"] = TrainableWeights(self.backbone)
        return modules

    def param_groups(self, lr: float) -> list[tuple[float, list[nn.Parameter]]]:
        """(learning rate, parameters) per optimizer group: the backbone's (if trained), then pooler + head."""
        groups = [(lr, [p for m in (self.pooler, self.head) for p in m.parameters()])]
        if self.backbone is not None:
            trained = [p for p in self.backbone.parameters() if p.requires_grad]
            groups.insert(0, (self.backbone_lr or lr, trained))
        return groups

    def named_trainable(self) -> list[tuple[str, nn.Parameter]]:
        """Every trained parameter by name (pooler and head names unprefixed, as in their own state dicts)."""
        named = [(n, p) for m in (self.pooler, self.head) for n, p in m.named_parameters()]
        if self.backbone is not None:
            named += [(f"backbone.{n}", p) for n, p in self.backbone.named_parameters() if p.requires_grad]
        return named


def make_optimizer(
    config: TrainConfig, groups: list[tuple[float, list[nn.Parameter]]]
) -> torch.optim.Optimizer:
    """``config.optimizer`` (Adam or AdamW, ``config.weight_decay``) over ``(lr, parameters)`` groups. A run
    without a single trainable parameter (a fixed pooler with a head that has none, e.g. mean pooling and the
    contrastive head's fixed temperature) is refused: its loss has no gradient to follow."""
    if not any(p.requires_grad for _, params in groups for p in params):
        raise InputError(
            f"nothing to train: pooler {config.pooler!r} has no parameters and neither has this task's head "
            "(a contrastive head keeps its temperature fixed); pick a learned pooler (e.g. --pooler adapool or "
            "--pooler glot), or let the head learn its temperature (--head-option learnable=true)"
        )
    kind = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return kind([{"params": p, "lr": lr} for lr, p in groups], lr=config.lr, weight_decay=config.weight_decay)


def carve_validation(
    labels: np.ndarray | None, n: int, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split train rows into (train, validation), stratified by class when labels are class ids.

    Shapes: labels (n,) | None -> train rows (n - m,), val rows (m,) with m = round(fraction * n) (>= 1).
    """
    m = max(1, int(round(fraction * n)))
    if m >= n:
        raise InputError(f"val_fraction={fraction} leaves no training data from {n} train examples; lower it")
    classes = labels if labels is not None and labels.dtype.kind == "i" else None
    val = np.sort(stratified_indices(n, m, seed, classes))
    return np.setdiff1d(np.arange(n), val), val


def split_rows(task: Task, config: TrainConfig, has_eval: bool) -> Rows:
    """The run's :data:`Rows`: train and validation carved from train with ``config.seed``, all of eval."""
    train_rows, val_rows = carve_validation(
        task.splits["train"].labels, len(task.splits["train"]), config.val_fraction, config.seed
    )
    eval_rows = np.arange(len(task.splits["eval"])) if has_eval else None
    return {"train": train_rows, "val": val_rows, "eval": eval_rows}


def row_counts(rows: Rows) -> dict[str, int]:
    """Examples per split (the run config's and metrics' ``sizes``)."""
    return {name: 0 if r is None else len(r) for name, r in rows.items()}


def build_models(
    cached: CachedTask | OnlineTask, config: TrainConfig, device: torch.device | None = None
) -> tuple[Pooler, TaskHead]:
    """Pooler + head with weights initialised deterministically from ``config.seed`` (on the CPU, so every
    device starts from the same weights), then moved to ``device`` (the training device).

    An STS head gets the task's ``info["score_scale"]`` (gold score meaning "identical": targets are
    score / scale) unless ``config.head_options`` sets ``score_scale`` itself.
    """
    task = cached.task
    head_options = task.head_options() | config.head_options
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        layer = (
            cached.states.manifest["ingredients"]["backbone"].get("layer")
            if isinstance(cached, CachedTask)
            else layer_names(cached.backbone._layers)  # as the cache key names them (no weights hashing)
        )
        check_stacking(config.pooler_options.gnn.mix_layers, layer)  # glot.pooling.layermix
        pooler = from_config(config.pooler_config(cached.dim))  # the typed spec, normalised in TrainConfig
        head = build_head(task.kind, pooler.out_dim, num_labels=task.num_labels, **head_options)
    if device is not None:
        pooler, head = pooler.to(device), head.to(device)
    return pooler, head
