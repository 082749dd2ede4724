"""Export a trained glot run (or a saved encoder folder) as a sentence-transformers model folder.

The model computes what ``glot.Encoder.from_pretrained(run_dir)`` computes: the same backbone weights (the
trained ones for LoRA / full fine-tuning runs), the pooler, and the trained head's embedding transform (a
``Dense`` module, e.g. the STS projection). Re-exported as
``glot.integrations.sentence_transformers.run_to_sentence_transformer``. Requires ``pip install glot-pooling[st]``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sentence_transformers import SentenceTransformer
from torch import nn

from glot import __version__
from glot.backbones import zoo
from glot.backbones.dtypes import resolve_dtype
from glot.backbones.reference import resolve_local
from glot.errors import InputError
from glot.export.card import st_card_for
from glot.export.saved import read_parts
from glot.integrations.sentence_transformers import GLOTPooling
from glot.io import atomic_write_json, atomic_write_text
from glot.pooling.poolers import load_pooler
from glot.training.finetune.export import trained_backbone

try:  # this module is the [st] extra itself: sentence-transformers is required here
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Transformer
except ImportError:  # pragma: no cover - sentence-transformers < 6
    from sentence_transformers.models import Dense, Normalize, Transformer  # type: ignore[no-redef]

__all__ = ["run_to_sentence_transformer"]


def _prompt_prefix(prompt: str | None, allow_mismatch: bool) -> str | None:
    """glot prompt template -> sentence-transformers prompt (a prefix); only ``"prefix{text}"`` maps exactly."""
    if not prompt:
        return None
    if prompt.endswith("{text}"):
        return prompt[: -len("{text}")]
    if not allow_mismatch:
        raise InputError(
            f"prompt template {prompt!r} puts text after '{{text}}'; sentence-transformers prompts are prefixes "
            "only, so the exported model would see different tokens (pass allow_mismatch=True to drop it)"
        )
    return None


def _source(parts: Any, backbone: str | None, dtype: str | None) -> tuple[str, Any]:
    """(folder or id the Transformer loads, the trained backbone whose weights replace it, or None)."""
    ref = parts.reference
    trained = None
    if parts.trained in ("full", "bundled"):  # the trained backbone folder is a complete HF model folder
        if backbone is not None:
            raise InputError(
                f"{parts.root} carries its own trained backbone weights ({parts.trained}); drop backbone=, it "
                "would replace them"
            )
        return str(parts.weights_dir), None
    if parts.trained == "lora":  # the base model's folder, its weights replaced by the merged ones
        trained = trained_backbone(parts, name_or_path=backbone, dtype=dtype, device="cpu")
    name = str(backbone or ref["name_or_path"])
    local = None if backbone else resolve_local(ref)  # a verified local copy before the Hub (offline too)
    return str(local or zoo.resolve(name)), trained


def _modules(parts: Any, transformer: nn.Module, layer: int, normalize: bool) -> list[nn.Module]:
    """GLOTPooling -> Dense (the trained head's embedding transform, if any) -> Normalize after the Transformer."""
    modules: list[nn.Module] = [
        transformer,
        GLOTPooling.from_pooler(load_pooler(parts.pooler_dir), layer=layer),
    ]
    transform = parts.transform
    if transform is not None:
        if not isinstance(transform, nn.Linear):
            raise InputError(f"only a linear embedding transform exports as a Dense module, got {transform}")
        modules.append(
            Dense(transform.in_features, transform.out_features, bias=transform.bias is not None,
                  activation_function=nn.Identity(), init_weight=transform.weight.detach().clone(),
                  init_bias=None if transform.bias is None else transform.bias.detach().clone())
        )  # fmt: skip
    if normalize:
        modules.append(Normalize())
    return modules


def run_to_sentence_transformer(
    run_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    normalize: bool = True,
    dtype: str | None = None,
    backbone: str | None = None,
    allow_mismatch: bool = False,
) -> Path:
    """Export a trained glot run (or a folder from ``glot.export.hub.save_pretrained``) as a SentenceTransformer folder.

    The folder holds Transformer (a full copy of the backbone; for LoRA / full fine-tuning runs the trained
    weights) -> GLOTPooling -> Dense (the trained head's embedding transform, e.g. the STS projection) ->
    Normalize (``normalize``) and loads with ``SentenceTransformer(out_dir, trust_remote_code=True)``; it
    computes what ``glot.Encoder.from_pretrained(run_dir)`` computes. ``dtype`` / ``backbone`` replace the
    recorded backbone precision / id or path. Settings sentence-transformers cannot reproduce (a prompt with
    text after ``{text}``, glot's appended EOS) raise ValueError unless ``allow_mismatch=True``.
    """
    parts = read_parts(run_dir)
    ref = parts.reference
    if ref.get("append_eos") and not allow_mismatch:
        raise InputError(
            "this run appended EOS to every text (decoder backbone); a sentence-transformers Transformer does "
            "not, so its states would differ -- pass allow_mismatch=True to export anyway"
        )
    prefix = _prompt_prefix(ref.get("prompt"), allow_mismatch)
    layer = -1 if ref.get("layer") is None else int(ref["layer"])
    source, trained = _source(parts, backbone, dtype)
    transformer = Transformer(
        source,
        max_seq_length=int(ref.get("max_length") or 128),
        model_kwargs={"dtype": resolve_dtype(dtype or ref.get("dtype") or "float32")},
        processor_kwargs={"padding_side": "right"},  # positions 0..n-1 for real tokens, as glot feeds them
        config_kwargs={"output_hidden_states": True} if layer != -1 else None,
    )
    if trained is not None:  # the merged LoRA weights replace the base model's
        transformer.model.load_state_dict(trained.model.state_dict(), strict=True)
    prompts = {"glot": prefix} if prefix else None
    model = SentenceTransformer(
        modules=_modules(parts, transformer, layer, normalize), prompts=prompts,
        default_prompt_name="glot" if prefix else None, similarity_fn_name="cosine", device="cpu",
    )  # fmt: skip
    out = Path(out_dir)
    model.save(str(out))
    dim = int(model.get_sentence_embedding_dimension() or 0)
    atomic_write_text(out / "README.md", st_card_for(run_dir, parts.pooler_dir, ref, dim))  # glot's card
    atomic_write_json(out / "glot_export.json", {"glot_version": __version__, "backbone": ref})
    return out
