"""MTEB integration: evaluate a glot encoder (frozen backbone + trained pooler) with ``mteb.evaluate``.

```python
import mteb
from glot.integrations.mteb import GLOTMTEBEncoder

model = GLOTMTEBEncoder.from_pretrained("runs/msmarco-glot")   # a run folder, saved encoder or hub repo
results = mteb.evaluate(model, mteb.get_tasks(tasks=["STS12", "SciFact"]))
```

Embeddings are L2-normalised and compared with cosine similarity, as the paper evaluates its contrastively
trained poolers (PAPER.md, "Training objectives"). MTEB task instructions are not used: a glot backbone's own
prompt template (if any) is applied to every text. Requires ``pip install glot-pooling[mteb]``.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from glot.errors import InputError, InputTypeError
from glot.export.card import CITATION
from glot.export.encoder import Encoder

try:
    from mteb.models.abs_encoder import AbsEncoder
    from mteb.models.model_meta import ModelMeta, ScoringFunction
except ImportError as err:  # pragma: no cover - exercised only without mteb
    raise ImportError(
        "glot.integrations.mteb needs mteb >= 2; install it with: pip install 'glot-pooling[mteb]'"
    ) from err

if TYPE_CHECKING:
    from mteb.abstasks.task_metadata import TaskMetadata
    from torch.utils.data import DataLoader


__all__ = ["GLOTMTEBEncoder", "glot_model_meta"]

GLOT_CODE_URL = "https://github.com/ipsitmantri/GLOT"


def _pooler_digest(pooler: Any, transform: Any = None) -> str:
    """Short content hash of the pooler's config and weights (and of the embedding transform): a revision that
    changes whenever they do."""
    digest = hashlib.sha256()
    config = getattr(pooler, "config", None)
    if config is not None and hasattr(config, "to_dict"):
        digest.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    states = [("", pooler.state_dict())] + ([("transform.", transform.state_dict())] if transform else [])
    for prefix, state in states:
        for key, tensor in sorted(state.items()):
            digest.update((prefix + key).encode())
            digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def _slug(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "-" for c in text.rstrip("/").split("/")[-1])
    return keep.strip("-") or "model"


def glot_model_meta(
    encoder: Encoder,
    *,
    name: str | None = None,
    revision: str | None = None,
    release_date: str | None = None,
    languages: list[str] | None = None,
    license: str | None = None,
    training_datasets: set[str] | None = None,
    reference: str | None = None,
) -> ModelMeta:
    """MTEB metadata for a glot encoder; defaults are derived from the backbone and the pooler.

    ``name`` defaults to ``glot/<backbone>-<pooler>``, ``revision`` to a hash of the pooler weights (so
    result caches never mix two trainings), ``training_datasets`` should list MTEB names the pooler saw (e.g.
    ``{"MSMARCO"}``) for contamination checks. Shapes: none.
    """
    backbone, pooler = encoder.backbone, encoder.pooler
    bb_name = str(getattr(backbone, "name", "backbone"))
    pooler_name = getattr(getattr(pooler, "config", None), "name", type(pooler).__name__)
    model = getattr(backbone, "model", None)
    params = list(model.parameters()) if model is not None else []
    params += list(pooler.parameters())
    transform = getattr(encoder, "transform", None)
    params += list(transform.parameters()) if transform is not None else []
    n_bytes = sum(p.numel() * p.element_size() for p in params)
    prompt = getattr(backbone, "prompt", None)
    return ModelMeta(
        loader=None,
        name=name or f"glot/{_slug(bb_name)}-{pooler_name}",
        revision=revision or _pooler_digest(pooler, transform),
        release_date=release_date,
        languages=languages,
        n_parameters=sum(p.numel() for p in params) or None,
        memory_usage_mb=round(n_bytes / 2**20, 1) if n_bytes else None,
        max_tokens=getattr(backbone, "max_length", None),
        embed_dim=int(encoder.out_dim),
        license=license,
        open_weights=True,
        public_training_code=GLOT_CODE_URL,
        public_training_data=None,
        framework=["PyTorch"],
        reference=reference,
        similarity_fn_name=ScoringFunction.COSINE,
        use_instructions=bool(prompt),
        training_datasets=training_datasets,
        adapted_from=bb_name,
        modalities=["text"],
        model_type=["dense"],
        citation=CITATION,
    )


def _texts(inputs: DataLoader[Any]) -> list[str]:
    texts: list[str] = []
    for batch in inputs:
        if "text" not in batch:
            raise InputError(
                f"GLOTMTEBEncoder encodes text only; got a batch with keys {sorted(batch)} "
                "(choose tasks whose modality is text)"
            )
        texts.extend(str(t) for t in batch["text"])
    return texts


class GLOTMTEBEncoder(AbsEncoder):
    """An MTEB model wrapping :class:`glot.export.encoder.Encoder`; embeddings are L2-normalised (cosine).

    Shapes: ``encode(DataLoader of T texts)`` -> (T, out_dim) float32 numpy array.
    """

    def __init__(self, encoder: Encoder, *, batch_size: int = 32, **meta: Any) -> None:
        """``meta``: keyword arguments of :func:`glot_model_meta` (name, revision, languages, license, ...)."""
        if not hasattr(encoder, "encode") or not hasattr(encoder, "pooler"):
            raise InputTypeError(
                f"encoder must be a glot.export.encoder.Encoder, got {type(encoder).__name__}"
            )
        self.model = encoder
        self.batch_size = batch_size
        self.mteb_model_meta = glot_model_meta(encoder, **meta)

    @classmethod
    def from_pretrained(
        cls,
        dir_or_repo_id: str | os.PathLike[str],
        *,
        batch_size: int = 32,
        dtype: str | None = None,
        device: str | None = None,
        max_length: int | None = None,
        long: str | None = None,
        chunk_overlap: int | None = None,
        **meta: Any,
    ) -> GLOTMTEBEncoder:
        """Load a training run folder, a folder saved by ``glot.export.hub.save_pretrained``, or a Hub repo id.

        ``max_length`` / ``long`` / ``chunk_overlap`` replace the recorded token window and long-text handling
        (``long="chunk"`` embeds every token of long documents; see :mod:`glot.backbones.chunking`)."""
        lengths = {"max_length": max_length, "long": long, "chunk_overlap": chunk_overlap}
        encoder = Encoder.from_pretrained(dir_or_repo_id, dtype=dtype, device=device, **lengths)
        return cls(encoder, batch_size=batch_size, **meta)

    def encode(
        self,
        inputs: DataLoader[Any],
        *,
        task_metadata: TaskMetadata,
        hf_split: str,
        hf_subset: str,
        prompt_type: Any = None,
        **kwargs: Any,
    ) -> np.ndarray:
        """Embed every text of ``inputs`` in one length-bucketed pass (order kept). Shapes: -> (T, out_dim)."""
        texts = _texts(inputs)
        if not texts:
            return np.zeros((0, self.model.out_dim), dtype=np.float32)
        batch_size = int(kwargs.get("batch_size") or self.batch_size)
        progress = bool(kwargs.get("show_progress_bar", False))
        out = self.model.encode(texts, batch_size=batch_size, progress=progress, normalize=True)
        return np.asarray(out, dtype=np.float32)
