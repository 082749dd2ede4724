"""Common task representation: a ``Task`` holds named ``Split``s of texts and labels.

Kinds (see PAPER.md, "Training objectives"):
- ``single``: one text per example, integer class ids (CoLA, SST-2, IMDB, stress test, tweets).
- ``pair``: two texts per example pooled separately (siamese), integer class ids (MRPC, QQP, MNLI, ...).
- ``sts``: two texts per example, float similarity scores (STS-B, 0-5; any range: ``info["score_scale"]``).
- ``contrastive``: (query, positive[, hard negative]) texts, no labels (MS MARCO).

Every loader takes the same common options (:func:`check_common`): ``n_train`` / ``n_eval`` (seeded subsets,
stratified by class, :func:`take_subsets`), ``seed`` and ``max_length`` (None = the backbone's own limit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from glot.data.texts import check_texts
from glot.errors import InputError
from glot.training.metrics import METRICS

__all__ = [
    "KINDS",
    "Split",
    "Task",
    "check_common",
    "infer_score_scale",
    "stratified_indices",
    "take_subsets",
]

KINDS = ("single", "pair", "sts", "contrastive")


def _check_labels(values: Any) -> np.ndarray:
    """Return labels as int64 (class ids) or float32 (scores), 1-D, or raise a ValueError."""
    labels = np.asarray(values)
    if labels.ndim != 1:
        raise InputError(f"Split.labels must be 1-D (N,), got shape {labels.shape}")
    if labels.dtype.kind in "biu":
        return labels.astype(np.int64)
    if labels.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(labels))
        if len(bad):
            raise InputError(
                f"Split.labels[{bad[0]}] is {labels[bad[0]]}: scores must be finite numbers "
                f"({len(bad)} non-finite); drop or fix those rows"
            )
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
        self.texts = check_texts(self.texts, "Split.texts", ordered=True)
        n = len(self.texts)
        if self.labels is not None:
            self.labels = _check_labels(self.labels)
            if len(self.labels) != n:
                raise InputError(f"Split.labels has {len(self.labels)} entries but Split.texts has {n}")
        for name in ("texts_pair", "negatives"):
            value = getattr(self, name)
            if value is not None:
                value = check_texts(value, f"Split.{name}", ordered=True)
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
    stratification is impossible (a class with a single example, or fewer picked or left-out examples than
    classes). Order is shuffled.
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
        classes = int((counts > 0).sum())
        if counts[counts > 0].min() >= 2 and n >= classes and total - n >= classes:
            from sklearn.model_selection import train_test_split  # heavy (~0.5 s): only when a split is drawn

            picked, _ = train_test_split(np.arange(total), train_size=n, stratify=labels, random_state=seed)
            return np.asarray(picked, dtype=np.int64)
    return rng.permutation(total)[:n]


@dataclass
class Task:
    """A named task: kind, primary metric, label space and splits ("train" and "eval" at least).

    Contrastive tasks may omit "eval". ``max_length`` is the backbone truncation length the paper uses
    (GLUE 128, IMDB 512); None (the default, file tasks) means the backbone's own configured limit. An "sts"
    task records ``info["score_scale"]``, the gold score that means "identical" (targets are score / scale);
    when absent it is inferred from the training scores (:func:`infer_score_scale`).
    """

    name: str
    kind: str
    metric: str
    num_labels: int
    splits: dict[str, Split]
    label_names: list[str] | None = None
    max_length: int | None = None
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
        check_common(None, None, 0, self.max_length)
        if self.kind == "sts":
            self._set_score_scale()

    def head_options(self) -> dict[str, Any]:
        """Head options the task itself fixes: an STS head's ``score_scale`` (targets = score / scale)."""
        return {"score_scale": self.info["score_scale"]} if self.kind == "sts" else {}

    def _set_score_scale(self) -> None:
        """Check ``info["score_scale"]`` (finite, > 0), inferring it from the training scores when absent."""
        if "score_scale" not in self.info:
            labels = self.splits["train"].labels
            assert labels is not None  # checked by _check_split
            self.info["score_scale"] = infer_score_scale(labels, f"task {self.name!r} train")
        scale = self.info["score_scale"]
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < np.inf:
            raise InputError(f"task {self.name!r}: score_scale must be a finite number > 0, got {scale!r}")
        self.info["score_scale"] = float(scale)

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


def infer_score_scale(scores: np.ndarray, where: str) -> float:
    """The score scale of an STS task: the largest absolute TRAINING score, so targets score / scale lie in
    [-1, 1] like the cosine the head predicts (STS-B 0-5 -> 5; a 0-1 similarity file -> 1).

    Shapes: scores (N,) float.
    """
    if len(scores) == 0:
        raise InputError(f"{where}: no training scores to infer score_scale from; pass score_scale=")
    scale = float(np.max(np.abs(scores)))
    if not np.isfinite(scale) or scale <= 0:
        raise InputError(
            f"{where}: cannot infer score_scale from training scores whose largest |score| is {scale}; "
            "scores must be finite and not all 0 (or pass score_scale=)"
        )
    return scale


def _size(value: Any, name: str, lo: int) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo
    ):
        raise InputError(f"{name} must be an integer >= {lo} or None, got {value!r}")


def check_common(n_train: Any, n_eval: Any, seed: Any, max_length: Any) -> None:
    """Validate the options every loader takes: ``n_train`` / ``n_eval`` (None or >= 1), ``seed`` (>= 0),
    ``max_length`` (None = the backbone's own limit, or >= 2 tokens)."""
    _size(n_train, "n_train", 1)
    _size(n_eval, "n_eval", 1)
    _size(max_length, "max_length", 2)
    if seed is None:
        raise InputError("seed must be an integer >= 0, got None")
    _size(seed, "seed", 0)


def take_subsets(
    splits: dict[str, Split], n_train: int | None, n_eval: int | None, seed: int
) -> dict[str, Split]:
    """``n_train`` examples of "train" and ``n_eval`` of every evaluation split ("eval", "eval_*"): seeded,
    class-stratified subsets (:meth:`Split.sample`); None keeps a split whole and in order; a size beyond a
    split's length keeps all of it."""
    check_common(n_train, n_eval, seed, None)
    out = dict(splits)
    for name, split in splits.items():
        n = n_train if name == "train" else n_eval if name == "eval" or name.startswith("eval_") else None
        if n is not None:
            out[name] = split.sample(n, seed=seed)
    return out
