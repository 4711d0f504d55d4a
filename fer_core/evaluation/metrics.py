"""Metrics of a classifier from integer labels and probability rows, as plain floats and arrays.

Accuracy, the confusion matrix and precision/recall/F1 come from scikit-learn (imported when first used, so
importing this module stays light). Written out here are what scikit-learn lacks or computes differently:
log-loss clipped at 1e-7 (scikit-learn clips at machine epsilon, which would change the log-loss of saved
float16 probabilities), calibration (reliability bins, ECE), the Wilson interval of an accuracy and McNemar's
test of two models on the same images.
"""
from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

ECE_BINS = 15
EXACT_MCNEMAR_BELOW = 25  # discordant pairs below this use the exact binomial test


def accuracy(y_true, y_pred) -> float:
    """Fraction of predictions equal to the true label."""
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(y_true, y_pred)) if len(y_true) else float("nan")


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Counts with rows = true class and columns = predicted class."""
    from sklearn.metrics import confusion_matrix as sk_confusion_matrix

    if not len(y_true):
        return np.zeros((n_classes, n_classes), dtype=np.int64)
    return sk_confusion_matrix(np.asarray(y_true, int), np.asarray(y_pred, int),
                               labels=range(n_classes)).astype(np.int64)


def per_class_report(y_true, y_pred, labels) -> dict[str, dict]:
    """{label: {precision, recall, f1, support}} for every label (index i = labels[i]); 0 where undefined."""
    from sklearn.metrics import precision_recall_fscore_support

    if not len(y_true):
        return {name: {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0} for name in labels}
    precision, recall, f1, support = precision_recall_fscore_support(
        np.asarray(y_true, int), np.asarray(y_pred, int), labels=range(len(labels)), zero_division=0)
    return {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(support[i])} for i, name in enumerate(labels)}


def macro_f1(y_true, y_pred) -> float:
    """Unweighted mean F1 over the classes that occur in y_true or y_pred (scikit-learn's `macro`)."""
    from sklearn.metrics import f1_score

    if not len(y_true):
        return float("nan")
    return float(f1_score(np.asarray(y_true, int), np.asarray(y_pred, int), average="macro", zero_division=0))


def log_loss(y_true, probabilities, eps: float = 1e-7) -> float:
    """Mean negative log-probability of the true class (rows renormalised, clipped at `eps`)."""
    p = np.asarray(probabilities, dtype=np.float64)
    p = p / p.sum(axis=1, keepdims=True)
    true_p = np.clip(p[np.arange(len(p)), np.asarray(y_true, int)], eps, 1.0)
    return float(-np.mean(np.log(true_p))) if len(p) else float("nan")


def reliability_bins(y_true, probabilities, n_bins: int = ECE_BINS) -> list[dict]:
    """Equal-width confidence bins (lower, upper]: count, mean confidence and accuracy of the top-1 guess."""
    p = np.asarray(probabilities, dtype=np.float64)
    confidence, correct = p.max(axis=1), (p.argmax(axis=1) == np.asarray(y_true, int))
    index = np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        inside = index == b
        n = int(inside.sum())
        bins.append({"lower": b / n_bins, "upper": (b + 1) / n_bins, "count": n,
                     "confidence": float(confidence[inside].mean()) if n else None,
                     "accuracy": float(correct[inside].mean()) if n else None})
    return bins


def expected_calibration_error(y_true, probabilities, n_bins: int = ECE_BINS) -> float:
    """ECE: the count-weighted mean gap between confidence and accuracy over `n_bins` bins."""
    bins = reliability_bins(y_true, probabilities, n_bins)
    total = sum(b["count"] for b in bins)
    if not total:
        return float("nan")
    return float(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]) / total)


def accuracy_interval(accuracy: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for an accuracy measured on `n` images: the range of true accuracies the
    result is consistent with (±1.5 points at 0.70 on PublicTest's 3,589 faces), so a reader sees which
    leaderboard gaps are noise. It stays inside [0, 1] and is sound near 0 and 1, unlike the normal one."""
    if n <= 0:
        return float("nan"), float("nan")
    z = NormalDist().inv_cdf((1 + level) / 2)
    centre = (accuracy + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar(correct_a, correct_b) -> dict:
    """McNemar's test of two models on the same images: is one right where the other is wrong more often?

    b = A right and B wrong, c = A wrong and B right. Below 25 discordant pairs the two-sided exact
    binomial test is used (statistic = min(b, c)); otherwise chi-square with continuity correction.
    """
    a, bb = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if a.shape != bb.shape:
        raise ValueError("McNemar needs both models' results on the same images")
    b, c = int(np.sum(a & ~bb)), int(np.sum(~a & bb))
    n = b + c
    if n == 0:
        return {"b": 0, "c": 0, "statistic": 0.0, "p_value": 1.0, "method": "exact binomial"}
    if n < EXACT_MCNEMAR_BELOW:
        k = min(b, c)
        tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
        return {"b": b, "c": c, "statistic": float(k), "p_value": min(1.0, 2 * tail), "method": "exact binomial"}
    stat = (abs(b - c) - 1) ** 2 / n
    return {"b": b, "c": c, "statistic": float(stat), "p_value": math.erfc(math.sqrt(stat / 2)),
            "method": "chi-square (continuity corrected)"}


def normalize_rows(cm) -> np.ndarray:
    """A confusion matrix as row fractions (recall per true class); empty rows stay zero."""
    cm = np.asarray(cm, dtype=float)
    totals = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)
