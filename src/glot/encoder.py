"""Texts -> sentence embeddings: a frozen backbone's packed token states pooled by a (trained) pooler.

The Encoder holds two attributes, ``backbone`` and ``pooler``, and nothing else, so that saving it later means
saving the backbone's fingerprint/name and ``pooler.save_pretrained`` side by side.
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

from glot.cache import BackboneLike, CachedStates, check_texts
from glot.errors import InputError, InputTypeError


class PoolerLike(Protocol):
    """What the encoder needs from a pooler (``glot.poolers.Pooler`` satisfies it)."""

    training: bool

    @property
    def out_dim(self) -> int: ...

    def forward_packed(self, x: Tensor, ptr: Tensor) -> Tensor: ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    def train(self, mode: bool = True) -> Any: ...


@contextmanager
def _inference(pooler: PoolerLike) -> Iterator[None]:
    """Eval mode + no_grad for the duration, then the pooler's previous mode is restored."""
    was_training = pooler.training
    pooler.train(False)
    try:
        with torch.no_grad():
            yield
    finally:
        pooler.train(was_training)


class Encoder:
    """A frozen backbone plus a pooler.

    Shapes: ``encode(texts (B,))`` -> (B, out_dim) float32, rows in the order of ``texts``.
    """

    def __init__(self, backbone: BackboneLike, pooler: PoolerLike) -> None:
        if not hasattr(pooler, "forward_packed"):
            raise InputTypeError(
                f"pooler must have forward_packed(x, ptr) (a glot Pooler), got {type(pooler).__name__}; "
                "build one with glot.build_pooler(name, input_dim)"
            )
        self.backbone = backbone
        self.pooler = pooler

    def save_pretrained(self, directory: str | os.PathLike[str], **kwargs: Any) -> Path:
        """Save backbone reference + pooler (+ ``head=``, ``training_info=``); see :func:`glot.hub.save_pretrained`."""
        from glot import hub

        return hub.save_pretrained(self, directory, **kwargs)

    @classmethod
    def from_pretrained(cls, dir_or_repo_id: str | os.PathLike[str], **kwargs: Any) -> Encoder:
        """Load a saved encoder folder, training run or Hub repo; see :func:`glot.hub.from_pretrained`."""
        from glot import hub

        return hub.from_pretrained(dir_or_repo_id, **kwargs)

    def __repr__(self) -> str:
        name = getattr(self.backbone, "name", type(self.backbone).__name__)
        return f"Encoder(backbone={name!r}, pooler={type(self.pooler).__name__}, out_dim={self.out_dim})"

    @property
    def out_dim(self) -> int:
        """Width of the embeddings."""
        return int(self.pooler.out_dim)

    def _pool(self, x: Tensor, ptr: Tensor) -> Tensor:
        """Shapes: x (N, D), ptr (B + 1,) -> (B, out_dim) float32 on CPU."""
        param = next(iter(self.pooler.parameters()), None)
        device = param.device if param is not None else torch.device("cpu")
        dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
        return self.pooler.forward_packed(x.to(device, dtype), ptr.to(device)).float().cpu()

    def _collect(
        self, batches: Iterable[tuple[Any, Tensor, Tensor]], n: int, normalize: bool, convert_to_numpy: bool
    ) -> np.ndarray | Tensor:
        """Pool every (indices, x, ptr) batch and scatter rows back to their original positions."""
        out = torch.zeros(n, self.out_dim)
        filled = torch.zeros(n, dtype=torch.bool)
        with _inference(self.pooler):
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
        if isinstance(texts, (list, tuple)) and len(texts) == 0:
            empty = torch.zeros(0, self.out_dim)
            return empty.numpy() if convert_to_numpy else empty
        texts = check_texts(texts)
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
        from tqdm.auto import tqdm

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
