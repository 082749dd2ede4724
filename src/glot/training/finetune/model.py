"""The fine-tuned model: a trainable backbone (plain or PEFT-wrapped) + pooler + task head."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from glot.backbones import introspect as _hf
from glot.backbones.frozen import FrozenBackbone
from glot.data import Split, Task
from glot.errors import InputError
from glot.integrations import require_extra
from glot.pooling.packing import pack
from glot.pooling.poolers import Pooler, build_pooler
from glot.training.config import TrainConfig
from glot.training.finetune.lora import _lora_config
from glot.training.finetune.options import METHODS, POOLINGS, FinetuneOptions
from glot.training.heads import TaskHead, build_head
from glot.training.metrics import compute

COLUMNS = ("texts", "texts_pair", "negatives")


class FinetunedModel(nn.Module):
    """A trainable backbone (plain or PEFT-wrapped) + pooler + task head.

    Shapes: texts of each column (B,) -> z (B, D) per column -> head output (task-dependent, e.g. (B, C)).
    """

    def __init__(self, backbone: FrozenBackbone, encoder: nn.Module, pooler: Pooler, head: TaskHead) -> None:
        super().__init__()
        self.backbone = backbone  # tokenizer + settings; its .model is the (possibly adapted) base model
        self.encoder = encoder
        self.pooler = pooler
        self.head = head
        accepted = _hf.forward_params(backbone.model)
        self._token_types = "token_type_ids" in accepted
        self._positions = "position_ids" in accepted and not _hf.derives_positions_from_ids(backbone.model)

    def embed(self, texts: list[str]) -> Tensor:
        """Pooled embeddings, with gradients when training. Shapes: texts (B,) -> (B, D)."""
        enc = self.backbone.tokenize(texts)
        device = self.backbone.device
        mask = enc["attention_mask"].to(device)
        kwargs: dict[str, Any] = {"input_ids": enc["input_ids"].to(device), "attention_mask": mask}
        if self._token_types and "token_type_ids" in enc:
            kwargs["token_type_ids"] = enc["token_type_ids"].to(device)
        if self._positions:  # left padding: real tokens sit at positions 0..n-1, as in FrozenBackbone
            kwargs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)
        last = self.backbone.layer in (-1, self.backbone.num_layers)
        out = self.encoder(**kwargs, output_hidden_states=not last, return_dict=True)
        hidden = out.last_hidden_state if last else out.hidden_states[self.backbone.layer]
        return self.pooler.forward_packed(*pack(hidden.float(), mask.bool()))

    def forward(self, columns: list[list[str]]) -> Tensor:
        """Head output for one batch; all text columns (texts, pair, negatives) go through ONE backbone call."""
        sizes = [len(c) for c in columns]
        z = self.embed([t for c in columns for t in c])
        return self.head(*torch.split(z, sizes))

    def outputs(self, split: Split, rows: np.ndarray | None = None, batch_size: int = 64) -> Tensor:
        """Raw head outputs for ``rows`` of ``split`` (all rows by default), in eval mode without gradients."""
        rows = np.arange(len(split)) if rows is None else rows
        self.eval()
        zs = []
        with torch.no_grad():
            for texts in _columns(split, rows):  # longest first, so each batch pads little (like iter_packed)
                order = np.argsort([-len(t) for t in texts], kind="stable")
                z = torch.cat([self.embed([texts[i] for i in order[s : s + batch_size]])
                               for s in range(0, len(order), batch_size)])  # fmt: skip
                zs.append(z[torch.from_numpy(np.argsort(order))])
            return self.head(*zs).float()

    def evaluate(
        self, split: Split, metric: str, rows: np.ndarray | None = None, batch_size: int = 64
    ) -> float:
        """The task metric on ``rows`` of ``split`` (reads its labels)."""
        rows = np.arange(len(split)) if rows is None else rows
        out = self.outputs(split, rows, batch_size)
        return _score(self.head, metric, out, None if split.labels is None else split.labels[rows])


def _columns(split: Split, rows: np.ndarray) -> list[list[str]]:
    present = [getattr(split, c) for c in COLUMNS if getattr(split, c) is not None]
    return [[col[i] for i in rows.tolist()] for col in present]


def _score(head: TaskHead, metric: str, output: Tensor, labels: np.ndarray | None) -> float:
    preds = output.numpy() if metric == "mrr" else head.predict(output)
    return float(compute(metric, preds, None if metric == "mrr" else labels))


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
        backbone = FrozenBackbone.from_pretrained(str(model), dtype="float32", **lengths)
    pooling = pooling or ("eos" if backbone.is_decoder else "mean")
    if pooling not in POOLINGS:
        raise InputError(f"pooling must be one of {POOLINGS} for fine-tuning, got {pooling!r}")
    encoder: nn.Module = backbone.model
    if method == "lora":
        from peft import get_peft_model

        encoder = get_peft_model(backbone.model, _lora_config(backbone.model, opts))
    else:
        backbone.model.requires_grad_(True)
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        pooler = build_pooler(pooling, backbone.hidden_size)
        head_options = task.head_options() | config.head_options  # e.g. the STS task's score_scale
        head = build_head(task.kind, pooler.out_dim, num_labels=task.num_labels, **head_options)
    return FinetunedModel(backbone, encoder, pooler, head)
