"""A backbone *reference*: what names a frozen backbone on disk or on the Hub, and how to load the same one again.

Saved encoders (:mod:`glot.hub`) and training runs record a reference instead of copying the backbone's weights;
:func:`load_backbone` rebuilds the backbone from it and refuses one whose width, depth or type differ.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from glot.errors import InputError

if TYPE_CHECKING:
    from glot.backbone import FrozenBackbone

#: ``FrozenBackbone.from_pretrained`` keyword arguments recorded so that a load rebuilds the same token states.
BACKBONE_KWARGS = ("revision", "dtype", "layer", "max_length", "padding_side", "append_eos", "prompt")


def backbone_reference(backbone: Any, name: str | None = None) -> dict[str, Any]:
    """What identifies a frozen backbone on disk or on the Hub, and how to load it again.

    ``name`` overrides the recorded id (e.g. the hub id of a model that was loaded from a local folder).
    Works for any object with ``FrozenBackbone``'s attributes. Shapes: none.
    """
    from glot import zoo
    from glot.dtypes import dtype_name

    ref_name = name if name is not None else getattr(backbone, "name", None)
    if not ref_name:
        raise InputError("the backbone has no name; pass backbone_name='org/model' (a hub id or local path)")
    dtype = getattr(backbone, "dtype", None)
    zoo_specs = {info.alias: info.hf_id for info in zoo.list_models()}
    fingerprint = backbone.fingerprint() if hasattr(backbone, "fingerprint") else None
    return {
        "name_or_path": str(ref_name),
        "hub_id": zoo_specs.get(str(ref_name)),  # the Hub id of a zoo alias, a fallback when it is absent
        "revision": getattr(backbone, "revision", None),
        "dtype": dtype_name(dtype) if dtype is not None else "auto",
        "layer": getattr(backbone, "layer", -1),
        "max_length": getattr(backbone, "max_length", 128),
        "padding_side": getattr(backbone, "padding_side", None),
        "append_eos": getattr(backbone, "append_eos", None),
        "prompt": getattr(backbone, "prompt", None),
        "hidden_size": int(backbone.hidden_size),
        "model_type": (fingerprint or {}).get("model_type"),
        "num_layers": (fingerprint or {}).get("num_layers"),
        "fingerprint": fingerprint,
    }


def load_backbone(reference: dict[str, Any], **overrides: Any) -> FrozenBackbone:
    """Rebuild the frozen backbone a reference names; ``overrides`` replace recorded kwargs (e.g. device).

    A zoo alias that is not installed here falls back to its recorded Hub id.
    """
    from glot.backbone import FrozenBackbone

    name = overrides.pop("name_or_path", None) or reference["name_or_path"]
    kwargs = {k: reference[k] for k in BACKBONE_KWARGS if reference.get(k) is not None}
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    try:
        backbone = FrozenBackbone.from_pretrained(name, **kwargs)
    except (ImportError, OSError):
        fallback = reference.get("hub_id")
        if not fallback or fallback == name:
            raise
        backbone = FrozenBackbone.from_pretrained(fallback, **kwargs)
    _check_backbone(backbone, reference)
    return backbone


def _check_backbone(backbone: FrozenBackbone, reference: dict[str, Any]) -> None:
    found = {"hidden_size": backbone.hidden_size, "num_layers": getattr(backbone, "num_layers", None),
             "model_type": getattr(backbone.config, "model_type", None)}  # fmt: skip
    for key, got in found.items():
        want = reference.get(key)
        if want is not None and got is not None and want != got:
            raise InputError(
                f"backbone {backbone.name!r} has {key}={got!r} but the pooler was trained on a backbone with "
                f"{key}={want!r} ({reference['name_or_path']!r}); load the backbone it was trained with"
            )
