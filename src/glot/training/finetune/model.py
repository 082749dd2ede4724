"""The fine-tuned model: a trainable backbone (plain or PEFT-wrapped) + pooler + task head."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from glot.backbones.frozen import FrozenBackbone
from glot.cache.task import COLUMNS
from glot.data import Split, Task
from glot.distributed import device as training_device
from glot.errors import InputError
from glot.integrations import require_extra
from glot.pooling.poolers import Pooler, build_pooler
from glot.training.config import TrainConfig
from glot.training.finetune.lora import _lora_config
from glot.training.finetune.options import METHODS, POOLINGS, FinetuneOptions
from glot.training.heads import TaskHead, build_head
from glot.training.sources import BackboneSource, head_outputs, predict, score

__all__ = ["COLUMNS", "FinetunedModel", "prepare_finetune"]


class FinetunedModel(nn.Module):
    """A trainable backbone (plain or PEFT-wrapped) + pooler + task head.

    ``encoder`` is what was made trainable: ``backbone.model`` itself, or the PEFT wrapper around it (whose
    adapters sit inside ``backbone.model``); states always come from :class:`FrozenBackbone`'s own forward
    (``embed_packed(grad=True)``), so a fine-tuned model embeds exactly as the frozen path would.

    Shapes: texts of each column (B,) -> z (B, D) per column -> head output (task-dependent, e.g. (B, C)).
    """

    def __init__(self, backbone: FrozenBackbone, encoder: nn.Module, pooler: Pooler, head: TaskHead) -> None:
        super().__init__()
        self.backbone = backbone  # tokenizer + settings; its .model is the (possibly adapted) base model
        self.encoder = encoder
        self.pooler = pooler
        self.head = head

    def embed(self, texts: list[str]) -> Tensor:
        """Pooled embeddings, with gradients when autograd is on. Shapes: texts (B,) -> (B, D)."""
        return self.pooler.forward_packed(*self.backbone.embed_packed(texts, grad=True))

    def forward(self, columns: list[list[str]]) -> Tensor:
        """Head output for one batch; all text columns (texts, pair, negatives) go through ONE backbone call."""
        sizes = [len(c) for c in columns]
        z = self.embed([t for c in columns for t in c])
        return self.head(*torch.split(z, sizes))

    def outputs(self, split: Split, rows: np.ndarray | None = None, batch_size: int = 64) -> Tensor:
        """Raw head outputs for ``rows`` of ``split`` (all rows by default), in eval mode without gradients,
        batched longest first exactly as the training loop's validation and eval predictions are."""
        rows = np.arange(len(split)) if rows is None else rows
        source = BackboneSource(self.backbone, {"rows": split})
        return head_outputs(self.pooler, self.head, source, "rows", rows, batch_size).float()

    def evaluate(
        self, split: Split, metric: str, rows: np.ndarray | None = None, batch_size: int = 64
    ) -> float:
        """The task metric on ``rows`` of ``split`` (reads its labels)."""
        rows = np.arange(len(split)) if rows is None else rows
        source = BackboneSource(self.backbone, {"rows": split})
        preds = predict(self.pooler, self.head, source, "rows", rows, metric, batch_size)
        return score(metric, preds, None if split.labels is None else split.labels[rows])


def prepare_finetune(
    task: Task,
    model: str | FrozenBackbone,
    method: str,
    pooling: str | None = None,
    train_config: TrainConfig | None = None,
    options: FinetuneOptions | None = None,
) -> FinetunedModel:
    """Load the backbone in float32, make it trainable (LoRA adapters or all weights) and add pooler + head."""
    config, opts = train_config or TrainConfig(), options or FinetuneOptions()
    if method not in METHODS:
        raise InputError(f"method must be one of {METHODS}, got {method!r}")
    if method == "lora":  # before the backbone is loaded
        require_extra("peft", "LoRA fine-tuning")
    if isinstance(model, FrozenBackbone):
        backbone = model
        backbone.model.float()
    else:
        max_length = config.max_length or task.max_length  # None: the backbone's own default
        lengths: dict[str, Any] = {} if max_length is None else {"max_length": max_length}
        device = training_device(config.device)  # glot.distributed.device: the one device rule
        backbone = FrozenBackbone.from_pretrained(str(model), dtype="float32", device=device, **lengths)
    pooling = pooling or ("eos" if backbone.is_decoder else "mean")
    if pooling not in POOLINGS:
        raise InputError(f"pooling must be one of {POOLINGS} for fine-tuning, got {pooling!r}")
    encoder: nn.Module = backbone.model
    if method == "lora":
        from peft import get_peft_model

        with torch.random.fork_rng(devices=[]):  # the adapters' initial weights come from the seed alone
            torch.manual_seed(config.seed)
            encoder = get_peft_model(backbone.model, _lora_config(backbone.model, opts))
    else:
        backbone.model.requires_grad_(True)
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        pooler = build_pooler(pooling, backbone.hidden_size)
        head_options = task.head_options() | config.head_options  # e.g. the STS task's score_scale
        head = build_head(task.kind, pooler.out_dim, num_labels=task.num_labels, **head_options)
    return FinetunedModel(backbone, encoder, pooler.to(backbone.device), head.to(backbone.device))
