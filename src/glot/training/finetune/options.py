"""Fine-tuning settings: the methods and poolings on offer and :class:`FinetuneOptions`."""

from __future__ import annotations

from dataclasses import dataclass

from glot.errors import InputError

METHODS = ("lora", "full")
POOLINGS = ("mean", "eos", "cls")


@dataclass
class FinetuneOptions:
    """Settings specific to backbone fine-tuning (the shared ones live in :class:`TrainConfig`).

    ``backbone_lr`` = learning rate of the backbone / LoRA parameters; None means ``TrainConfig.lr`` for LoRA
    and 2e-5 for full fine-tuning (the usual BERT range; 2e-4 destabilises a full update). The head always uses
    ``TrainConfig.lr``. ``max_steps`` bounds the optimizer steps (None = all epochs). ``timing_warmup`` steps
    are left out of the per-step median. ``score_untrained`` scores the validation split before training.
    ``evaluate=False`` (timing runs) skips validation and the eval split: the last epoch's weights are kept.
    """

    r: int = 64
    alpha: int = 128
    dropout: float = 0.05
    backbone_lr: float | None = None
    max_steps: int | None = None
    timing_warmup: int = 3
    score_untrained: bool = True
    evaluate: bool = True

    def validate(self) -> None:
        """Raise ValueError naming the bad field."""
        if self.r < 1 or self.alpha <= 0 or not 0.0 <= self.dropout < 1.0:
            raise InputError(
                f"need r >= 1, alpha > 0, 0 <= dropout < 1; got {self.r}, {self.alpha}, {self.dropout}"
            )
        if self.backbone_lr is not None and not self.backbone_lr > 0:
            raise InputError(f"backbone_lr must be None or > 0, got {self.backbone_lr!r}")
        if self.max_steps is not None and self.max_steps < 1:
            raise InputError(f"max_steps must be None or >= 1, got {self.max_steps!r}")
        if self.timing_warmup < 0:
            raise InputError(f"timing_warmup must be >= 0, got {self.timing_warmup!r}")
