"""A backbone *reference*: what names a frozen backbone on disk or on the Hub, and how to load the same one again.

Saved encoders (:mod:`glot.export.hub`) and training runs record a reference instead of copying the backbone's weights;
:func:`load_backbone` rebuilds the backbone from it and refuses one whose width, depth or type differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import huggingface_hub

from glot.backbones import introspect as _hf
from glot.backbones import zoo
from glot.backbones.dtypes import dtype_name
from glot.backbones.frozen import FrozenBackbone
from glot.errors import InputError

#: ``FrozenBackbone.from_pretrained`` keyword arguments recorded so that a load rebuilds the same token states.
BACKBONE_KWARGS = ("revision", "dtype", "layer", "max_length", "padding_side", "append_eos", "prompt", "long",
                   "chunk_overlap")  # fmt: skip


def backbone_reference(backbone: Any, name: str | None = None) -> dict[str, Any]:
    """What identifies a frozen backbone on disk or on the Hub, and how to load it again.

    ``name`` overrides the recorded id (e.g. the hub id of a model that was loaded from a local folder).
    Works for any object with ``FrozenBackbone``'s attributes. Shapes: none.
    """
    ref_name = name if name is not None else getattr(backbone, "name", None)
    if not ref_name:
        raise InputError("the backbone has no name; pass backbone_name='org/model' (a hub id or local path)")
    dtype = getattr(backbone, "dtype", None)
    zoo_specs = {info.alias: info.hf_id for info in zoo.list_models()}
    fingerprint = backbone.fingerprint() if hasattr(backbone, "fingerprint") else None
    ref_name = str(ref_name)
    long = getattr(backbone, "long", "truncate")  # recorded only when chunking: older references stay equal
    chunking = {} if long == "truncate" else {"long": long, "chunk_overlap": backbone.chunk_overlap}
    return {
        "name_or_path": ref_name,
        # the Hub id of a zoo alias (a fallback when it is absent) or of a name that already is one
        "hub_id": zoo_specs.get(ref_name) or (ref_name if ref_name in zoo_specs.values() else None),
        "revision": getattr(backbone, "revision", None),
        "dtype": dtype_name(dtype) if dtype is not None else "auto",
        "layer": getattr(backbone, "layer", -1),
        "max_length": getattr(backbone, "max_length", 128),
        "padding_side": getattr(backbone, "padding_side", None),
        "append_eos": getattr(backbone, "append_eos", None),
        "prompt": getattr(backbone, "prompt", None),
        **chunking,
        "hidden_size": int(backbone.hidden_size),
        "model_type": (fingerprint or {}).get("model_type"),
        "num_layers": (fingerprint or {}).get("num_layers"),
        "fingerprint": fingerprint,
    }


def _expected_digest(reference: dict[str, Any]) -> str | None:
    """The content digest of the weights folder the reference was recorded from, if it has one."""
    weights = (reference.get("fingerprint") or {}).get("weights")
    return weights.get("sha256") if isinstance(weights, dict) else None


def _candidates(reference: dict[str, Any], name: str) -> list[str]:
    """Local folders that may hold the referenced weights: zoo models of that Hub id, the Hub cache."""
    ids = {name, reference.get("hub_id")} - {None}
    found: list[str | None] = [
        info.path for info in zoo.list_models() if info.path and (info.hf_id in ids or info.alias in ids)
    ]
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        try:
            cached = huggingface_hub.snapshot_download(
                name, revision=reference.get("revision"), local_files_only=True
            )
        except Exception:  # noqa: BLE001 - not in the local Hub cache (any reason): no candidate
            cached = None
        found.append(cached)
    return [str(p) for p in found if p is not None]


def resolve_local(reference: dict[str, Any], name: str | None = None) -> str | None:
    """A local folder whose weights match the reference's recorded fingerprint (content digest), or None.

    Checked BEFORE going online, so a folder saved with ``backbone_name="org/model"`` on a machine that holds
    ``org/model`` as a zoo package (or in the Hub cache) loads offline. Nothing unverified is returned.
    """
    name = name or str(reference["name_or_path"])
    want = _expected_digest(reference)
    if want is None or Path(name).is_dir():
        return None
    for folder in _candidates(reference, name):
        if Path(folder).is_dir() and _hf.folder_digest(folder)["sha256"] == want:
            return folder
    return None


def load_backbone(reference: dict[str, Any], **overrides: Any) -> FrozenBackbone:
    """Rebuild the frozen backbone a reference names; ``overrides`` replace recorded kwargs (e.g. device).

    Order: an explicit ``name_or_path`` override; a local folder or zoo copy whose weights match the recorded
    fingerprint (:func:`resolve_local`, no network); the recorded name (a local path, zoo alias or Hub id);
    for a zoo alias that is not installed here, its recorded Hub id.
    """
    override = overrides.pop("name_or_path", None)
    recorded = str(reference["name_or_path"])
    name = override or resolve_local(reference) or recorded
    kwargs = {k: reference[k] for k in BACKBONE_KWARGS if reference.get(k) is not None}
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    if name != recorded and not override:
        kwargs.pop("revision", None)  # a verified local copy: the Hub revision does not apply to it
    try:
        backbone = FrozenBackbone.from_pretrained(name, **kwargs)
    except (ImportError, OSError):
        fallback = reference.get("hub_id")
        if not fallback or fallback == name:
            raise
        backbone = FrozenBackbone.from_pretrained(fallback, **kwargs)
    if not override:
        backbone.name = recorded  # the identity it was saved under, whichever verified copy served it
    check_backbone(backbone, reference)
    return backbone


def check_backbone(backbone: FrozenBackbone, reference: dict[str, Any]) -> None:
    """Refuse a backbone whose width, depth or model type differ from what the reference recorded."""
    found = {"hidden_size": backbone.hidden_size, "num_layers": getattr(backbone, "num_layers", None),
             "model_type": getattr(backbone.config, "model_type", None)}  # fmt: skip
    for key, got in found.items():
        want = reference.get(key)
        if want is not None and got is not None and want != got:
            raise InputError(
                f"backbone {backbone.name!r} has {key}={got!r} but the pooler was trained on a backbone with "
                f"{key}={want!r} ({reference['name_or_path']!r}); load the backbone it was trained with"
            )
