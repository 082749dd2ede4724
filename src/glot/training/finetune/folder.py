"""The fine-tuning run folder (layout in :mod:`glot.training.finetune`): run config, backbone weights, loading."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from torch import nn

from glot.backbones.frozen import FrozenBackbone
from glot.data import Task
from glot.errors import InputError
from glot.io import load_weights, read_json
from glot.pooling.poolers import load_pooler
from glot.training.checkpoint import (
    ADAPTER_DIR,
    BACKBONE_DIR,
    HEAD_CONFIG,
    HEAD_WEIGHTS,
    METRICS_NAME,
    POOLER_DIR,
    RUN_CONFIG_NAME,
    build_run_config,
)
from glot.training.config import TrainConfig
from glot.training.finetune.lora import lora_targets
from glot.training.finetune.model import FinetunedModel
from glot.training.finetune.options import METHODS, FinetuneOptions
from glot.training.heads import build_head

EVAL_OUTPUTS = "eval_outputs.safetensors"


def _run_config(
    task: Task,
    model: FinetunedModel,
    method: str,
    config: TrainConfig,
    opts: FinetuneOptions,
    sizes: dict[str, int],
) -> dict[str, Any]:
    """The run config and key, from :func:`glot.training.checkpoint.build_run_config` (the one run key of GLOT and
    fine-tuning runs) with the method and fine-tuning options added."""
    from glot.export.hub import backbone_reference

    finetune: dict[str, Any] = {"method": method, "pooling": model.pooler.name, **asdict(opts)}
    if method == "lora":
        finetune["lora_targets"] = asdict(lora_targets(model.backbone.model))
    used = [s for s in ("train", "eval") if s in task.splits]
    extra = {"method": method, "finetune": finetune}
    return build_run_config(task, config, sizes, backbone_reference(model.backbone), splits=used, extra=extra)


def save_backbone_weights(model: FinetunedModel, run_dir: Path, method: str) -> None:
    """The trained backbone weights of a finished run: the LoRA adapter (``adapter/``) or the whole model and
    its tokenizer (``backbone/``); the loop writes the pooler and head itself."""
    if method == "lora":
        save: Any = model.encoder.save_pretrained  # PeftModel: adapter weights only, safetensors
        save(str(run_dir / ADAPTER_DIR), save_embedding_layers=False)
    else:
        save = model.backbone.model.save_pretrained  # transformers 5 writes safetensors only
        save(str(run_dir / BACKBONE_DIR))
        model.backbone.tokenizer.save_pretrained(str(run_dir / BACKBONE_DIR))


def load_finetuned(run_dir: str | os.PathLike[str]) -> FinetunedModel:
    """Rebuild a fine-tuned model from its run folder (safetensors + JSON, no pickle), in eval mode."""
    from glot.export.hub import load_backbone

    path = Path(run_dir)
    config = read_json(path / RUN_CONFIG_NAME)
    method = config.get("method")
    if method not in METHODS:
        raise InputError(
            f"{path} is not a LoRA/full fine-tuning run (method={method!r}); use glot.training.checkpoint.load_run"
        )
    if not (path / METRICS_NAME).is_file():
        raise FileNotFoundError(f"{path} is unfinished (no {METRICS_NAME}); rerun the training to finish it")
    ref = config["backbone"]
    if method == "lora":
        from peft import PeftModel

        backbone = load_backbone(ref, dtype="float32")
        encoder: nn.Module = PeftModel.from_pretrained(backbone.model, str(path / ADAPTER_DIR))
    else:
        keys = ("layer", "max_length", "padding_side", "append_eos", "prompt")
        kwargs = {k: ref[k] for k in keys if ref.get(k) is not None}
        backbone = FrozenBackbone.from_pretrained(str(path / BACKBONE_DIR), dtype="float32", **kwargs)
        encoder = backbone.model
    head = build_head(**read_json(path / HEAD_CONFIG))
    load_weights(head, path / HEAD_WEIGHTS)
    return FinetunedModel(backbone, encoder, load_pooler(path / POOLER_DIR), head).eval()
