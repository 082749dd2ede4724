"""What a saved encoder folder or a training run folder holds, read without ever leaving that folder.

Every export path (``glot.Encoder.from_pretrained``, ``glot encode``, the MTEB encoder and the
sentence-transformers export) reads a folder through :func:`read_parts`, so all of them get the same four things:

- the backbone reference (plus, for LoRA / full fine-tuning runs and folders saved from them, where the
  trained backbone weights are: an ``adapter/`` or a ``backbone/`` folder inside the folder);
- the pooler folder;
- the embedding transform: the part of the task head that changes the embedding geometry
  (``TaskHead.embedding_transform``, e.g. the STS projection P), applied after the pooler; None when the head
  leaves the embedding as it is;
- the folder itself.

Paths named inside a folder (``pooler.path``, ``transform.path``, bundled backbones, symlinks) are resolved and
must stay inside it; anything else is refused. Weights are safetensors, configs JSON: nothing is unpickled.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import huggingface_hub
from torch import nn

from glot import __version__
from glot.backbones.reference import BACKBONE_KWARGS
from glot.errors import InputError
from glot.io import atomic_save_tensors, atomic_write_json, load_weights, read_json
from glot.training.checkpoint import (
    FINETUNE_DIRS,
    HEAD_CONFIG,
    HEAD_WEIGHTS,
    METRICS_NAME,
    POOLER_DIR,
    RUN_CONFIG_NAME,
)
from glot.training.heads import build_head

__all__ = [
    "EncoderParts",
    "inside",
    "load_transform",
    "local_folder",
    "read_config",
    "read_parts",
    "read_reference",
    "save_transform",
    "tree_inside",
]

# The saved-encoder folder layout, defined here only; the names it shares with a run folder (pooler/, the
# head files) come from the run-folder layout in glot.training.checkpoint.
CONFIG_NAME = "glot_config.json"
TRANSFORM_DIR = "transform"
TRANSFORM_CONFIG = "transform_config.json"
TRANSFORM_WEIGHTS = "model.safetensors"
BUNDLED_DIR = "backbone"  # a trained backbone's weights + tokenizer, bundled into the saved folder
CARD_NAME = "README.md"
FORMAT = 1  # of glot_config.json


@dataclass
class EncoderParts:
    """The pieces of a saved encoder / run folder that rebuild its encoder (paths all inside ``root``)."""

    root: Path
    reference: dict[str, Any]
    pooler_dir: Path
    transform: nn.Module | None
    trained: str | None = None  # "lora" | "full" | "bundled": the backbone's weights are not the reference's
    weights_dir: Path | None = None  # adapter/ (lora) or a full backbone folder (full, bundled)
    head_dtype: Any = None  # the pooler precision recorded (run: train.head_dtype); None: not recorded


def inside(
    root: str | os.PathLike[str], relative: Any, what: str, bound: str | os.PathLike[str] | None = None
) -> Path:
    """``root / relative`` after checking that it stays inside ``root``.

    Raises InputError for absolute paths, ``..`` escapes and symlinks resolving outside ``bound`` (default
    ``root`` itself; a Hub download passes its cache repo folder, whose snapshot files link into ``blobs/``).
    """
    base = Path(root)
    lexical = Path(os.path.normpath(relative)) if isinstance(relative, str) and relative else None
    if lexical is None or lexical.is_absolute() or lexical.parts[:1] == ("..",):
        raise InputError(
            f"{base}: {what} path {relative!r} must be a relative path inside the folder (no '..'); re-save it"
        )
    target = base / relative
    if not target.resolve().is_relative_to(Path(bound or base).resolve()):
        raise InputError(
            f"{base}: {what} path {relative!r} leaves the folder (resolves to {target.resolve()}); a saved "
            "folder may only point inside itself: re-save it"
        )
    return target


def tree_inside(root: Path, relative: Any, what: str, bound: Path | None = None) -> Path:
    """:func:`inside` for a sub-folder and every file or link below it (symlinked folders are not followed)."""
    folder = inside(root, relative, what, bound)
    for current, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            inside(root, (Path(current) / name).relative_to(root).as_posix(), what, bound)
    return folder


# ---------------------------------------------------------------------------------------------- transform files
def save_transform(module: nn.Module, folder: Path) -> dict[str, Any]:
    """Write an embedding transform (an ``nn.Linear``) as JSON + safetensors; returns its config."""
    if not isinstance(module, nn.Linear):
        raise InputError(
            f"only a linear embedding transform (nn.Linear) can be saved, got {type(module).__name__}"
        )
    config = {"type": "linear", "in_features": module.in_features, "out_features": module.out_features,
              "bias": module.bias is not None}  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    atomic_save_tensors(folder / TRANSFORM_WEIGHTS, module.state_dict())
    atomic_write_json(folder / TRANSFORM_CONFIG, config)
    return config


def load_transform(folder: Path) -> nn.Module:
    """Inverse of :func:`save_transform`. Shapes: the module maps (B, in_features) -> (B, out_features)."""
    config = read_json(folder / TRANSFORM_CONFIG)
    if not isinstance(config, dict) or config.get("type") != "linear":
        raise InputError(f"{folder / TRANSFORM_CONFIG}: unknown transform {config!r}; expected type 'linear'")
    dims = [config.get("in_features"), config.get("out_features")]
    sizes = [d for d in dims if isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 1_000_000]
    if len(sizes) != 2 or not isinstance(config.get("bias", True), bool):
        raise InputError(
            f"{folder / TRANSFORM_CONFIG}: need in/out_features ints in [1, 10**6] and a boolean bias, got "
            f"{dims} and {config.get('bias')!r}; re-save the folder"
        )
    module = nn.Linear(sizes[0], sizes[1], bias=config.get("bias", True))
    _load_weights(module, folder / TRANSFORM_WEIGHTS)
    return module.eval()


def _load_weights(module: nn.Module, path: Path) -> None:
    load_weights(module, path)  # one InputError naming the file for damaged, foreign or wrong-shape weights


def _head_transform(root: Path, bound: Path | None) -> nn.Module | None:
    """The embedding transform of the task head saved in a run folder (None without a head or transform)."""
    config_path = inside(root, HEAD_CONFIG, "head config", bound)
    if not config_path.is_file():
        return None
    config = read_json(config_path)
    if not isinstance(config, dict):
        raise InputError(f"{config_path} is not a JSON object; it was not written by glot")
    head = build_head(**config)
    _load_weights(head, inside(root, HEAD_WEIGHTS, "head weights", bound))
    transform = head.embedding_transform()
    return transform.eval() if transform is not None else None


# ---------------------------------------------------------------------------------------------- folders
def _version() -> str:
    return __version__


def read_config(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check ``glot_config.json`` of a saved encoder folder."""
    path = Path(directory)
    if not (path / CONFIG_NAME).is_file():
        raise FileNotFoundError(
            f"{path} has no {CONFIG_NAME}: it is not a glot encoder saved by glot.export.hub.save_pretrained "
            "(or the save was interrupted; save it again)"
        )
    config = read_json(path / CONFIG_NAME)
    if not isinstance(config, dict) or "backbone" not in config:
        raise InputError(f"{path / CONFIG_NAME} has no 'backbone' section; it was not written by glot")
    if int(config.get("format", 0)) > FORMAT:
        raise InputError(
            f"{path / CONFIG_NAME} has format {config['format']}, newer than this glot ({_version()}) "
            f"reads (<= {FORMAT}); upgrade glot-pooling"
        )
    return config


def local_folder(
    dir_or_repo_id: str | os.PathLike[str], revision: str | None, token: str | None
) -> tuple[Path, Path | None]:
    """(local folder, bound for its symlinks): a folder as is, a Hub repo id downloaded (its cache repo)."""
    path = Path(dir_or_repo_id)
    if path.is_dir():
        return path, None
    name = str(dir_or_repo_id)
    if path.exists() or name.count("/") != 1 or name.startswith((".", "/", "~")):
        raise FileNotFoundError(
            f"{name!r} is neither a saved glot encoder folder nor a hub repo id 'org/name'"
        )
    snapshot = Path(huggingface_hub.snapshot_download(repo_id=name, revision=revision, token=token))
    return snapshot, snapshot.parent.parent  # models--org--name/: snapshots/<commit>/ links into blobs/


def _single_run(root: Path) -> Path:
    """``root`` itself, or its only ``seed-*`` run; several seeds are ambiguous and refused."""
    if (root / RUN_CONFIG_NAME).is_file() or (root / CONFIG_NAME).is_file():
        return root
    seeds = sorted(p.parent.name for p in root.glob("seed-*/run_config.json"))
    if len(seeds) == 1:
        return root / seeds[0]
    if seeds:
        raise InputError(
            f"{root} holds several seeds ({', '.join(seeds)}); pass one of them, e.g. {root / seeds[0]}"
        )
    return root


def _run_reference(root: Path, run_config: dict[str, Any]) -> dict[str, Any]:
    backbone = run_config.get("backbone")
    if isinstance(backbone, str):
        nested = run_config.get("backbone_kwargs") or {}
        backbone = {"name_or_path": backbone, **{k: run_config.get(k) for k in BACKBONE_KWARGS}, **nested}
    if not isinstance(backbone, dict):
        raise InputError(f"{root / RUN_CONFIG_NAME} does not name its backbone (key 'backbone')")
    name = next((backbone[k] for k in ("name_or_path", "name", "model", "source") if backbone.get(k)), None)
    if not isinstance(name, str):
        raise InputError(f"{root / RUN_CONFIG_NAME}: the 'backbone' section has no name_or_path")
    return {**backbone, "name_or_path": name}


def _run_parts(root: Path, bound: Path | None) -> EncoderParts:
    run_config = read_json(inside(root, RUN_CONFIG_NAME, "run config", bound))
    if not isinstance(run_config, dict):
        raise InputError(f"{root / RUN_CONFIG_NAME} is not a JSON object; it was not written by glot")
    if not (root / METRICS_NAME).is_file():
        raise FileNotFoundError(
            f"{root} is an unfinished run (no {METRICS_NAME}); rerun the same `glot train` command to finish it"
        )
    method = run_config.get("method")
    weights = None
    if method in FINETUNE_DIRS:
        weights = tree_inside(root, FINETUNE_DIRS[method], f"{method} weights", bound)
        if not weights.is_dir():
            raise FileNotFoundError(
                f"{root} is a {method} fine-tuning run without its {weights.name}/ folder"
            )
    train = run_config.get("train")
    train = train if isinstance(train, dict) else {}
    return EncoderParts(root, _run_reference(root, run_config), tree_inside(root, POOLER_DIR, "pooler", bound),
                        _head_transform(root, bound), method if weights is not None else None, weights,
                        train.get("head_dtype"))  # fmt: skip


def _saved_parts(root: Path, bound: Path | None) -> EncoderParts:
    inside(root, CONFIG_NAME, "config", bound)
    config = read_config(root)
    reference = config["backbone"]
    if not isinstance(reference, dict) or not isinstance(reference.get("name_or_path"), str):
        raise InputError(f"{root / CONFIG_NAME}: 'backbone' must be a reference with a name_or_path")
    pooler = config.get("pooler") or {}
    pooler_path = pooler.get("path", POOLER_DIR) if isinstance(pooler, dict) else None
    pooler_dir = tree_inside(root, pooler_path, "pooler", bound)
    section = config.get("transform")
    transform = None
    if section is not None:
        path = section.get("path") if isinstance(section, dict) else None
        transform = load_transform(tree_inside(root, path, "transform", bound))
    bundled = reference.get("bundled")
    weights = tree_inside(root, bundled, "bundled backbone", bound) if bundled is not None else None
    return EncoderParts(root, reference, pooler_dir, transform, "bundled" if weights else None, weights,
                        config.get("head_dtype"))  # fmt: skip


def read_parts(
    folder: str | os.PathLike[str], *, bound: str | os.PathLike[str] | None = None
) -> EncoderParts:
    """The parts of a saved encoder (``glot_config.json``) or a finished training run (``run_config.json``).

    Every path they name, and every file below those, must resolve inside ``bound`` (default: the folder).
    """
    root = Path(folder)
    limit = Path(bound) if bound is not None else None
    root = _single_run(root)
    if (root / CONFIG_NAME).is_file() or not (root / RUN_CONFIG_NAME).is_file():
        return _saved_parts(root, limit)
    return _run_parts(root, limit)


def read_reference(folder: str | os.PathLike[str]) -> tuple[dict[str, Any], Path]:
    """(backbone reference, pooler folder) of a saved encoder or a training run; see :func:`read_parts`."""
    parts = read_parts(folder)
    return parts.reference, parts.pooler_dir
