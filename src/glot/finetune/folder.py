"""The fine-tuning run folder (layout in :mod:`glot.finetune`): run config, reuse check, saving and loading."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from torch import nn

from glot import __version__
from glot.backbone import FrozenBackbone
from glot.data import Task
from glot.errors import InputError
from glot.finetune.lora import lora_targets
from glot.finetune.model import FinetunedModel
from glot.finetune.options import METHODS, FinetuneOptions
from glot.heads import build_head
from glot.io import atomic_save_tensors, atomic_write_json, load_tensors, read_json
from glot.poolers import load_pooler
from glot.runs import HEAD_CONFIG, HEAD_WEIGHTS, METRICS_NAME, POOLER_DIR, RUN_CONFIG_NAME
from glot.trainconfig import TrainConfig

ADAPTER_DIR = "adapter"
BACKBONE_DIR = "backbone"
EVAL_OUTPUTS = "eval_outputs.safetensors"


def _run_config(
    task: Task,
    model: FinetunedModel,
    method: str,
    config: TrainConfig,
    opts: FinetuneOptions,
    sizes: dict[str, int],
) -> dict[str, Any]:
    from glot.hub import backbone_reference

    labels = task.splits["train"].labels
    finetune: dict[str, Any] = {"method": method, "pooling": model.pooler.name, **asdict(opts)}
    if method == "lora":
        finetune["lora_targets"] = asdict(lora_targets(model.backbone.model))
    body = {
        "method": method, "finetune": finetune, "train": config.to_dict(),
        "task": {"name": task.name, "kind": task.kind, "metric": task.metric, "num_labels": task.num_labels,
                 "max_length": task.max_length, "label_names": task.label_names, "sizes": sizes,
                 "train_labels_sha256": None if labels is None else hashlib.sha256(labels.tobytes()).hexdigest()},
        "backbone": backbone_reference(model.backbone),
    }  # fmt: skip
    canon = json.loads(json.dumps(body, sort_keys=True, default=str))
    key = hashlib.sha256(json.dumps(canon, sort_keys=True).encode()).hexdigest()
    return {"format": 1, "glot_version": __version__, "key": key, **canon}


def _check_folder(run_dir: Path, run_config: dict[str, Any], overwrite: bool) -> dict[str, Any] | None:
    """Return the metrics of an identical finished run; refuse to mix a different run into ``run_dir``."""
    existing = run_dir / RUN_CONFIG_NAME
    if existing.is_file() and not overwrite:
        if read_json(existing).get("key") != run_config["key"]:
            raise InputError(f"{run_dir} holds a different run; pass a new output folder or overwrite=True")
        if (run_dir / METRICS_NAME).is_file():
            return dict(read_json(run_dir / METRICS_NAME))
    if run_dir.exists() and (overwrite or existing.is_file()):
        shutil.rmtree(run_dir)  # an unfinished run of the same config is redone from scratch (no resume)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(existing, run_config)
    return None


def _save(model: FinetunedModel, run_dir: Path, method: str) -> None:
    if method == "lora":
        save: Any = model.encoder.save_pretrained  # PeftModel: adapter weights only, safetensors
        save(str(run_dir / ADAPTER_DIR), save_embedding_layers=False)
    else:
        save = model.backbone.model.save_pretrained  # transformers 5 writes safetensors only
        save(str(run_dir / BACKBONE_DIR))
        model.backbone.tokenizer.save_pretrained(str(run_dir / BACKBONE_DIR))
    model.pooler.save_pretrained(run_dir / POOLER_DIR)
    atomic_save_tensors(run_dir / HEAD_WEIGHTS, model.head.state_dict())
    atomic_write_json(run_dir / HEAD_CONFIG, model.head.config())


def load_finetuned(run_dir: str | os.PathLike[str]) -> FinetunedModel:
    """Rebuild a fine-tuned model from its run folder (safetensors + JSON, no pickle), in eval mode."""
    from glot.hub import load_backbone

    path = Path(run_dir)
    config = read_json(path / RUN_CONFIG_NAME)
    method = config.get("method")
    if method not in METHODS:
        raise InputError(
            f"{path} is not a LoRA/full fine-tuning run (method={method!r}); use glot.runs.load_run"
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
    head.load_state_dict(load_tensors(path / HEAD_WEIGHTS))
    return FinetunedModel(backbone, encoder, load_pooler(path / POOLER_DIR), head).eval()
