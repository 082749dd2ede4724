"""Hub-style persistence of a whole glot encoder: a backbone *reference* plus the trained pooler (and head).

A saved encoder is a small folder; the frozen backbone's weights are never copied, only named:

```
glot_config.json     format, glot version, backbone reference (id/path, revision, from_pretrained kwargs),
                     pooler summary, optional head summary, training info (data, metrics, parameters)
pooler/              pooler_config.json + model.safetensors (glot.load_pooler reads it)
transform/           optional embedding transform (transform_config.json + model.safetensors): the part of the
                     trained head that changes the embedding geometry (the STS projection P), applied after
                     the pooler
backbone/            only for a trained backbone (LoRA merged / full fine-tuning): its weights + tokenizer
head.safetensors     optional task head weights    } as a training run writes them
head_config.json     optional head architecture    }
README.md            generated model card (usage snippet, parameters, metrics, citation)
```

Every path read from a folder stays inside it (:mod:`glot.export.saved`); uploads refuse symlinks that leave it.

``from_pretrained`` takes that folder or a Hugging Face Hub repo id (fetched with
``huggingface_hub.snapshot_download``). Every file is written atomically (``glot.io``) and
``glot_config.json`` last, so an interrupted save is detected on load. No pickle anywhere.

The backbone reference (record it, load it back) lives in :mod:`glot.backbones.reference`, the model card in
:mod:`glot.export.card`, reading a folder's parts in :mod:`glot.export.saved`; all are re-exported here.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glot import __version__
from glot.backbones.reference import backbone_reference, load_backbone
from glot.errors import InputError, InputTypeError
from glot.export.card import CITATION, model_card
from glot.export.saved import (
    BUNDLED_DIR,
    CARD_NAME,
    CONFIG_NAME,
    FORMAT,
    TRANSFORM_DIR,
    inside,
    local_folder,
    read_config,
    read_parts,
    read_reference,
    save_transform,
)
from glot.io import (
    atomic_save_tensors,
    atomic_write_json,
    atomic_write_text,
    load_weights,
    read_json,
)
from glot.training.checkpoint import HEAD_CONFIG, HEAD_WEIGHTS, METRICS_NAME, POOLER_DIR, RUN_CONFIG_NAME

if TYPE_CHECKING:
    from glot.backbones.frozen import FrozenBackbone
    from glot.export.encoder import Encoder
    from glot.training.heads import TaskHead

__all__ = [
    "CITATION",
    "CONFIG_NAME",
    "backbone_reference",
    "from_pretrained",
    "load_backbone",
    "load_head",
    "model_card",
    "push_to_hub",
    "read_config",
    "read_reference",
    "run_training_info",
    "save_pretrained",
    "upload_files",
]


def _pooler_summary(pooler: Any) -> dict[str, Any]:
    config = getattr(pooler, "config", None)
    return {
        "path": POOLER_DIR,
        "name": getattr(config, "name", type(pooler).__name__),
        "input_dim": int(getattr(pooler, "input_dim", 0)),
        "out_dim": int(pooler.out_dim),
        "trainable_parameters": sum(p.numel() for p in pooler.parameters() if p.requires_grad),
        "options": config.to_dict() if config is not None and hasattr(config, "to_dict") else None,
    }


def save_pretrained(
    encoder: Encoder,
    directory: str | os.PathLike[str],
    *,
    head: TaskHead | None = None,
    training_info: dict[str, Any] | None = None,
    backbone_name: str | None = None,
) -> Path:
    """Save ``encoder`` (backbone reference + pooler) and optionally its task ``head`` into ``directory``.

    ``training_info`` is free-form JSON recorded in ``glot_config.json`` and the model card; the card reads the
    keys ``task``/``data`` (str), ``metrics`` (dict name -> number), ``hyperparameters`` (dict) and ``notes``.
    ``backbone_name`` overrides the recorded backbone id (use a hub id when sharing). Returns the folder.
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    if not hasattr(encoder.pooler, "save_pretrained"):
        raise InputTypeError(f"the encoder's pooler {type(encoder.pooler).__name__} has no save_pretrained")
    transform = getattr(encoder, "transform", None)
    if head is not None and transform is None and head.embedding_transform() is not None:
        raise InputError(
            f"the {head.kind!r} head changes the embedding geometry but this encoder does not apply it; build "
            "it with Encoder(backbone, pooler, transform=head.embedding_transform()) or load the run with "
            "Encoder.from_pretrained(run_dir)"
        )
    reference = backbone_reference(encoder.backbone, backbone_name)
    (path / CONFIG_NAME).unlink(missing_ok=True)  # a half-finished save must not look complete
    encoder.pooler.save_pretrained(path / POOLER_DIR)  # type: ignore[attr-defined]
    for stale in (TRANSFORM_DIR, BUNDLED_DIR):  # of an earlier save into the same folder
        shutil.rmtree(path / stale, ignore_errors=True)
    transform_info = None
    if transform is not None:
        transform_info = {"path": TRANSFORM_DIR, **save_transform(transform, path / TRANSFORM_DIR)}
    trained_from = getattr(encoder.backbone, "trained_from", None)
    if trained_from is not None:  # trained weights: the reference alone would name the untrained base model
        from glot.training.finetune.export import save_trained

        save_trained(encoder.backbone, path / BUNDLED_DIR)  # type: ignore[arg-type]
        reference = {**reference, "bundled": BUNDLED_DIR, "trained_from": trained_from}
    head_info = _save_head(path, head)
    config = {
        "format": FORMAT,
        "glot_version": __version__,
        "backbone": reference,
        "pooler": _pooler_summary(encoder.pooler),
        "transform": transform_info,
        "head": head_info,
        "embedding_dim": int(encoder.out_dim) if hasattr(encoder, "out_dim") else int(encoder.pooler.out_dim),
        "similarity": "cosine",
        "training": training_info,
    }
    atomic_write_text(path / CARD_NAME, model_card(config))
    atomic_write_json(path / CONFIG_NAME, config)
    return path


def _save_head(path: Path, head: TaskHead | None) -> dict[str, Any] | None:
    if head is None:  # stale head files of an earlier save into the same folder would be uploaded otherwise
        (path / HEAD_WEIGHTS).unlink(missing_ok=True)
        (path / HEAD_CONFIG).unlink(missing_ok=True)
        return None
    atomic_save_tensors(path / HEAD_WEIGHTS, head.state_dict())
    atomic_write_json(path / HEAD_CONFIG, head.config())
    return {"weights": HEAD_WEIGHTS, "config": HEAD_CONFIG, **head.config()}


def from_pretrained(
    dir_or_repo_id: str | os.PathLike[str],
    *,
    revision: str | None = None,
    token: str | None = None,
    backbone: str | None = None,
    dtype: str | None = None,
    device: str | None = None,
) -> Encoder:
    """Load an :class:`~glot.export.encoder.Encoder` saved by :func:`save_pretrained` (local folder or Hub repo id),
    or straight from a training run folder (``run_config.json`` + ``pooler/``).

    ``revision``/``token`` apply to the glot repo; ``backbone`` replaces the recorded backbone id/path (e.g. a
    local copy), ``dtype``/``device`` replace the recorded backbone precision / the default device.
    """
    from glot.export.encoder import Encoder
    from glot.pooling.poolers import load_pooler

    folder, bound = local_folder(dir_or_repo_id, revision, token)
    parts = read_parts(folder, bound=bound)
    pooler = load_pooler(
        parts.pooler_dir
    )  # small and strictly validated: a damaged folder fails before the backbone
    bb: FrozenBackbone
    if parts.trained is not None:  # LoRA merged into its base, full fine-tuning, bundled: the trained weights
        from glot.training.finetune.export import trained_backbone

        bb = trained_backbone(parts, name_or_path=backbone, dtype=dtype, device=device)
    else:
        bb = load_backbone(parts.reference, name_or_path=backbone, dtype=dtype, device=device)
    pooler = pooler.to(bb.device)
    if pooler.input_dim != bb.hidden_size:
        raise InputError(
            f"pooler expects token states of width {pooler.input_dim}, backbone {bb.name!r} gives "
            f"{bb.hidden_size}; load the backbone the pooler was trained with"
        )
    transform = parts.transform.to(bb.device) if parts.transform is not None else None
    # FrozenBackbone/Pooler satisfy the encoder's protocols at run time; mypy flags two signature nits there
    return Encoder(bb, pooler, transform)  # type: ignore[arg-type]


def load_head(directory: str | os.PathLike[str]) -> TaskHead | None:
    """The task head saved next to an encoder (``head_config.json`` + ``head.safetensors``), or None."""
    from glot.training.heads import build_head

    path = Path(directory)
    config_path = inside(path, HEAD_CONFIG, "head config")
    if not config_path.is_file():
        return None
    head = build_head(**read_json(config_path))
    load_weights(head, inside(path, HEAD_WEIGHTS, "head weights"))
    return head


def run_training_info(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``training_info`` for :func:`save_pretrained` from a ``glot train`` run (task, metrics, settings)."""
    root = Path(run_dir)
    run_config = read_json(root / RUN_CONFIG_NAME)
    metrics = read_json(root / METRICS_NAME) if (root / METRICS_NAME).is_file() else {}
    task = run_config.get("task") or {}
    name = metrics.get("metric") or task.get("metric") or "score"
    scores = {
        f"{split} {name}": metrics[split]
        for split in ("val", "eval")
        if isinstance(metrics.get(split), float)
    }
    train = run_config.get("train") or {}
    return {
        "task": task.get("name"),
        "data": task.get("info") or task.get("name"),
        "metrics": scores,
        "hyperparameters": {k: v for k, v in train.items() if isinstance(v, (int, float, str, bool))},
        "sizes": task.get("sizes"),
    }


def upload_files(directory: str | os.PathLike[str]) -> list[str]:
    """Relative paths (sorted, POSIX) that :func:`push_to_hub` uploads: every regular, non-hidden file.

    A symlink that leaves the folder is refused (InputError naming it); symlinks inside it are uploaded as
    the files they point to. Symlinked folders are never followed.
    """
    root = Path(directory)
    read_config(root)  # refuse to upload a folder that is not a complete saved encoder
    files = []
    for folder, dirs, names in os.walk(root, followlinks=False):
        for name in sorted(dirs + names):
            item = Path(folder) / name
            rel = item.relative_to(root)
            if any(part.startswith(".") for part in rel.parts):
                continue
            if item.is_symlink():
                inside(root, rel.as_posix(), "symlink")  # refuses one pointing out of the folder
            if name in names and item.is_file():
                files.append(rel.as_posix())
        dirs[:] = [d for d in dirs if not d.startswith(".")]
    return sorted(files)


def push_to_hub(
    encoder_dir: str | os.PathLike[str],
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str = "Upload glot encoder",
    dry_run: bool = False,
) -> list[str]:
    """Upload a saved encoder folder to the Hub repo ``repo_id`` (created if missing); returns the files.

    ``dry_run=True`` contacts nothing and only returns the list of files that would be uploaded. Hidden
    files (temporary files of interrupted writes, ``.cache``) are never uploaded.
    """
    files = upload_files(encoder_dir)
    if dry_run:
        return files
    config = read_config(encoder_dir)  # the card's usage snippet now names the repo
    ref = config["backbone"]
    if Path(ref["name_or_path"]).is_absolute() and not ref.get("hub_id") and not ref.get("bundled"):
        warnings.warn(
            f"the backbone is recorded as the local path {ref['name_or_path']!r}, which other machines lack; "
            "save again with save_pretrained(..., backbone_name='org/model') before sharing",
            UserWarning,
            stacklevel=2,
        )
    atomic_write_text(Path(encoder_dir) / CARD_NAME, model_card(config, repo_id))
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id=repo_id, private=private, exist_ok=True, repo_type="model")
    api.upload_folder(
        repo_id=repo_id,
        folder_path=str(encoder_dir),
        revision=revision,
        commit_message=commit_message,
        allow_patterns=files,
        repo_type="model",
    )
    return files
