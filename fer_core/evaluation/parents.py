"""An edge export beside its parent: the parent's saved scores on the same data (narrowed to the export's
emotions where it serves fewer), their top-label agreement and the parent's latency measured alongside.
`fer_core.training.export` makes exports; `evaluate_model` records these in an export's evaluation."""
from __future__ import annotations

import numpy as np

from ..models import registry
from .comparison import align
from .latency import LATENCY_BATCH, measure_latency
from .predictions import load_predictions, narrow_predictions
from .scores import clean_scores, evaluate_predictions


def parent_of(info: registry.ModelInfo) -> registry.ModelInfo | None:
    """The registered parent of an export (looked up beside it), or None."""
    parent = info.model_card.export_parent
    try:
        return registry.get_model(parent, info.path.parent) if parent else None
    except registry.RegistryError:
        return None


def agreement(a, b) -> tuple[float | None, int]:
    """Share of the images both prediction sets scored on which their top labels are the same, and how many."""
    ia, ib = align(a, b)
    if not len(ia):
        return None, 0
    same = np.asarray(a.labels)[a.y_pred[ia]] == _top_labels_among(b, ib, a.labels)
    return float(same.mean()), int(len(ia))


def _top_labels_among(pred, rows, labels) -> np.ndarray:
    """`pred`'s top label on `rows` among `labels` only, so a narrowed export is compared with its parent
    narrowed the same way (all of `pred`'s labels when `labels` is not a strict subset of them)."""
    names = np.asarray(pred.labels)
    cols = [i for i, e in enumerate(pred.labels) if e in set(labels)]
    if len(cols) == len(names) or not cols:
        return names[pred.y_pred[rows]]
    return names[cols][np.asarray(pred.probabilities)[rows][:, cols].argmax(axis=1)]


def parent_scores(info: registry.ModelInfo, pred, split: str, dataset: dict) -> dict | None:
    """The parent's saved accuracy on the same split and dataset and its top-label agreement with `pred`,
    kept in the export's evaluation so the comparison outlives a parent too large to ship; None without one."""
    parent = parent_of(info)
    theirs = parent_figures(info, parent, split, dataset) if parent else None
    if theirs is None:
        return None
    share, n = agreement(pred, p) if (p := load_predictions(parent, split, dataset)) is not None else (None, 0)
    return {"model": parent.id, "accuracy": theirs.get("accuracy"), "macro_f1": theirs.get("macro_f1"),
            "clean_accuracy": (theirs.get("clean") or {}).get("accuracy"), "agreement": share,
            "images_compared": n}


def parent_figures(info: registry.ModelInfo, parent: registry.ModelInfo, split: str,
                   dataset: dict | None) -> dict | None:
    """The parent's saved scores on `split` of `dataset`; for an export narrowed to fewer emotions, the parent's
    saved predictions narrowed the same way and scored on those emotions' images, so the two compare."""
    if not info.model_card.classes_of_parent:
        return parent.metrics(split, dataset)
    pred = load_predictions(parent, split, dataset)
    if pred is None:
        return None
    narrowed = narrow_predictions(pred, info.labels)
    return {**evaluate_predictions(narrowed), "clean": clean_scores(narrowed)}


def parent_latency(info: registry.ModelInfo) -> dict | None:
    """The parent's latency per face and per batch, measured now in this process (so beside the export's
    own figures they compare like with like); None when the parent is not registered."""
    parent = parent_of(info)
    if parent is None:
        return None
    model = registry.load_keras_model(parent)
    return {"model": parent.id, "latency_ms_per_face": measure_latency(parent, model),
            "latency_ms_per_batch": measure_latency(parent, model, batch=LATENCY_BATCH),
            "batch_size": LATENCY_BATCH}
