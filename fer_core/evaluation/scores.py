"""What an evaluation records beyond the per-image predictions: every metric of a prediction set, the data
it was measured on (content id, name, sizes), its clean part (no duplicate in Training) and its score
against the FER+ crowd's majority."""
from __future__ import annotations

import hashlib

import numpy as np

from ..data.fer_dataset import FerDataset, resolve_split
from ..models import eval_datasets
from .metrics import (accuracy, accuracy_interval, confusion_matrix, expected_calibration_error, log_loss, macro_f1,
                      per_class_report, reliability_bins)
from .predictions import Predictions


def evaluate_predictions(pred: Predictions) -> dict:
    """Every metric of a prediction set, as JSON-ready values."""
    y_pred = pred.y_pred
    return {
        "accuracy": accuracy(pred.y_true, y_pred),
        "macro_f1": macro_f1(pred.y_true, y_pred),
        "n": int(len(pred)),
        "labels": list(pred.labels),
        "per_class": per_class_report(pred.y_true, y_pred, pred.labels),
        "confusion_matrix": confusion_matrix(pred.y_true, y_pred, len(pred.labels)).tolist(),
        "log_loss": log_loss(pred.y_true, pred.probabilities),
        "ece": expected_calibration_error(pred.y_true, pred.probabilities),
        "reliability": reliability_bins(pred.y_true, pred.probabilities),
    }


def dataset_id(dataset: FerDataset) -> str:
    """A content id of a dataset (its pixels, emotions and splits): the same data gives the same id
    wherever it was copied, unlike the file fingerprint, which changes with file dates."""
    h = hashlib.sha1(b"fer-dataset-content-v1")
    h.update(np.ascontiguousarray(dataset.images, dtype=np.uint8).tobytes())
    h.update("\n".join(dataset.label_names().tolist()).encode())
    h.update("\n".join(np.asarray(dataset.splits).astype(str).tolist()).encode())
    return h.hexdigest()[:16]


def dataset_description(dataset: FerDataset) -> dict:
    """What an evaluation records about its data: content id, name, source, layout, file fingerprint, sizes."""
    return {"id": dataset_id(dataset), "name": eval_datasets.dataset_name({"source": dataset.source}),
            "source": dataset.source, "layout": dataset.layout, "fingerprint": dataset.fingerprint,
            "n_images": int(len(dataset)),
            "split_sizes": {s: int(np.sum(dataset.splits == s)) for s in dataset.split_names}}


def clean_mask(dataset: FerDataset, split: str, files) -> np.ndarray | None:
    """True for the evaluated images (`files` of `split`) with no exact or near duplicate among the
    dataset's Training images (the quality scan's test and threshold); None without a Training split."""
    from ..data.quality import duplicated_in

    if "train" not in dataset.split_names:
        return None
    rows, _ = resolve_split(dataset, split)
    duplicated = dict(zip(rows.files.tolist(), duplicated_in(rows.images, dataset.split("train").images).tolist()))
    return np.array([not duplicated[f] for f in np.asarray(files).tolist()], dtype=bool)


def clean_scores(pred: Predictions) -> dict | None:
    """Accuracy and macro-F1 on the clean part of a prediction set (images not duplicated in Training)."""
    from ..data.quality import NEAR_DISTANCE

    if pred.clean is None:
        return None
    keep = np.asarray(pred.clean, bool)
    n = int(keep.sum())
    return {"accuracy": accuracy(pred.y_true[keep], pred.y_pred[keep]) if n else None,
            "macro_f1": macro_f1(pred.y_true[keep], pred.y_pred[keep]) if n else None, "n": n,
            "duplicates": int(len(keep) - n), "reference": "train", "max_distance": NEAR_DISTANCE}


def ferplus_scores(dataset: FerDataset, pred: Predictions) -> dict | None:
    """Accuracy, its 95% interval and macro-F1 against the FER+ majority of the scored faces (contempt
    counted as disgust for a model without contempt); None when the dataset carries no votes. A model
    with contempt and disgust also gets `seven_class`: its contempt answers read as disgust, scored
    against the 7-class majority, the figure to set beside 7-class models."""
    from ..base.labels import CONTEMPT
    from ..data.crowd import crowd_scores

    scores = crowd_scores(dataset, pred.files, pred.y_pred, pred.labels)
    if scores and scores["n"]:
        scores["ci"] = list(accuracy_interval(scores["accuracy"], scores["n"]))
        if CONTEMPT in pred.labels and "disgust" in pred.labels:
            seven = [e for e in pred.labels if e != CONTEMPT]
            to_seven = np.array([seven.index("disgust" if e == CONTEMPT else e) for e in pred.labels])
            view = crowd_scores(dataset, pred.files, to_seven[pred.y_pred], seven)
            scores["seven_class"] = {k: view[k] for k in ("accuracy", "macro_f1", "n", "no_majority", "contempt")}
    return scores
