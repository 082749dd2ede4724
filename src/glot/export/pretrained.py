"""Write a saved encoder folder and read it back (the layout is described in :mod:`glot.export.hub`).

:class:`glot.export.encoder.Encoder`'s ``save_pretrained`` / ``from_pretrained`` call this module, and
:mod:`glot.export.hub` re-exports it, so the imports run one way: hub -> encoder -> pretrained -> saved.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from glot import __version__
from glot.backbones.reference import backbone_reference, load_backbone
from glot.errors import InputError, InputTypeError
from glot.export.card import model_card
from glot.export.saved import (
    BUNDLED_DIR,
    CARD_NAME,
    CONFIG_NAME,
    FORMAT,
    TRANSFORM_DIR,
    inside,
    local_folder,
    read_parts,
    save_transform,
)
from glot.io import atomic_save_tensors, atomic_write_json, atomic_write_text, load_weights, read_json
from glot.pooling.poolers import Pooler, load_pooler
from glot.training.checkpoint import HEAD_CONFIG, HEAD_WEIGHTS, POOLER_DIR
from glot.training.finetune.export import save_trained, trained_backbone
from glot.training.heads import TaskHead, build_head
from glot.training.precision import saved_head_dtype

if TYPE_CHECKING:
    from glot.backbones.frozen import FrozenBackbone
    from glot.export.encoder import Encoder

__all__ = ["load_head", "load_parts", "save_pretrained"]


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
        "head_dtype": getattr(encoder, "head_dtype", "auto"),
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


def load_parts(
    dir_or_repo_id: str | os.PathLike[str],
    *,
    revision: str | None = None,
    token: str | None = None,
    backbone: str | None = None,
    dtype: str | None = None,
    device: str | None = None,
    **lengths: Any,
) -> tuple[FrozenBackbone, Pooler, nn.Module | None, str]:
    """(backbone, pooler, transform, head dtype) of a folder saved by :func:`save_pretrained` (local folder or
    Hub repo id) or of a training run folder (``run_config.json`` + ``pooler/``): what ``Encoder.from_pretrained``
    builds.

    ``revision``/``token`` apply to the glot repo; ``backbone`` replaces the recorded backbone id/path (e.g. a
    local copy), ``dtype``/``device`` replace the recorded backbone precision / the default device, ``lengths``
    (``max_length``, ``long``, ``chunk_overlap``) the recorded token window and long-text handling. The head
    dtype is the recorded one as :func:`glot.training.precision.saved_head_dtype` reads it.
    """
    folder, bound = local_folder(dir_or_repo_id, revision, token)
    parts = read_parts(folder, bound=bound)
    pooler = load_pooler(
        parts.pooler_dir
    )  # small and strictly validated: a damaged folder fails before the backbone
    bb: FrozenBackbone
    if parts.trained is not None:  # LoRA merged into its base, full fine-tuning, bundled: the trained weights
        bb = trained_backbone(parts, name_or_path=backbone, dtype=dtype, device=device, **lengths)
    else:
        bb = load_backbone(parts.reference, name_or_path=backbone, dtype=dtype, device=device, **lengths)
    pooler = pooler.to(bb.device)
    if pooler.input_dim != bb.hidden_size:
        raise InputError(
            f"pooler expects token states of width {pooler.input_dim}, backbone {bb.name!r} gives "
            f"{bb.hidden_size}; load the backbone the pooler was trained with"
        )
    transform = parts.transform.to(bb.device) if parts.transform is not None else None
    return bb, pooler, transform, saved_head_dtype(parts.head_dtype)


def load_head(directory: str | os.PathLike[str]) -> TaskHead | None:
    """The task head saved next to an encoder (``head_config.json`` + ``head.safetensors``), or None."""
    path = Path(directory)
    config_path = inside(path, HEAD_CONFIG, "head config")
    if not config_path.is_file():
        return None
    head = build_head(**read_json(config_path))
    load_weights(head, inside(path, HEAD_WEIGHTS, "head weights"))
    return head
