"""Metrics: agreement with scikit-learn/scipy and with values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn import metrics as skm

from glot.training import metrics

RNG = np.random.default_rng(0)
CLS_PRED = RNG.integers(0, 3, size=50)
CLS_GOLD = RNG.integers(0, 3, size=50)
BIN_PRED = RNG.integers(0, 2, size=50)
BIN_GOLD = RNG.integers(0, 2, size=50)
SCORES = RNG.normal(size=40)
GOLD_SCORES = SCORES + RNG.normal(size=40)


def test_accuracy_by_hand_and_sklearn() -> None:
    assert metrics.accuracy([1, 0, 1, 1], [1, 1, 1, 0]) == 0.5
    assert metrics.accuracy(CLS_PRED, CLS_GOLD) == pytest.approx(skm.accuracy_score(CLS_GOLD, CLS_PRED))


def test_mcc_by_hand() -> None:
    # Confusion matrix (positive = 1): TP=3, TN=2, FP=1, FN=2.
    gold = [1, 1, 1, 1, 1, 0, 0, 0]
    pred = [1, 1, 1, 0, 0, 0, 0, 1]
    tp, tn, fp, fn = 3, 2, 1, 2
    expected = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert metrics.mcc(pred, gold) == pytest.approx(expected)
    assert metrics.mcc(pred, gold) == pytest.approx(4 / math.sqrt(240))  # (3*2 - 1*2) / sqrt(4*5*3*4)


def test_mcc_matches_sklearn_and_constant_prediction_is_zero() -> None:
    assert metrics.mcc(BIN_PRED, BIN_GOLD) == pytest.approx(skm.matthews_corrcoef(BIN_GOLD, BIN_PRED))
    assert metrics.mcc(CLS_PRED, CLS_GOLD) == pytest.approx(skm.matthews_corrcoef(CLS_GOLD, CLS_PRED))
    assert metrics.mcc([1, 1, 1, 1], [1, 0, 1, 0]) == 0.0


def test_f1_binary_by_hand_and_macro_for_three_classes() -> None:
    gold = [1, 1, 1, 1, 1, 0, 0, 0]
    pred = [1, 1, 1, 0, 0, 0, 0, 1]
    precision, recall = 3 / 4, 3 / 5
    assert metrics.f1(pred, gold) == pytest.approx(2 * precision * recall / (precision + recall))
    assert metrics.f1(BIN_PRED, BIN_GOLD) == pytest.approx(skm.f1_score(BIN_GOLD, BIN_PRED))
    assert metrics.f1(CLS_PRED, CLS_GOLD) == pytest.approx(skm.f1_score(CLS_GOLD, CLS_PRED, average="macro"))
    assert metrics.f1(CLS_PRED, CLS_GOLD, average="micro") == pytest.approx(
        metrics.accuracy(CLS_PRED, CLS_GOLD)
    )


def test_mrpc_always_paraphrase_f1() -> None:
    # PAPER.md caveat: predicting "paraphrase" for every MRPC validation pair (279 of 408 positive) gives F1 81.22.
    gold = np.array([1] * 279 + [0] * 129)
    assert metrics.f1(np.ones(408, dtype=int), gold) * 100 == pytest.approx(81.22, abs=0.01)


def test_correlations_by_hand_and_scipy() -> None:
    # Ranks of [1, 2, 3, 4] vs [1, 3, 2, 4]: d^2 sum = 2 -> rho = 1 - 6*2 / (4*15) = 0.8.
    assert metrics.spearman([1.0, 2.0, 3.0, 4.0], [10.0, 30.0, 20.0, 40.0]) == pytest.approx(0.8)
    assert metrics.pearson([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]) == pytest.approx(1.0)
    assert metrics.pearson(SCORES, GOLD_SCORES) == pytest.approx(stats.pearsonr(SCORES, GOLD_SCORES)[0])
    assert metrics.spearman(SCORES, GOLD_SCORES) == pytest.approx(stats.spearmanr(SCORES, GOLD_SCORES)[0])
    assert math.isnan(metrics.spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))


def test_mrr_by_hand() -> None:
    scores = np.array(
        [
            [0.9, 0.1, 0.2],  # gold 0 ranked 1st
            [0.8, 0.5, 0.1],  # gold 1 ranked 2nd
            [0.7, 0.6, 0.3],  # gold 2 ranked 3rd
        ]
    )
    assert metrics.mrr(scores) == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    assert metrics.mrr(scores, [0, 0, 0]) == pytest.approx(1.0)
    assert metrics.mrr(np.ones((2, 2))) == pytest.approx(0.5)  # ties count against the gold document


def test_compute_registry_and_tensor_inputs() -> None:
    assert set(metrics.METRICS) == {"accuracy", "mcc", "f1", "pearson", "spearman", "mrr"}
    pred, gold = torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0])
    assert metrics.compute("accuracy", pred, gold) == pytest.approx(2 / 3)
    assert isinstance(metrics.compute("spearman", SCORES, GOLD_SCORES), float)
    assert all(metrics.higher_is_better(name) for name in metrics.METRICS)


def test_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="unknown metric 'auc'.*accuracy"):
        metrics.compute("auc", [1], [1])
    with pytest.raises(ValueError, match="same length, got 2 and 3"):
        metrics.accuracy([1, 0], [1, 0, 1])
    with pytest.raises(ValueError, match="1-D"):
        metrics.accuracy(np.zeros((2, 2)), [1, 0])
    with pytest.raises(ValueError, match="zero examples"):
        metrics.accuracy([], [])
    with pytest.raises(ValueError, match="unknown metric .bleu."):
        metrics.higher_is_better("bleu")


def test_mean_std_is_the_sample_std_over_seeds() -> None:
    values = [0.994, 0.998, 0.998]
    mean, std = metrics.mean_std(values)
    assert mean == pytest.approx(np.mean(values)) and std == pytest.approx(np.std(values, ddof=1))
    assert metrics.mean_std([0.5]) == (0.5, 0.0)  # one seed: no spread, not NaN
    with pytest.raises(ValueError, match="at least one value"):
        metrics.mean_std([])


def test_one_seed_shows_no_spread() -> None:
    assert metrics.format_mean_std([0.55]) == "0.5500"
    assert metrics.format_mean_std([0.5, 0.6]) == f"0.5500 ± {np.std([0.5, 0.6], ddof=1):.4f}"
    assert metrics.format_mean_std([0.91], digits=1, scale=100) == "91.0"


def test_a_difference_is_claimed_only_with_three_seeds_and_a_clear_gap() -> None:
    one = metrics.compare_means([0.92], [0.91])
    assert one["verdict"] == "too few seeds" and one["p"] is None and one["gap"] == pytest.approx(0.01)
    assert metrics.compare_means([0.9, 0.91], [0.8, 0.81])["verdict"] == "too few seeds"
    clear = metrics.compare_means([0.90, 0.91, 0.92], [0.80, 0.81, 0.82])
    assert clear["verdict"] == "higher" and clear["p"] < 0.05
    assert metrics.compare_means([0.80, 0.81, 0.82], [0.90, 0.91, 0.92])["verdict"] == "lower"
    noisy = metrics.compare_means([0.80, 0.90, 0.85], [0.84, 0.86, 0.83])
    assert noisy["verdict"] == "no clear difference" and noisy["p"] >= 0.05
    assert metrics.compare_means([0.9] * 3, [0.9] * 3)["verdict"] == "no clear difference"
