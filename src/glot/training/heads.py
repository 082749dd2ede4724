"""Task heads and their losses, on top of pooled sentence embeddings z.

Objectives as PAPER.md ("Training objectives") describes the paper:
- single-sentence classification (CoLA, SST-2, IMDB, stress test): logits = W z + b, cross-entropy;
- pair classification (MRPC, QQP, QNLI, RTE, WNLI, MNLI): each sentence pooled separately (siamese),
  logits = W [z_a ; z_b] + b, cross-entropy (``features="full"`` adds |z_a - z_b| and z_a * z_b);
- STS-B: y_hat = cos(P z_a, P z_b), P a linear D -> D map, loss MSE(y_hat, y / 5);
- contrastive (MS MARCO, for MTEB): symmetric InfoNCE with in-batch negatives, temperature 0.07, on
  L2-normalised embeddings; optional hard negatives (unused in the reference code).

Every head has ``config()`` (JSON-serialisable) and ``build_head(**head.config())`` rebuilds it; weights are
saved separately (safetensors) by the trainer.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from glot.errors import InputError

__all__ = [
    "HEADS",
    "ClassificationHead",
    "ContrastiveHead",
    "PairClassificationHead",
    "STSHead",
    "TaskHead",
    "build_head",
]


def _check_z(z: Tensor, in_dim: int, name: str) -> None:
    """Raise a ValueError unless ``z`` is a (B, in_dim) tensor."""
    if not isinstance(z, Tensor) or z.dim() != 2 or z.shape[1] != in_dim:
        got = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
        raise InputError(f"{name} must be a (B, {in_dim}) tensor of pooled embeddings, got {got}")


def _check_pair(z: Tensor, z_pair: Tensor | None, in_dim: int, head: str) -> Tensor:
    """Validate (z, z_pair) for two-sentence heads and return z_pair."""
    _check_z(z, in_dim, "z")
    if z_pair is None:
        raise InputError(f"{head} needs z_pair (embeddings of the second sentence / positive), got None")
    _check_z(z_pair, in_dim, "z_pair")
    if z_pair.shape[0] != z.shape[0]:
        raise InputError(
            f"z and z_pair must have the same batch size, got {z.shape[0]} and {z_pair.shape[0]}"
        )
    return z_pair


def _labels(labels: Tensor | np.ndarray | None, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Labels as a tensor on ``device``; ValueError if missing."""
    if labels is None:
        raise InputError("this head's loss needs labels, got None")
    return torch.as_tensor(np.asarray(labels) if not isinstance(labels, Tensor) else labels).to(device, dtype)


class TaskHead(nn.Module):
    """Base class: a head maps pooled embeddings to task outputs and owns the loss.

    Shapes: forward(z (B, D), z_pair (B, D) | None) -> output; loss(output, labels (B,)) -> scalar;
    predict(output) -> (B,) numpy array.
    """

    kind: str = ""

    def __init__(self, in_dim: int, num_labels: int = 1) -> None:
        super().__init__()
        if in_dim < 1:
            raise InputError(f"in_dim must be >= 1 (the pooler's out_dim), got {in_dim}")
        self.in_dim = in_dim
        self.num_labels = num_labels

    def forward(self, z: Tensor, z_pair: Tensor | None = None, z_neg: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def loss(self, output: Tensor, labels: Tensor | np.ndarray | None = None) -> Tensor:
        raise NotImplementedError

    def predict(self, output: Tensor) -> np.ndarray:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """JSON-serialisable arguments such that ``build_head(**config)`` rebuilds this head."""
        return {"kind": self.kind, "in_dim": self.in_dim, "num_labels": self.num_labels}

    def embedding_transform(self) -> nn.Module | None:
        """The part of this head that changes the embedding geometry, applied after the pooler by every export
        (``glot.Encoder``, hub folders, ``glot encode``, MTEB, sentence-transformers), or None.

        Classification heads read the embedding without changing it; the contrastive head only L2-normalises
        (cosine ignores that). Shapes: the module maps (B, in_dim) -> (B, D').
        """
        return None

    def _no_neg(self, z_neg: Tensor | None) -> None:
        if z_neg is not None:
            raise InputError(
                f"z_neg (hard negatives) is only used by the contrastive head, not {self.kind!r}"
            )


class _CrossEntropyHead(TaskHead):
    """Shared loss/predict of the classification heads: cross-entropy and argmax."""

    def __init__(self, in_dim: int, num_labels: int) -> None:
        if num_labels < 2:
            raise InputError(f"a classification head needs num_labels >= 2, got {num_labels}")
        super().__init__(in_dim, num_labels)

    def loss(self, output: Tensor, labels: Tensor | np.ndarray | None = None) -> Tensor:
        """Mean cross-entropy. Shapes: output (B, C) logits, labels (B,) int -> scalar."""
        return F.cross_entropy(output, _labels(labels, output.device, torch.long))

    def predict(self, output: Tensor) -> np.ndarray:
        """Class ids. Shapes: output (B, C) -> (B,) int64."""
        return output.argmax(dim=-1).cpu().numpy().astype(np.int64)


class ClassificationHead(_CrossEntropyHead):
    """Single-sentence classification: logits = W z + b.

    Shapes: z (B, D) -> logits (B, C).
    """

    kind = "single"

    def __init__(self, in_dim: int, num_labels: int = 2) -> None:
        super().__init__(in_dim, num_labels)
        self.linear = nn.Linear(in_dim, num_labels)

    def forward(self, z: Tensor, z_pair: Tensor | None = None, z_neg: Tensor | None = None) -> Tensor:
        _check_z(z, self.in_dim, "z")
        self._no_neg(z_neg)
        if z_pair is not None:
            raise InputError("ClassificationHead takes one sentence; use kind 'pair' for sentence pairs")
        return self.linear(z)


class PairClassificationHead(_CrossEntropyHead):
    """Siamese pair classification: logits = W [z_a ; z_b] + b (``features="concat"``, the paper) or
    W [z_a ; z_b ; |z_a - z_b| ; z_a * z_b] + b (``features="full"``).

    Shapes: z (B, D), z_pair (B, D) -> logits (B, C).
    """

    kind = "pair"
    FEATURES = {"concat": 2, "full": 4}

    def __init__(self, in_dim: int, num_labels: int = 2, features: str = "concat") -> None:
        super().__init__(in_dim, num_labels)
        if features not in self.FEATURES:
            raise InputError(f"features must be one of {sorted(self.FEATURES)}, got {features!r}")
        self.features = features
        self.linear = nn.Linear(self.FEATURES[features] * in_dim, num_labels)

    def forward(self, z: Tensor, z_pair: Tensor | None = None, z_neg: Tensor | None = None) -> Tensor:
        z_b = _check_pair(z, z_pair, self.in_dim, "PairClassificationHead")
        self._no_neg(z_neg)
        parts = [z, z_b] if self.features == "concat" else [z, z_b, (z - z_b).abs(), z * z_b]
        return self.linear(torch.cat(parts, dim=-1))

    def config(self) -> dict[str, Any]:
        return {**super().config(), "features": self.features}


class STSHead(TaskHead):
    """Similarity regression: y_hat = cos(P z_a, P z_b) with P = Linear(D, proj_dim or D).

    The loss is MSE(y_hat, y / score_scale) (STS-B scores lie in [0, 5]); ``predict`` returns y_hat.
    Shapes: z (B, D), z_pair (B, D) -> y_hat (B,).
    """

    kind = "sts"

    def __init__(
        self, in_dim: int, num_labels: int = 1, proj_dim: int | None = None, score_scale: float = 5.0
    ) -> None:
        super().__init__(in_dim, 1)
        if num_labels != 1:
            raise InputError(f"STSHead predicts one score, num_labels must be 1, got {num_labels}")
        if score_scale <= 0:
            raise InputError(f"score_scale must be > 0 (the maximum gold score), got {score_scale}")
        self.proj_dim = proj_dim
        self.score_scale = float(score_scale)
        self.proj = nn.Linear(in_dim, proj_dim or in_dim)

    def forward(self, z: Tensor, z_pair: Tensor | None = None, z_neg: Tensor | None = None) -> Tensor:
        z_b = _check_pair(z, z_pair, self.in_dim, "STSHead")
        self._no_neg(z_neg)
        return F.cosine_similarity(self.proj(z), self.proj(z_b), dim=-1)

    def loss(self, output: Tensor, labels: Tensor | np.ndarray | None = None) -> Tensor:
        """MSE(y_hat, y / score_scale). Shapes: output (B,), labels (B,) float -> scalar."""
        return F.mse_loss(output, _labels(labels, output.device, output.dtype) / self.score_scale)

    def predict(self, output: Tensor) -> np.ndarray:
        """Cosine scores y_hat in [-1, 1]. Shapes: output (B,) -> (B,) float32."""
        return output.detach().float().cpu().numpy()

    def embedding_transform(self) -> nn.Module:
        """The projection P: training scores cos(P z_a, P z_b), so exported embeddings are P z.

        Shapes: (B, in_dim) -> (B, proj_dim or in_dim).
        """
        return self.proj

    def config(self) -> dict[str, Any]:
        return {**super().config(), "proj_dim": self.proj_dim, "score_scale": self.score_scale}


class ContrastiveHead(TaskHead):
    """Symmetric InfoNCE with in-batch negatives on L2-normalised embeddings.

    ``forward(z, z_pair, z_neg)`` takes queries z, their positives z_pair and optional hard negatives z_neg and
    returns the cosine-similarity matrix S = [q · p^T | q · n^T]. The loss is
    (CE(S / t, diag) + CE(S_qp^T / t, diag)) / 2: hard negatives are extra columns for the query -> document
    direction only. Temperature t = 0.07 (paper); ``learnable=True`` trains log(1/t) (CLIP-style, capped at 100).
    Shapes: z (B, D), z_pair (B, D), z_neg (B_n, D) | None -> S (B, B + B_n); predict -> (B,) diag(S).
    """

    kind = "contrastive"

    def __init__(
        self, in_dim: int, num_labels: int = 1, temperature: float = 0.07, learnable: bool = False
    ) -> None:
        super().__init__(in_dim, 1)
        if num_labels != 1:
            raise InputError(f"ContrastiveHead has no classes, num_labels must be 1, got {num_labels}")
        if temperature <= 0:
            raise InputError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)
        self.learnable = learnable
        log_scale = torch.tensor(math.log(1.0 / temperature))
        self.log_scale: Tensor
        if learnable:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    def forward(self, z: Tensor, z_pair: Tensor | None = None, z_neg: Tensor | None = None) -> Tensor:
        z_p = _check_pair(z, z_pair, self.in_dim, "ContrastiveHead")
        docs = [z_p]
        if z_neg is not None:
            _check_z(z_neg, self.in_dim, "z_neg")
            docs.append(z_neg)
        return F.normalize(z, dim=-1) @ F.normalize(torch.cat(docs), dim=-1).T

    def scale(self) -> Tensor:
        """1 / temperature (capped at 100 when learnable)."""
        return self.log_scale.exp().clamp(max=100.0) if self.learnable else self.log_scale.exp()

    def loss(self, output: Tensor, labels: Tensor | np.ndarray | None = None) -> Tensor:
        """Symmetric InfoNCE; labels are ignored (the positive of row i is column i).

        Shapes: output (B, B + B_n) similarity matrix -> scalar.
        """
        batch = output.shape[0]
        target = torch.arange(batch, device=output.device)
        logits = output * self.scale()
        q_to_d = F.cross_entropy(logits, target)
        d_to_q = F.cross_entropy(logits[:, :batch].T, target)
        return (q_to_d + d_to_q) / 2

    def predict(self, output: Tensor) -> np.ndarray:
        """Cosine similarity of each (query, positive) pair. Shapes: output (B, B + B_n) -> (B,) float32."""
        return output.detach().diagonal().float().cpu().numpy()

    def config(self) -> dict[str, Any]:
        return {**super().config(), "temperature": self.temperature, "learnable": self.learnable}


HEADS: dict[str, type[TaskHead]] = {
    "single": ClassificationHead,
    "pair": PairClassificationHead,
    "sts": STSHead,
    "contrastive": ContrastiveHead,
}


def build_head(kind: str, in_dim: int, num_labels: int = 1, **options: Any) -> TaskHead:
    """Build the head for a task kind ("single", "pair", "sts", "contrastive"; ``Task.kind`` names).

    ``options`` are the head's keyword arguments (e.g. ``features="full"``, ``proj_dim``, ``temperature``).
    ``build_head(**head.config())`` rebuilds a head with the same architecture.
    """
    if kind not in HEADS:
        raise InputError(f"unknown head kind {kind!r}; valid kinds: {', '.join(HEADS)}")
    if kind in ("single", "pair") and num_labels < 2:
        raise InputError(
            f"a {kind!r} head needs num_labels >= 2 (pass num_labels=task.num_labels), got {num_labels}"
        )
    return HEADS[kind](in_dim, num_labels, **options)
