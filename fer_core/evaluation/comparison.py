"""Comparing models image by image from their saved predictions: McNemar's test between every pair, the
p-value matrix, a model's most frequent mistakes and the faces behind them."""
from __future__ import annotations

import numpy as np

from ..data.fer_dataset import FerDataset
from .metrics import confusion_matrix, mcnemar
from .predictions import Predictions


def align(a: Predictions, b: Predictions) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the images both prediction sets scored (matched by file name, same true label)."""
    _, ia, ib = np.intersect1d(a.files, b.files, assume_unique=True, return_indices=True)
    same = np.asarray(a.labels)[a.y_true[ia]] == np.asarray(b.labels)[b.y_true[ib]]
    return ia[same], ib[same]


def pairwise_mcnemar(named: dict[str, Predictions]):
    """DataFrame with McNemar's test for every pair of models, on the images both of them scored."""
    import pandas as pd

    names, rows = list(named), []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ia, ib = align(named[a], named[b])
            if not len(ia):
                continue
            ca, cb = named[a].correct[ia], named[b].correct[ib]
            test = mcnemar(ca, cb)
            better = a if test["b"] > test["c"] else b
            rows.append({"model A": a, "model B": b, "images": int(len(ia)), "accuracy A": float(ca.mean()),
                         "accuracy B": float(cb.mean()), "A right, B wrong": test["b"],
                         "A wrong, B right": test["c"], "statistic": test["statistic"], "p-value": test["p_value"],
                         "method": test["method"],
                         "verdict": f"{better} is better (p < 0.05)" if test["p_value"] < 0.05
                         else "no significant difference"})
    return pd.DataFrame(rows, columns=["model A", "model B", "images", "accuracy A", "accuracy B",
                                       "A right, B wrong", "A wrong, B right", "statistic", "p-value",
                                       "method", "verdict"])


def pvalue_matrix(pairs):
    """Square DataFrame of McNemar p-values from `pairwise_mcnemar` (symmetric, blank diagonal)."""
    import pandas as pd

    names = list(dict.fromkeys(list(pairs["model A"]) + list(pairs["model B"])))
    matrix = pd.DataFrame(np.nan, index=names, columns=names)
    for a, b, p in zip(pairs["model A"], pairs["model B"], pairs["p-value"]):
        matrix.loc[a, b] = matrix.loc[b, a] = p
    return matrix


def misclassified(pred: Predictions, true_label: str, predicted_label: str):
    """DataFrame (file, confidence, p_true) of images of `true_label` predicted as `predicted_label`, surest first."""
    import pandas as pd

    t, p = pred.labels.index(true_label), pred.labels.index(predicted_label)
    rows = np.flatnonzero((pred.y_true == t) & (pred.y_pred == p))
    frame = pd.DataFrame({"file": pred.files[rows], "confidence": pred.probabilities[rows, p],
                          "p_true": pred.probabilities[rows, t]})
    return frame.sort_values("confidence", ascending=False).reset_index(drop=True)


def top_confusions(pred: Predictions, k: int = 10) -> list[tuple[str, str, int]]:
    """The k most frequent (true, predicted, count) mistakes."""
    cm = confusion_matrix(pred.y_true, pred.y_pred, len(pred.labels))
    np.fill_diagonal(cm, 0)
    order = np.argsort(cm, axis=None)[::-1][:k]
    return [(pred.labels[i], pred.labels[j], int(cm[i, j])) for i, j in zip(*np.unravel_index(order, cm.shape))
            if cm[i, j] > 0]


def lookup_images(dataset: FerDataset, files) -> list[np.ndarray | None]:
    """The dataset images with these file names (full relative path, else `<emotion>/<file>`), None if absent."""
    by_path = {f: i for i, f in enumerate(dataset.files)}
    by_tail = {"/".join(f.split("/")[-2:]): i for i, f in enumerate(dataset.files)}
    out = []
    for f in files:
        i = by_path.get(f, by_tail.get("/".join(str(f).split("/")[-2:])))
        out.append(dataset.images[i] if i is not None else None)
    return out
