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
:mod:`glot.export.card`, reading a folder's parts in :mod:`glot.export.saved`, writing and loading the folder in
:mod:`glot.export.pretrained`; all are re-exported here. This module adds the Hub side: push, upload list.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import huggingface_hub

from glot.backbones.reference import backbone_reference, load_backbone
from glot.export.card import CITATION, model_card, run_training_info
from glot.export.encoder import Encoder
from glot.export.pretrained import load_head, save_pretrained
from glot.export.saved import CARD_NAME, CONFIG_NAME, inside, read_config, read_reference
from glot.io import atomic_write_text

__all__ = [
    "CITATION",
    "CONFIG_NAME",
    "Encoder",
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


#: Load an Encoder saved by :func:`save_pretrained` (folder or Hub repo id) or a training run folder.
from_pretrained = Encoder.from_pretrained


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
    api = huggingface_hub.HfApi(token=token)  # looked up on the module: tests replace it
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
