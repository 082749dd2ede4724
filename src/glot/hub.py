"""Hub-style persistence of a whole glot encoder: a backbone *reference* plus the trained pooler (and head).

A saved encoder is a small folder; the frozen backbone's weights are never copied, only named:

```
glot_config.json     format, glot version, backbone reference (id/path, revision, from_pretrained kwargs),
                     pooler summary, optional head summary, training info (data, metrics, parameters)
pooler/              pooler_config.json + model.safetensors (glot.load_pooler reads it)
head.safetensors     optional task head weights    } as a training run writes them
head_config.json     optional head architecture    }
README.md            generated model card (usage snippet, parameters, metrics, citation)
```

``from_pretrained`` takes that folder or a Hugging Face Hub repo id (fetched with
``huggingface_hub.snapshot_download``). Every file is written atomically (``glot.io``) and
``glot_config.json`` last, so an interrupted save is detected on load. No pickle anywhere.

The backbone reference (record it, load it back) lives in :mod:`glot.backbone_ref`, the model card in
:mod:`glot.card`; both are re-exported here.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glot import __version__
from glot.backbone_ref import BACKBONE_KWARGS, backbone_reference, load_backbone
from glot.card import CITATION, model_card
from glot.errors import InputError, InputTypeError
from glot.io import atomic_save_tensors, atomic_write_json, atomic_write_text, load_tensors, read_json

if TYPE_CHECKING:
    from glot.encoder import Encoder
    from glot.heads import TaskHead

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

CONFIG_NAME = "glot_config.json"
POOLER_DIR = "pooler"
HEAD_WEIGHTS = "head.safetensors"
HEAD_CONFIG = "head_config.json"
CARD_NAME = "README.md"
FORMAT = 1


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
    reference = backbone_reference(encoder.backbone, backbone_name)
    (path / CONFIG_NAME).unlink(missing_ok=True)  # a half-finished save must not look complete
    encoder.pooler.save_pretrained(path / POOLER_DIR)  # type: ignore[attr-defined]
    head_info = None
    if head is not None:
        atomic_save_tensors(path / HEAD_WEIGHTS, head.state_dict())
        atomic_write_json(path / HEAD_CONFIG, head.config())
        head_info = {"weights": HEAD_WEIGHTS, "config": HEAD_CONFIG, **head.config()}
    else:  # stale head files of an earlier save into the same folder would be uploaded otherwise
        (path / HEAD_WEIGHTS).unlink(missing_ok=True)
        (path / HEAD_CONFIG).unlink(missing_ok=True)
    config = {
        "format": FORMAT,
        "glot_version": __version__,
        "backbone": reference,
        "pooler": _pooler_summary(encoder.pooler),
        "head": head_info,
        "embedding_dim": int(encoder.pooler.out_dim),
        "similarity": "cosine",
        "training": training_info,
    }
    atomic_write_text(path / CARD_NAME, model_card(config))
    atomic_write_json(path / CONFIG_NAME, config)
    return path


def read_config(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check ``glot_config.json`` of a saved encoder folder."""
    path = Path(directory)
    if not (path / CONFIG_NAME).is_file():
        raise FileNotFoundError(
            f"{path} has no {CONFIG_NAME}: it is not a glot encoder saved by glot.hub.save_pretrained "
            "(or the save was interrupted; save it again)"
        )
    config = read_json(path / CONFIG_NAME)
    if not isinstance(config, dict) or "backbone" not in config:
        raise InputError(f"{path / CONFIG_NAME} has no 'backbone' section; it was not written by glot")
    if int(config.get("format", 0)) > FORMAT:
        raise InputError(
            f"{path / CONFIG_NAME} has format {config['format']}, newer than this glot ({__version__}) "
            f"reads (<= {FORMAT}); upgrade glot-pooling"
        )
    return config


def _local_folder(dir_or_repo_id: str | os.PathLike[str], revision: str | None, token: str | None) -> Path:
    path = Path(dir_or_repo_id)
    if path.is_dir():
        return path
    name = str(dir_or_repo_id)
    if path.exists() or name.count("/") != 1 or name.startswith((".", "/", "~")):
        raise FileNotFoundError(
            f"{name!r} is neither a saved glot encoder folder nor a hub repo id 'org/name'"
        )
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id=name, revision=revision, token=token))


def read_reference(folder: str | os.PathLike[str]) -> tuple[dict[str, Any], Path]:
    """(backbone reference, pooler folder) of a saved encoder (``glot_config.json``) or a training run
    (``run_config.json`` whose ``backbone`` is a reference dict or a name, with kwargs beside it)."""
    root = Path(folder)
    seeds = sorted(p.parent.name for p in root.glob("seed-*/run_config.json"))
    if seeds and not (root / "run_config.json").is_file():
        raise InputError(
            f"{root} holds several seeds ({', '.join(seeds)}); pass one of them, e.g. {root / seeds[0]}"
        )
    if (root / CONFIG_NAME).is_file() or not (root / "run_config.json").is_file():
        config = read_config(root)
        return config["backbone"], root / config.get("pooler", {}).get("path", POOLER_DIR)
    run_config = read_json(root / "run_config.json")
    backbone = run_config.get("backbone")
    if isinstance(backbone, str):
        nested = run_config.get("backbone_kwargs") or {}
        backbone = {"name_or_path": backbone, **{k: run_config.get(k) for k in BACKBONE_KWARGS}, **nested}
    if not isinstance(backbone, dict):
        raise InputError(f"{root / 'run_config.json'} does not name its backbone (key 'backbone')")
    name = next((backbone[k] for k in ("name_or_path", "name", "model", "source") if backbone.get(k)), None)
    if name is None:
        raise InputError(f"{root / 'run_config.json'}: the 'backbone' section has no name_or_path")
    return {**backbone, "name_or_path": name}, root / POOLER_DIR


def from_pretrained(
    dir_or_repo_id: str | os.PathLike[str],
    *,
    revision: str | None = None,
    token: str | None = None,
    backbone: str | None = None,
    dtype: str | None = None,
    device: str | None = None,
) -> Encoder:
    """Load an :class:`~glot.encoder.Encoder` saved by :func:`save_pretrained` (local folder or Hub repo id),
    or straight from a training run folder (``run_config.json`` + ``pooler/``).

    ``revision``/``token`` apply to the glot repo; ``backbone`` replaces the recorded backbone id/path (e.g. a
    local copy), ``dtype``/``device`` replace the recorded backbone precision / the default device.
    """
    from glot.encoder import Encoder
    from glot.poolers import load_pooler

    reference, pooler_dir = read_reference(_local_folder(dir_or_repo_id, revision, token))
    bb = load_backbone(reference, name_or_path=backbone, dtype=dtype, device=device)
    pooler = load_pooler(pooler_dir, map_location=bb.device)
    if pooler.input_dim != bb.hidden_size:
        raise InputError(
            f"pooler expects token states of width {pooler.input_dim}, backbone {bb.name!r} gives "
            f"{bb.hidden_size}; load the backbone the pooler was trained with"
        )
    # FrozenBackbone/Pooler satisfy the encoder's protocols at run time; mypy flags two signature nits there
    return Encoder(bb, pooler)  # type: ignore[arg-type]


def load_head(directory: str | os.PathLike[str]) -> TaskHead | None:
    """The task head saved next to an encoder (``head_config.json`` + ``head.safetensors``), or None."""
    from glot.heads import build_head

    path = Path(directory)
    if not (path / HEAD_CONFIG).is_file():
        return None
    head = build_head(**read_json(path / HEAD_CONFIG))
    head.load_state_dict(load_tensors(path / HEAD_WEIGHTS), strict=True)
    return head


def run_training_info(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``training_info`` for :func:`save_pretrained` from a ``glot train`` run (task, metrics, settings)."""
    root = Path(run_dir)
    run_config = read_json(root / "run_config.json")
    metrics = read_json(root / "metrics.json") if (root / "metrics.json").is_file() else {}
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
    """Relative paths (sorted, POSIX) that :func:`push_to_hub` uploads: every regular, non-hidden file."""
    root = Path(directory)
    read_config(root)  # refuse to upload a folder that is not a complete saved encoder
    files = []
    for item in sorted(root.rglob("*")):
        rel = item.relative_to(root)
        if item.is_file() and not any(part.startswith(".") for part in rel.parts):
            files.append(rel.as_posix())
    return files


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
    if Path(ref["name_or_path"]).is_absolute() and not ref.get("hub_id"):
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
