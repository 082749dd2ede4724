"""Backbones whose weights were trained (LoRA / full fine-tuning runs, folders saved from them), as frozen
backbones for every export path (``glot.Encoder.from_pretrained``, ``glot encode``, MTEB, sentence-transformers).

A LoRA run's adapter is merged into its base model (``merge_and_unload``: W + (alpha / r) B A), so the encoder
computes exactly what :func:`glot.training.finetune.load_finetuned` computes, without PEFT at inference time. A full
fine-tuning run (or a saved folder that bundles its backbone) is loaded from its own ``backbone/`` folder.
The result is a :class:`TrainedBackbone`: saving an encoder over it bundles the weights
(:func:`glot.export.hub.save_pretrained`), because its reference alone names the untrained base model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from glot.backbones.frozen import FrozenBackbone
from glot.errors import InputError
from glot.integrations import require_extra

if TYPE_CHECKING:
    from glot.export.saved import EncoderParts

__all__ = ["TrainedBackbone", "save_trained", "trained_backbone"]


class TrainedBackbone(FrozenBackbone):
    """A frozen backbone whose weights differ from the model its reference names (they were trained).

    ``trained_from`` records how (``{"method": "lora" | "full", "base": name}``). Shapes: as FrozenBackbone.
    """

    trained_from: dict[str, Any]


def _kwargs(reference: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    from glot.backbones.reference import BACKBONE_KWARGS

    keys = [k for k in BACKBONE_KWARGS if k != "revision"]  # the bundled weights are not a hub revision
    kwargs = {k: reference[k] for k in keys if reference.get(k) is not None}
    return kwargs | {k: v for k, v in overrides.items() if v is not None}


def _wrap(backbone: FrozenBackbone, name: str, trained_from: dict[str, Any]) -> TrainedBackbone:
    """The same model and tokenizer as a TrainedBackbone named after its base (source None: in memory)."""
    out = TrainedBackbone(
        backbone.model, backbone.tokenizer, name=name, source=None, revision=None, layer=backbone.layer,
        max_length=backbone.max_length, padding_side=backbone.padding_side, append_eos=backbone.append_eos,
        prompt=backbone.prompt, long=backbone.long, chunk_overlap=backbone.chunk_overlap,
    )  # fmt: skip
    out.trained_from = trained_from
    return out


def _merged_lora(parts: EncoderParts, overrides: dict[str, Any]) -> FrozenBackbone:
    from glot.backbones.reference import load_backbone

    require_extra("peft", "loading a LoRA run")
    from peft import PeftModel

    assert parts.weights_dir is not None
    base = load_backbone(parts.reference, **overrides)
    adapted = PeftModel.from_pretrained(base.model, str(parts.weights_dir))
    base.model = adapted.merge_and_unload().eval().requires_grad_(False)
    return base


def trained_backbone(parts: EncoderParts, **overrides: Any) -> TrainedBackbone:
    """The trained backbone of a LoRA / full fine-tuning run or of a folder that bundles one.

    ``overrides``: ``dtype``, ``device`` (and ``name_or_path``, the base model of a LoRA run only).
    """
    from glot.backbones.reference import check_backbone

    reference = parts.reference
    name = str(reference.get("name_or_path"))
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if parts.trained == "lora":
        backbone = _merged_lora(parts, overrides)
        trained_from = {"method": "lora", "base": name}
    else:
        if overrides.pop("name_or_path", None) is not None:
            raise InputError(
                f"{parts.root} carries its own trained backbone weights ({parts.trained}); drop the backbone "
                "override, it would replace them"
            )
        assert parts.weights_dir is not None
        device = overrides.pop("device", None)
        backbone = FrozenBackbone.from_pretrained(
            str(parts.weights_dir), device=device, **_kwargs(reference, overrides)
        )
        trained_from = dict(reference.get("trained_from") or {"method": parts.trained, "base": name})
    check_backbone(backbone, reference)
    return _wrap(backbone, name, trained_from)


def save_trained(backbone: TrainedBackbone, folder: Path) -> None:
    """Write a trained backbone's weights (safetensors) and tokenizer into ``folder``."""
    save: Any = backbone.model.save_pretrained  # transformers: safetensors only
    save(str(folder))
    backbone.tokenizer.save_pretrained(str(folder))
