"""Atomic, pickle-free persistence: text, JSON, .npy and safetensors written to a temp file, then renamed.

An interrupted write leaves either the old file or the new one, never a half-written file. ``sha256_file``
checksums what was written (the hidden-state cache records and re-checks it).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from glot.errors import InputError

if TYPE_CHECKING:
    import torch

# torch and safetensors are imported inside the three tensor functions: the CLI imports this module for its
# JSON output, and `glot --help` must not pay torch's start-up (about 1 s).


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Glob matching the temp files the atomic writers below leave behind when killed mid-write.
TEMP_GLOB = ".*.tmp"


def _tmp_path(path: Path) -> Path:
    """A fresh, empty temp file beside ``path`` (same filesystem, so the final rename is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(name)


def _publish(tmp: Path, path: Path) -> None:
    """Give the finished temp file plain-open() permissions (mkstemp and safetensors use 0600), then rename."""
    os.chmod(tmp, 0o666 & ~_current_umask())
    os.replace(tmp, path)


def remove_stale_temps(folder: str | os.PathLike[str]) -> list[str]:
    """Delete the temp files a killed atomic write left in ``folder``; return their names. Call it only while
    no other writer uses the folder (e.g. holding its lock)."""
    names = []
    for tmp in Path(folder).glob(TEMP_GLOB):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            names.append(tmp.name)
    return names


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temp file beside ``path`` for writing (``mode`` "w" or "wb"); when the ``with`` block succeeds,
    fsync it and rename it onto ``path``. On any error the temp file is removed and ``path`` is left as it was.
    """
    if mode not in ("w", "wb"):
        raise InputError(f"atomic_open writes a new file: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    tmp = _tmp_path(path)
    try:
        with open(tmp, mode, encoding=None if "b" in mode else "utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        _publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temp file in the same folder + os.replace)."""
    path = Path(path)
    with atomic_open(path, "w") as fh:
        fh.write(text)
    return path


def atomic_save_npy(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Save ``array`` as a plain ``.npy`` file (``allow_pickle=False``) atomically."""
    path = Path(path)
    with atomic_open(path, "wb") as fh:
        np.lib.format.write_array(fh, array, allow_pickle=False)
    return path


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in 4 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """JSON-dump ``data`` (indented, sorted keys) to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file with an error that names the file when it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; was it written by save_pretrained?")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path} is not valid JSON ({err}); the file is corrupt, re-save it") from err


def atomic_save_tensors(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor]) -> Path:
    """Save tensors as safetensors atomically (contiguous CPU copies; shared storage is split)."""
    from safetensors.torch import save_file

    path = Path(path)
    tmp = _tmp_path(path)
    try:
        save_file({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, str(tmp))
        _publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_tensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Load a safetensors file (never unpickles). A damaged or foreign file is an InputError naming it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; expected a safetensors weight file")
    try:
        return load_file(str(path))
    except SafetensorError as err:
        raise InputError(
            f"{path} is not a valid safetensors file (truncated, or not written by glot: {err}); "
            "re-save it with the glot command or method that wrote it"
        ) from err


def load_weights(module: torch.nn.Module, path: str | os.PathLike[str]) -> torch.nn.Module:
    """Load ``path`` (safetensors) into ``module``: every key present with its shape, else one InputError
    naming the file. Keys a module drops on load itself (``_load_from_state_dict``) are not reported.
    """
    state = load_tensors(path)
    own = module.state_dict()
    wrong = [
        f"{key} {tuple(value.shape)} vs {tuple(own[key].shape)}"
        for key, value in state.items()
        if key in own and tuple(value.shape) != tuple(own[key].shape)
    ]
    if wrong:
        raise InputError(
            f"{path} does not fit its config (tensor shape in file vs expected: {', '.join(wrong[:3])}"
            f"{', ...' if len(wrong) > 3 else ''}); the weights belong to another model, re-save them"
        )
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise InputError(
            f"{path} does not fit its config (missing {missing[:5]}, unexpected {unexpected[:5]}); "
            "the weights belong to another model, re-save them"
        )
    return module
