"""Evaluation metrics: thin wrappers over scikit-learn and scipy.

The paper (ICLR 2026, Table 1) reports GLUE with Matthews correlation for CoLA, Spearman correlation for
STS-B, F1 for MRPC and QQP and accuracy for the other tasks. ``mrr`` scores retrieval (contrastive tasks) from
a query-by-document similarity matrix. scikit-learn and scipy are imported inside the functions so that
``import glot`` stays fast.

Every metric takes ``(predictions, labels)`` and returns a Python float; larger is better for all of them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from glot.errors import InputError

__all__ = [
    "METRICS",
    "MIN_SEEDS_FOR_CLAIM",
    "accuracy",
    "compare_means",
    "compute",
    "f1",
    "format_mean_std",
    "higher_is_better",
    "mcc",
    "mean_std",
    "mrr",
    "pearson",
    "spearman",
]


def _as_1d(values: Any, name: str) -> np.ndarray:
    """Convert to a 1-D numpy array or raise a ValueError naming the argument.

    Shapes: values (N,) -> (N,).
    """
    arr = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values)
    if arr.ndim != 1:
        raise InputError(f"{name} must be 1-D (N,), got shape {arr.shape}; flatten or take argmax first")
    return arr


def _pair(predictions: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Check that predictions and labels are non-empty 1-D arrays of the same length.

    Shapes: predictions (N,), labels (N,).
    """
    pred, gold = _as_1d(predictions, "predictions"), _as_1d(labels, "labels")
    if len(pred) != len(gold):
        raise InputError(f"predictions and labels must have the same length, got {len(pred)} and {len(gold)}")
    if len(pred) == 0:
        raise InputError("cannot compute a metric on zero examples; the evaluation split is empty")
    return pred, gold


def accuracy(predictions: Any, labels: Any) -> float:
    """Fraction of exactly matching class ids.

    Shapes: predictions (N,) int, labels (N,) int.
    """
    from sklearn.metrics import accuracy_score

    pred, gold = _pair(predictions, labels)
    return float(accuracy_score(gold, pred))


def mcc(predictions: Any, labels: Any) -> float:
    """Matthews correlation coefficient (CoLA's metric); 0.0 when a prediction or label is constant.

    Shapes: predictions (N,) int, labels (N,) int.
    """
    from sklearn.metrics import matthews_corrcoef

    pred, gold = _pair(predictions, labels)
    return float(matthews_corrcoef(gold, pred))


def f1(predictions: Any, labels: Any, average: str | None = None) -> float:
    """F1 score: binary F1 of class 1 when only classes {0, 1} occur, macro F1 over classes otherwise.

    ``average`` overrides the choice ("binary", "macro", "micro", "weighted").
    Shapes: predictions (N,) int, labels (N,) int.
    """
    from sklearn.metrics import f1_score

    pred, gold = _pair(predictions, labels)
    if average is None:
        binary = set(np.union1d(pred, gold).tolist()) <= {0, 1}
        average = "binary" if binary else "macro"
    return float(f1_score(gold, pred, average=average, zero_division=0.0))


def _correlation(kind: str, predictions: Any, labels: Any) -> float:
    """Pearson or Spearman correlation; NaN if either input is constant (correlation undefined).

    Shapes: predictions (N,) float, labels (N,) float.
    """
    from scipy import stats

    pred, gold = _pair(predictions, labels)
    if len(pred) < 2 or np.ptp(pred) == 0 or np.ptp(gold) == 0:
        return float("nan")
    fn = stats.pearsonr if kind == "pearson" else stats.spearmanr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fn(pred.astype(np.float64), gold.astype(np.float64))
    return float(result[0])


def pearson(predictions: Any, labels: Any) -> float:
    """Pearson correlation of scores; NaN when either side is constant.

    Shapes: predictions (N,) float, labels (N,) float.
    """
    return _correlation("pearson", predictions, labels)


def spearman(predictions: Any, labels: Any) -> float:
    """Spearman rank correlation (STS-B's metric); NaN when either side is constant.

    Shapes: predictions (N,) float, labels (N,) float.
    """
    return _correlation("spearman", predictions, labels)


def mrr(predictions: Any, labels: Any = None) -> float:
    """Mean reciprocal rank of the gold document for each query.

    ``predictions`` is a similarity matrix with one row per query and one column per candidate document;
    ``labels`` gives the gold column of each row (default: the diagonal, i.e. query i matches document i, as
    for in-batch (query, positive) pairs). Ties are ranked pessimistically (the gold document goes last).
    Shapes: predictions (Q, M) float, labels (Q,) int -> float.
    """
    scores = np.asarray(predictions.detach().cpu() if hasattr(predictions, "detach") else predictions)
    if scores.ndim != 2 or scores.shape[0] == 0:
        raise InputError(f"mrr needs a (Q, M) similarity matrix with Q >= 1, got shape {scores.shape}")
    gold = np.arange(scores.shape[0]) if labels is None else _as_1d(labels, "labels").astype(np.int64)
    if len(gold) != scores.shape[0] or gold.min() < 0 or gold.max() >= scores.shape[1]:
        raise InputError(
            f"labels must hold one column index in [0, {scores.shape[1]}) per query row "
            f"({scores.shape[0]} rows), got {len(gold)} values in [{gold.min()}, {gold.max()}]"
        )
    gold_scores = scores[np.arange(len(gold)), gold]
    ranks = (scores >= gold_scores[:, None]).sum(axis=1)
    return float(np.mean(1.0 / ranks))


METRICS: dict[str, Callable[..., float]] = {
    "accuracy": accuracy,
    "mcc": mcc,
    "f1": f1,
    "pearson": pearson,
    "spearman": spearman,
    "mrr": mrr,
}


def _check_name(metric: str) -> None:
    """Raise a ValueError listing the valid metric names if ``metric`` is unknown."""
    if metric not in METRICS:
        raise InputError(f"unknown metric {metric!r}; valid metrics: {', '.join(sorted(METRICS))}")


def compute(metric: str, predictions: Any, labels: Any) -> float:
    """Compute the metric called ``metric`` (a key of ``METRICS``).

    Shapes: predictions (N,) (or (Q, M) for "mrr"), labels (N,) -> float.
    """
    _check_name(metric)
    return METRICS[metric](predictions, labels)


def higher_is_better(metric: str) -> bool:
    """Whether larger values of ``metric`` are better (True for every metric here)."""
    _check_name(metric)
    return True


def mean_std(values: Any) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1) over seeds; the std of a single value is 0.

    The one definition of "mean ± std" used by training summaries, ``glot compare``/``glot eval`` tables and
    the ratio plot. Shapes: values (n,) with n >= 1 -> two floats.
    """
    arr = _as_1d(values, "values").astype(float)
    if arr.size == 0:
        raise InputError("mean_std needs at least one value, got an empty list")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


#: Seeds per side below which no difference between two methods is claimed (``compare_means``).
MIN_SEEDS_FOR_CLAIM = 3


def format_mean_std(values: Any, digits: int = 4, scale: float = 1.0) -> str:
    """``"0.5500 ± 0.0123"`` over seeds, or just ``"0.5500"`` for one seed (no spread can be measured).

    The one text form of :func:`mean_std` used by every table (train, eval, compare, markdown).
    Shapes: values (n,) with n >= 1 -> str.
    """
    arr = _as_1d(values, "values").astype(float) * scale
    mean, std = mean_std(arr)
    return f"{mean:.{digits}f}" if arr.size == 1 else f"{mean:.{digits}f} ± {std:.{digits}f}"


def compare_means(a: Any, b: Any, alpha: float = 0.05) -> dict[str, Any]:
    """Is method ``a`` better than ``b`` over seeds? Welch's t-test, claimed only with >= 3 seeds each.

    Returns ``{"gap": mean(a) - mean(b), "n": (n_a, n_b), "p": p-value or None, "verdict": ...}`` with verdict
    "higher", "lower", "no clear difference" (p >= alpha) or "too few seeds" (fewer than
    ``MIN_SEEDS_FOR_CLAIM`` on a side). Shapes: a (n_a,), b (n_b,) -> dict.
    """
    from scipy import stats

    x, y = (_as_1d(v, name).astype(float) for v, name in ((a, "a"), (b, "b")))
    if x.size == 0 or y.size == 0:
        raise InputError("compare_means needs at least one value per side, got an empty list")
    gap = float(x.mean() - y.mean())
    out: dict[str, Any] = {"gap": gap, "n": (int(x.size), int(y.size)), "p": None}
    if min(x.size, y.size) < MIN_SEEDS_FOR_CLAIM:
        return out | {"verdict": "too few seeds"}
    if np.ptp(x) == 0 and np.ptp(y) == 0:  # no spread at all: the t statistic is undefined
        p = 0.0 if gap != 0 else 1.0
    else:
        p = float(stats.ttest_ind(x, y, equal_var=False).pvalue)
    verdict = "no clear difference" if p >= alpha else ("higher" if gap > 0 else "lower")
    return out | {"p": p, "verdict": verdict}
