"""Texts -> sentence embeddings: a frozen backbone's packed token states pooled by a (trained) pooler.

The Encoder holds three attributes: ``backbone``, ``pooler`` and ``transform``, the part of a trained task head
that changes the embedding geometry (``TaskHead.embedding_transform``, e.g. the STS projection P; None for
heads that read the embedding as it is). Embeddings are ``transform(pooler(states))``, what training scored, and
saving the encoder (:func:`glot.export.pretrained.save_pretrained`) writes exactly these three.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from glot.cache import BackboneLike, CachedStates
from glot.data import check_texts
from glot.errors import InputError, InputTypeError
from glot.export import pretrained
from glot.progress import tqdm
from glot.training.precision import pool, resolve_head_dtype


class PoolerLike(Protocol):
    """What the encoder needs from a pooler (``glot.pooling.poolers.Pooler`` satisfies it)."""

    training: bool

    @property
    def out_dim(self) -> int: ...

    def forward_packed(self, x: Tensor, ptr: Tensor) -> Tensor: ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    def train(self, mode: bool = True) -> Any: ...


def _placement(module: Any) -> dict[str, Any]:
    """Device and floating dtype of a module's first parameter (CPU float32 without parameters)."""
    param = next(iter(module.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    return {"device": device, "dtype": dtype}


@contextmanager
def _inference(*modules: Any) -> Iterator[None]:
    """Eval mode + no_grad for the duration, then each module's previous mode is restored."""
    present = [m for m in modules if m is not None]
    modes = [m.training for m in present]
    for module in present:
        module.train(False)
    try:
        with torch.no_grad():
            yield
    finally:
        for module, mode in zip(present, modes, strict=True):
            module.train(mode)


class Encoder:
    """A frozen backbone plus a pooler, plus the embedding transform of a trained head (optional).

    ``transform``: a module applied to the pooled embeddings, e.g. ``head.embedding_transform()`` of the head
    the pooler was trained with (``Encoder.from_pretrained(run)`` sets it). ``head_dtype``: the pooler's
    precision, "auto" (bf16 autocast where the hardware has it), "fp32" or "bf16" (see
    :mod:`glot.training.precision`); the embeddings are float32 either way. ``from_pretrained`` uses the
    run's / saved folder's choice.
    Shapes: ``encode(texts (B,))`` -> (B, out_dim) float32, rows in the order of ``texts``.
    """

    def __init__(
        self,
        backbone: BackboneLike,
        pooler: PoolerLike,
        transform: nn.Module | None = None,
        *,
        head_dtype: str = "auto",
    ) -> None:
        if not hasattr(pooler, "forward_packed"):
            raise InputTypeError(
                f"pooler must have forward_packed(x, ptr) (a glot Pooler), got {type(pooler).__name__}; "
                "build one with glot.build_pooler(name, input_dim)"
            )
        if transform is not None and not isinstance(transform, nn.Module):
            raise InputTypeError(
                f"transform must be a torch module (e.g. head.embedding_transform()) or None, got "
                f"{type(transform).__name__}"
            )
        width = getattr(transform, "in_features", None)
        if width is not None and width != pooler.out_dim:
            raise InputError(
                f"transform takes {width}-d embeddings but the pooler gives {pooler.out_dim}; pass the "
                "embedding_transform() of the head trained with this pooler"
            )
        resolve_head_dtype(head_dtype, _placement(pooler)["device"])  # a bad or unsupported choice fails here
        self.backbone = backbone
        self.pooler = pooler
        self.transform = transform
        self.head_dtype = head_dtype

    def save_pretrained(self, directory: str | os.PathLike[str], **kwargs: Any) -> Path:
        """Save backbone reference + pooler (+ ``head=``, ``training_info=``); see
        :func:`glot.export.pretrained.save_pretrained`."""
        return pretrained.save_pretrained(self, directory, **kwargs)

    @classmethod
    def from_pretrained(cls, dir_or_repo_id: str | os.PathLike[str], **options: Any) -> Encoder:
        """Load a saved encoder folder, a finished training run or a Hub repo id.

        ``options``: ``revision``, ``token``, ``backbone``, ``dtype``, ``device``, ``max_length``, ``long``,
        ``chunk_overlap``; see :func:`glot.export.pretrained.load_parts`; ``head_dtype`` replaces the folder's
        own (a run trained in bf16 runs in bf16 where the hardware has it, else in fp32).
        """
        head_dtype = options.pop("head_dtype", None)
        bb, pooler, transform, saved = pretrained.load_parts(dir_or_repo_id, **options)
        # FrozenBackbone/Pooler satisfy the encoder's protocols at run time; mypy flags two signature nits there
        return cls(bb, pooler, transform, head_dtype=head_dtype or saved)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        name = getattr(self.backbone, "name", type(self.backbone).__name__)
        extra = "" if self.transform is None else f", transform={type(self.transform).__name__}"
        return (
            f"Encoder(backbone={name!r}, pooler={type(self.pooler).__name__}{extra}, out_dim={self.out_dim})"
        )

    @property
    def out_dim(self) -> int:
        """Width of the embeddings (the transform's output width when there is one)."""
        if self.transform is None:
            return int(self.pooler.out_dim)
        width = getattr(self.transform, "out_features", None)
        if width is None:  # a module without out_features: measure it once on a zero embedding
            with torch.no_grad():
                probe = torch.zeros(1, int(self.pooler.out_dim), **_placement(self.transform))
                width = int(self.transform(probe).shape[-1])
        return int(width)

    def _pool(self, x: Tensor, ptr: Tensor) -> Tensor:
        """Shapes: x (N, D), ptr (B + 1,) -> (B, out_dim) float32 on CPU."""
        where = _placement(self.pooler)
        compute = resolve_head_dtype(self.head_dtype, where["device"])
        z = pool(self.pooler, x.to(**where), ptr.to(where["device"]), compute)
        if self.transform is not None:
            z = self.transform(z.to(**_placement(self.transform)))
        return z.float().cpu()

    def _collect(
        self, batches: Iterable[tuple[Any, Tensor, Tensor]], n: int, normalize: bool, convert_to_numpy: bool
    ) -> np.ndarray | Tensor:
        """Pool every (indices, x, ptr) batch and scatter rows back to their original positions."""
        out = torch.zeros(n, self.out_dim)
        filled = torch.zeros(n, dtype=torch.bool)
        with _inference(self.pooler, self.transform):
            for index, x, ptr in batches:
                idx = torch.as_tensor(np.asarray(index), dtype=torch.long)
                out[idx] = self._pool(x, ptr)
                filled[idx] = True
        if not bool(filled.all()):
            missing = torch.nonzero(~filled).flatten()[:5].tolist()
            raise RuntimeError(f"the backbone returned no states for items {missing}")
        if normalize:
            out = F.normalize(out, dim=-1)
        return out.numpy() if convert_to_numpy else out

    def encode(
        self,
        texts: list[str],
        batch_size: int = 32,
        *,
        progress: bool = True,
        normalize: bool = False,
        convert_to_numpy: bool = True,
    ) -> np.ndarray | Tensor:
        """Embed texts; length-bucketed batches (``backbone.iter_packed``), original order restored.

        Shapes: texts (B,) -> (B, out_dim) float32 (np.ndarray, or a CPU tensor if not convert_to_numpy).
        """
        texts = check_texts(texts, ordered=True)  # rows come back in the order of ``texts``
        if not texts:
            empty = torch.zeros(0, self.out_dim)
            return empty.numpy() if convert_to_numpy else empty
        batches = self.backbone.iter_packed(texts, batch_size=batch_size, progress=progress, desc="encoding")
        return self._collect(batches, len(texts), normalize, convert_to_numpy)

    def encode_cached(
        self,
        cached: CachedStates,
        batch_size: int = 32,
        *,
        progress: bool = True,
        normalize: bool = False,
        convert_to_numpy: bool = True,
    ) -> np.ndarray | Tensor:
        """Embed every item of a hidden-state cache (no backbone run), in cache order.

        Shapes: cache of B items -> (B, out_dim) float32.
        """
        if cached.dim != getattr(self.backbone, "hidden_size", cached.dim):
            raise InputError(
                f"cache holds D={cached.dim} states but the backbone has hidden_size="
                f"{self.backbone.hidden_size}; build the cache with this encoder's backbone"
            )
        batches = tqdm(
            ((b.index, b.x, b.ptr) for b in cached.batches(batch_size)),
            total=-(-len(cached) // batch_size),
            disable=not progress,
            desc="encoding (cached)",
        )
        return self._collect(batches, len(cached), normalize, convert_to_numpy)
