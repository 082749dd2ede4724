"""Common task representation: a ``Task`` holds named ``Split``s of texts and labels.

Kinds (see PAPER.md, "Training objectives"):
- ``single``: one text per example, integer class ids (CoLA, SST-2, IMDB, stress test, tweets).
- ``pair``: two texts per example pooled separately (siamese), integer class ids (MRPC, QQP, MNLI, ...).
- ``sts``: two texts per example, float similarity scores (STS-B, 0-5).
- ``contrastive``: (query, positive[, hard negative]) texts, no labels (MS MARCO).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from glot.errors import InputError
from glot.metrics import METRICS

__all__ = ["KINDS", "Split", "Task", "stratified_indices"]

KINDS = ("single", "pair", "sts", "contrastive")


def _check_texts(values: Any, name: str) -> list[str]:
    """Return ``values`` as a list of strings or raise a ValueError naming the field and first bad item."""
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise InputError(f"Split.{name} must be a list of strings, got {type(values).__name__}")
    texts = list(values)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(
                f"Split.{name}[{i}] must be a str, got {type(text).__name__} ({text!r}); "
                "drop or fill missing texts before building the split"
            )
    return texts


def _check_labels(values: Any) -> np.ndarray:
    """Return labels as int64 (class ids) or float32 (scores), 1-D, or raise a ValueError."""
    labels = np.asarray(values)
    if labels.ndim != 1:
        raise InputError(f"Split.labels must be 1-D (N,), got shape {labels.shape}")
    if labels.dtype.kind in "biu":
        return labels.astype(np.int64)
    if labels.dtype.kind == "f":
        return labels.astype(np.float32)
    raise InputError(
        f"Split.labels must be integer class ids or float scores, got dtype {labels.dtype}; "
        "map string labels to ids first (glot.data.files does this for CSV/JSONL)"
    )


@dataclass
class Split:
    """One split of a task: parallel lists of texts (and pair texts / negatives) with labels.

    ``labels`` are int64 class ids, float32 scores (STS) or None (contrastive). ``texts_pair`` holds the second
    sentence (pair/STS) or the positive document (contrastive); ``negatives`` one hard negative per example.
    Shapes: labels (N,) with N = len(texts).
    """

    texts: list[str]
    labels: np.ndarray | None
    texts_pair: list[str] | None = None
    negatives: list[str] | None = None

    def __post_init__(self) -> None:
        self.texts = _check_texts(self.texts, "texts")
        n = len(self.texts)
        if self.labels is not None:
            self.labels = _check_labels(self.labels)
            if len(self.labels) != n:
                raise InputError(f"Split.labels has {len(self.labels)} entries but Split.texts has {n}")
        for name in ("texts_pair", "negatives"):
            value = getattr(self, name)
            if value is not None:
                value = _check_texts(value, name)
                if len(value) != n:
                    raise InputError(f"Split.{name} has {len(value)} entries but Split.texts has {n}")
                setattr(self, name, value)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int] | np.ndarray) -> Split:
        """A new split holding the examples at ``indices`` (in that order).

        Shapes: indices (M,) -> split of length M.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(idx) and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise InputError(f"subset indices must lie in [0, {len(self)}), got [{idx.min()}, {idx.max()}]")

        def pick(values: list[str] | None) -> list[str] | None:
            return None if values is None else [values[i] for i in idx.tolist()]

        return Split(
            texts=[self.texts[i] for i in idx.tolist()],
            labels=None if self.labels is None else self.labels[idx],
            texts_pair=pick(self.texts_pair),
            negatives=pick(self.negatives),
        )

    def sample(self, n: int, seed: int = 0) -> Split:
        """A seeded random subset of ``n`` examples, stratified by class when labels are class ids.

        Returns the whole split (shuffled) when ``n >= len(self)``.
        """
        stratify = self.labels if self.labels is not None and self.labels.dtype.kind == "i" else None
        return self.subset(stratified_indices(len(self), n, seed, stratify))


def stratified_indices(total: int, n: int, seed: int, labels: np.ndarray | None = None) -> np.ndarray:
    """Seeded choice of ``n`` of ``total`` indices, keeping class proportions of ``labels`` if given.

    Uses scikit-learn's stratified ``train_test_split``; falls back to a plain seeded permutation when
    stratification is impossible (a class with a single example). Order is shuffled.
    Shapes: labels (total,) -> (min(n, total),).
    """
    if n < 0:
        raise InputError(f"sample size must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    if n >= total:
        return rng.permutation(total)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if labels is not None:
        counts = np.bincount(labels)
        if counts[counts > 0].min() >= 2 and n >= int((counts > 0).sum()):
            from sklearn.model_selection import train_test_split

            picked, _ = train_test_split(np.arange(total), train_size=n, stratify=labels, random_state=seed)
            return np.asarray(picked, dtype=np.int64)
    return rng.permutation(total)[:n]


@dataclass
class Task:
    """A named task: kind, primary metric, label space and splits ("train" and "eval" at least).

    Contrastive tasks may omit "eval". ``max_length`` is the backbone truncation length the paper uses.
    """

    name: str
    kind: str
    metric: str
    num_labels: int
    splits: dict[str, Split]
    label_names: list[str] | None = None
    max_length: int = 128
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"Task.kind must be one of {KINDS}, got {self.kind!r}")
        if self.metric not in METRICS:
            raise InputError(f"Task.metric must be one of {sorted(METRICS)}, got {self.metric!r}")
        if self.kind in ("single", "pair") and self.num_labels < 2:
            raise InputError(f"Task.num_labels must be >= 2 for kind {self.kind!r}, got {self.num_labels}")
        if self.kind in ("sts", "contrastive") and self.num_labels != 1:
            raise InputError(f"Task.num_labels must be 1 for kind {self.kind!r}, got {self.num_labels}")
        if self.label_names is not None and len(self.label_names) != self.num_labels:
            raise InputError(
                f"Task.label_names has {len(self.label_names)} names but num_labels is {self.num_labels}"
            )
        required = ("train",) if self.kind == "contrastive" else ("train", "eval")
        missing = [s for s in required if s not in self.splits]
        if missing:
            raise InputError(f"Task {self.name!r} lacks split(s) {missing}; it has {sorted(self.splits)}")
        for split_name, split in self.splits.items():
            self._check_split(split_name, split)

    def _check_split(self, split_name: str, split: Split) -> None:
        """Check that ``split`` fits the task kind (pair texts present, label dtype and range)."""
        where = f"Task {self.name!r} split {split_name!r}"
        if self.kind != "single" and split.texts_pair is None:
            raise InputError(f"{where}: kind {self.kind!r} needs texts_pair (second sentence or positive)")
        if self.kind == "contrastive":
            return
        if split.labels is None:
            raise InputError(f"{where}: kind {self.kind!r} needs labels, got None")
        if self.kind == "sts":
            if split.labels.dtype.kind != "f":
                raise InputError(f"{where}: sts labels must be float scores, got dtype {split.labels.dtype}")
            return
        if split.labels.dtype.kind != "i":
            raise InputError(f"{where}: class labels must be integer ids, got dtype {split.labels.dtype}")
        if len(split.labels) and (split.labels.min() < 0 or split.labels.max() >= self.num_labels):
            raise InputError(
                f"{where}: labels must lie in [0, {self.num_labels}), got values in "
                f"[{split.labels.min()}, {split.labels.max()}]; unlabeled (-1) rows, e.g. GLUE test, "
                "cannot be used"
            )
