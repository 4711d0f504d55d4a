"""Evaluation: metrics, scoring a registered model on a dataset split, and the `evaluate`/`models` CLI.

Metric functions are small and pure (scikit-learn style, integer labels and probability rows).
`evaluate_model` scores a model on the images of its own label set, writes the results into the
model's card and keeps the per-image probabilities in `models/<id>/eval/<split>.npz`, so the
Model Comparison page can draw reliability diagrams, run McNemar tests and show misclassified
faces without re-running any model.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from statistics import NormalDist

import numpy as np

from ..models import registry
from ..data.datasets import FerDataset, load_dataset, resolve_split
from ..base.labels import EMOTIONS, label_set_name
from ..inference.predict import Classifier
from ..base.progress import ProgressFn
from ..models.tta import add_tta_argument, tta_mode
from ..base.runtime import device_description, short_device_name

EVAL_SPLITS = ("test", "validation")
ECE_BINS = 15
EXACT_MCNEMAR_BELOW = 25  # discordant pairs below this use the exact binomial test


# ----------------------------------------------------------------------------- metrics

def accuracy(y_true, y_pred) -> float:
    """Fraction of predictions equal to the true label."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(y_true == y_pred)) if len(y_true) else float("nan")


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Counts with rows = true class and columns = predicted class."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return cm


def _prf(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall and F1 from a confusion matrix (0 where undefined, as scikit-learn)."""
    tp = np.diag(cm).astype(float)
    predicted, support = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return precision, recall, f1


def per_class_report(y_true, y_pred, labels) -> dict[str, dict]:
    """{label: {precision, recall, f1, support}} for every label (index i = labels[i])."""
    cm = confusion_matrix(y_true, y_pred, len(labels))
    precision, recall, f1 = _prf(cm)
    return {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(cm[i].sum())} for i, name in enumerate(labels)}


def macro_f1(y_true, y_pred) -> float:
    """Unweighted mean F1 over the classes that occur in y_true or y_pred (scikit-learn's `macro`)."""
    y_true, y_pred = np.asarray(y_true, int), np.asarray(y_pred, int)
    if not len(y_true):
        return float("nan")
    present = np.union1d(y_true, y_pred)
    _, _, f1 = _prf(confusion_matrix(y_true, y_pred, int(present.max()) + 1))
    return float(f1[present].mean())


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


# ----------------------------------------------------------------------------- predictions

@dataclass
class Predictions:
    """Per-image results of one model on one split: files, true label indices and probabilities."""

    files: np.ndarray
    y_true: np.ndarray
    probabilities: np.ndarray
    labels: tuple[str, ...]
    split: str = ""
    split_description: str = ""
    skipped: dict[str, int] = field(default_factory=dict)
    fingerprint: str = ""
    tta: str = "none"  # the test-time augmentation mode the probabilities came from
    clean: np.ndarray | None = None  # True: no exact/near duplicate in the dataset's Training split

    def __len__(self) -> int:
        return len(self.y_true)

    @property
    def y_pred(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        return self.probabilities.max(axis=1).astype(np.float32)

    @property
    def correct(self) -> np.ndarray:
        return self.y_pred == self.y_true


def narrow_predictions(pred: Predictions, labels) -> Predictions:
    """`pred` as a model narrowed to `labels` would give it: only images of those emotions, probabilities
    restricted to them and renormalised (what a narrowed export or a restricted ensemble answers)."""
    cols = [pred.labels.index(e) for e in labels]
    rows = np.isin(pred.y_true, cols)
    probs = pred.probabilities[rows][:, cols].astype(np.float32)
    probs /= np.maximum(probs.sum(axis=1, keepdims=True), 1e-12)
    remap = {c: i for i, c in enumerate(cols)}
    return replace(pred, files=pred.files[rows], y_true=np.array([remap[c] for c in pred.y_true[rows]], int),
                   probabilities=probs, labels=tuple(labels),
                   clean=None if pred.clean is None else np.asarray(pred.clean)[rows])


def predict_split(info: registry.ModelInfo, dataset: FerDataset, split: str = "test", *, tta=None,
                  batch_size: int = 256, progress: ProgressFn | None = None, model=None) -> Predictions:
    """Run a model over a split's images of its own emotions; other emotions are skipped and counted."""
    if split not in EVAL_SPLITS:
        raise ValueError(f"unknown evaluation split {split!r}; use one of {', '.join(EVAL_SPLITS)}")
    rows, description = resolve_split(dataset, split)
    names = rows.label_names()
    keep = np.isin(names, info.labels)
    skipped = {e: int(np.sum(names == e)) for e in rows.classes if e not in info.labels and np.any(names == e)}
    if not keep.any():
        raise ValueError(f"the {description} images have none of {info.id}'s emotions "
                         f"({', '.join(info.labels)}); the dataset has {', '.join(rows.classes)}")
    index = {e: k for k, e in enumerate(info.labels)}
    y_true = np.array([index[e] for e in names[keep]], dtype=np.int16)
    images, files = rows.images[keep], rows.files[keep]
    # the app's own inference path: the card's preprocessing, shape checks and flip-TTA live there
    classifier = Classifier(model if model is not None else registry.load_model(info), info)
    tta = classifier.resolve_tta(tta)  # None = the model's default inference, as in the app
    out = []
    for start in range(0, len(images), batch_size):
        out.append(classifier.predict(images[start:start + batch_size], tta=tta))
        if progress:
            done = min(start + batch_size, len(images))
            progress(done, len(images), f"{info.id}: {done:,} of {len(images):,} images")
    return Predictions(files, y_true, np.concatenate(out), info.labels, split, description, skipped,
                       dataset.fingerprint, tta)


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


# ----------------------------------------------------------------------------- latency

LATENCY_BATCH = 32  # the batch size of "latency per batch" (the Classifier's largest bucket)


def measure_latency(info: registry.ModelInfo, model=None, repeats: int = 30, batch: int = 1) -> float:
    """Median milliseconds to classify one 48×48 face (or a `batch` of them; preprocessing included)
    with a compiled call.

    Uses `fer_core.inference.predict.Classifier`, the app's own fast path, so the figure is what users get.
    """
    faces = list(np.random.default_rng(0).integers(0, 256, (batch, 48, 48), dtype=np.uint8))
    model = model if model is not None else registry.load_model(info)
    classify = Classifier(model, info).predict
    for _ in range(3):  # trace and warm up
        classify(faces)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        classify(faces)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)


# ----------------------------------------------------------------------------- datasets and clean subsets

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
    return {"id": dataset_id(dataset), "name": registry.dataset_name({"source": dataset.source}),
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
    from ..data.votes import CONTEMPT, crowd_scores

    scores = crowd_scores(dataset, pred.files, pred.y_pred, pred.labels)
    if scores and scores["n"]:
        scores["ci"] = list(accuracy_interval(scores["accuracy"], scores["n"]))
        if CONTEMPT in pred.labels and "disgust" in pred.labels:
            seven = [e for e in pred.labels if e != CONTEMPT]
            to_seven = np.array([seven.index("disgust" if e == CONTEMPT else e) for e in pred.labels])
            view = crowd_scores(dataset, pred.files, to_seven[pred.y_pred], seven)
            scores["seven_class"] = {k: view[k] for k in ("accuracy", "macro_f1", "n", "no_majority", "contempt")}
    return scores


# ----------------------------------------------------------------------------- evaluate_model

class Evaluation(dict):
    """The JSON-ready results of one evaluation; `.predictions` carries its per-image predictions."""

    predictions: Predictions | None = None


def evaluate_model(info_or_id, dataset, split: str = "test", tta=None, batch_size: int = 256,
                   progress: ProgressFn | None = None, *, model=None, save: bool = False,
                   latency: bool = True, votes=None) -> Evaluation:
    """Score a registered model on a dataset split; with save=True also store it in the card and eval/ npz.

    `dataset` is a FerDataset or anything `load_dataset` reads. `split="test"` means PrivateTest
    where the data has it; `split_description` says what was actually measured. Where FER+ votes
    exist (found beside the data, or the `votes` file), `ferplus` also scores the model against the
    FER+ majority of the same faces.
    """
    from ..data.votes import attach_votes

    info = info_or_id if isinstance(info_or_id, registry.ModelInfo) else registry.get_model(str(info_or_id))
    if not isinstance(dataset, FerDataset):
        dataset = load_dataset(dataset, progress=progress)
    if dataset.votes is None or votes is not None:
        dataset = attach_votes(dataset, votes)
    model = model if model is not None else registry.load_model(info)
    started = time.perf_counter()
    pred = predict_split(info, dataset, split, tta=tta, batch_size=batch_size, progress=progress, model=model)
    result = Evaluation(
        model=info.id, split=split, split_description=pred.split_description, **evaluate_predictions(pred),
        skipped=int(sum(pred.skipped.values())), skipped_by_class=pred.skipped, tta=pred.tta,
        dataset=dataset_description(dataset),
        evaluated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        eval_seconds=round(time.perf_counter() - started, 2))
    pred.clean = clean_mask(dataset, split, pred.files)
    result["clean"] = clean_scores(pred)
    result["ferplus"] = ferplus_scores(dataset, pred)
    result.predictions = pred
    result["latency_ms_per_face"] = measure_latency(info, model) if latency else None
    if info.format != "keras":  # an edge export: its parent's scores, latency per batch, and its parent's
        result["parent_scores"] = parent_scores(info, pred, split, result["dataset"])
        if latency:
            result["latency_ms_per_batch"] = measure_latency(info, model, batch=LATENCY_BATCH)
            result["latency_batch_size"] = LATENCY_BATCH
            result["parent_latency"] = parent_latency(info)
    result["device"] = device_description()
    if save:
        save_evaluation(info, result, pred)
    return result


def predictions_path(info: registry.ModelInfo, split: str, dataset: dict | None = None) -> Path:
    """Where the per-image predictions of `info` on `split` of `dataset` (a selector; default the model's
    home dataset) are: eval/<dataset id>/<split>.npz, or eval/<split>.npz for results from before ids."""
    entry = info.metrics(split, dataset) or {}
    if entry.get("predictions"):
        return info.path / entry["predictions"]
    return _npz_path(info, entry.get("dataset") or dataset or {}, split)


def _npz_path(info: registry.ModelInfo, desc: dict, split: str) -> Path:
    folder = info.path / registry.PREDICTIONS_DIR
    return folder / desc["id"] / f"{split}.npz" if desc.get("id") else folder / f"{split}.npz"


def save_evaluation(info: registry.ModelInfo, result: dict, predictions: Predictions | None = None) -> Path:
    """Write the per-image predictions to models/<id>/eval/<split>.npz and the metrics into the card.

    `predictions` defaults to the ones an `Evaluation` from `evaluate_model` carries.
    """
    predictions = predictions if predictions is not None else getattr(result, "predictions", None)
    if predictions is None:
        raise ValueError("save_evaluation needs the per-image predictions (pass the result of evaluate_model)")
    split = result["split"]
    path = _npz_path(info, result.get("dataset") or {}, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"model": info.id, "split": split, "split_description": predictions.split_description,
            "labels": list(predictions.labels), "skipped": predictions.skipped,
            "fingerprint": predictions.fingerprint, "tta": predictions.tta,
            "evaluated_at": result.get("evaluated_at")}
    tmp = path.with_name(f"{split}.{uuid.uuid4().hex[:12]}.tmp.npz")  # one temp file per writer
    extra = {"clean": np.asarray(predictions.clean, bool)} if predictions.clean is not None else {}
    np.savez_compressed(tmp, files=predictions.files.astype(str), y_true=predictions.y_true.astype(np.int16),
                        probabilities=predictions.probabilities.astype(np.float16), meta=np.array(json.dumps(meta)),
                        **extra)
    os.replace(tmp, path)
    replaced = registry.save_metrics(info, split, {**result, "predictions": path.relative_to(info.path).as_posix()})
    for old in replaced:  # an old-style result of the same data: its predictions go with it
        old_path = info.path / old.get("predictions", f"eval/{split}.npz")
        if old_path != path and old_path.is_file() and info.path in old_path.resolve().parents:
            old_path.unlink()
    return path


def load_predictions(info: registry.ModelInfo, split: str, dataset: dict | None = None) -> Predictions | None:
    """The saved per-image predictions of `info` on `split` of `dataset` (a selector; default the home
    dataset), or None when it was never evaluated there."""
    if info.metrics(split, dataset) is None:
        return None
    path = predictions_path(info, split, dataset)
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        return Predictions(z["files"], z["y_true"].astype(np.int64), z["probabilities"].astype(np.float32),
                           tuple(meta["labels"]), meta["split"], meta.get("split_description", ""),
                           meta.get("skipped", {}), meta.get("fingerprint", ""), tta_mode(meta.get("tta")),
                           z["clean"].astype(bool) if "clean" in z.files else None)


# ----------------------------------------------------------------------------- an export beside its parent
# (`fer_core.training.export` makes exports; their evaluation records the parent's scores and latency, and the
# Model Comparison page shows them side by side through `export.exports_frame`)

def parent_of(info: registry.ModelInfo) -> registry.ModelInfo | None:
    """The registered parent of an export (looked up beside it), or None."""
    parent = (info.card.get("export") or {}).get("parent")
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
    if not (info.card.get("export") or {}).get("classes_of_parent"):
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


# ----------------------------------------------------------------------------- comparison tables

def _training_runs(training: dict) -> list[dict]:
    """Every run a model's weights cost: its own, its `--init-from` ancestors' and an ensemble's members',
    each counted once even where members share an ancestor."""
    runs: dict[tuple, dict] = {}

    def walk(record: dict) -> None:
        while record:
            stamp = record.get("finished_at")  # a run is identified by its command and finish time
            runs.setdefault((record.get("command"), stamp) if stamp else (id(record),), record)
            for member in record.get("members") or []:
                walk(member)
            record = record.get("init_from") or {}

    walk(training)
    return list(runs.values())


def training_budget(training: dict) -> tuple[int, float]:
    """Epochs and wall-clock minutes a model's weights cost, ancestors and members included, so a
    fine-tuned model or an ensemble is not made to look cheaper than it was."""
    runs = _training_runs(training)
    return (sum(int(r.get("epochs_run") or 0) for r in runs),
            round(sum(float(r.get("wall_time_s") or 0.0) for r in runs) / 60, 1))


def training_devices(training: dict) -> str:
    """Where those runs trained, briefly ("CPU", "1× GPU (NVIDIA H200)", or both joined by " + "), so
    minutes on a GPU are not read as CPU minutes."""
    names: list[str] = []
    for run in _training_runs(training):
        for device in str(run.get("device") or "").split(" then "):
            short = short_device_name(device)
            if short and short not in names:
                names.append(short)
    return " + ".join(names)


def model_summary(info: registry.ModelInfo) -> dict:
    """One registry row: identity, label set, size, training budget and saved accuracies of a model."""
    size = info.card.get("file_size_bytes") or (info.model_file.stat().st_size if info.model_file.exists() else 0)
    val, test = info.metrics("validation") or {}, info.metrics("test") or {}
    training = info.card.get("training") or {}
    epochs, minutes = training_budget(training)
    return {"id": info.id, "name": info.name, "architecture": info.card.get("architecture", ""),
            "labels": list(info.labels), "label_set": info.label_set, "params": info.card.get("params"),
            "size_mb": round(size / 1e6, 2), "default": info.is_default(), "epochs": epochs,
            "train_minutes": minutes, "devices": training_devices(training),
            "validation_accuracy": val.get("accuracy"), "test_accuracy": test.get("accuracy")}


def is_evaluated(info: registry.ModelInfo, split: str, dataset: dict | None = None) -> bool:
    """Whether the card holds a full `evaluate_model` result for `split` of `dataset` (default: home dataset)."""
    return {"accuracy", "confusion_matrix", "per_class", "reliability", "labels"} <= set(
        info.metrics(split, dataset) or {})


def leaderboard(infos, split: str, dataset: dict | None = None):
    """DataFrame of the saved evaluations on `split` of one dataset (a selector from `dataset_choices`;
    default each model's home dataset), best accuracy first; unevaluated models last."""
    import pandas as pd

    rows = []
    for info in infos:
        m = info.metrics(split, dataset) or {}
        clean = m.get("clean") or {}
        s = model_summary(info)
        rows.append({"model": info.id, "architecture": s["architecture"], "params": s["params"],
                     "size MB": s["size_mb"], "epochs": s["epochs"], "train min": s["train_minutes"],
                     "trained on": s["devices"],
                     "accuracy": m.get("accuracy"), **_interval_columns(m),
                     "FER+ accuracy": (m.get("ferplus") or {}).get("accuracy"),  # on the model's own emotions
                     "FER+ faces": (m.get("ferplus") or {}).get("n"),
                     "clean accuracy": clean.get("accuracy"),
                     "macro-F1": m.get("macro_f1"),
                     "log-loss": m.get("log_loss"), "ECE": m.get("ece"),
                     "latency ms/face": m.get("latency_ms_per_face"), "images": m.get("n"),
                     "TTA": m.get("tta"), "evaluated on": m.get("split_description", "not evaluated")})
    frame = pd.DataFrame(rows, columns=["model", "architecture", "params", "size MB", "epochs", "train min",
                                        "trained on", "accuracy", "CI low", "CI high", "FER+ accuracy", "FER+ faces",
                                        "clean accuracy", "macro-F1",
                                        "log-loss", "ECE", "latency ms/face", "images", "TTA", "evaluated on"])
    return frame.sort_values("accuracy", ascending=False, na_position="last", kind="stable").reset_index(drop=True)


def _interval_columns(metrics: dict) -> dict:
    if metrics.get("accuracy") is None or not metrics.get("n"):
        return {"CI low": None, "CI high": None}
    low, high = accuracy_interval(metrics["accuracy"], metrics["n"])
    return {"CI low": low, "CI high": high}


def dataset_choices(infos, split: str | None = None) -> list[dict]:
    """The datasets the models were evaluated on (on `split` when given), as selectors for `leaderboard`
    with a `label` and the `models` evaluated there; the most-evaluated first (ties: the one a default
    model was evaluated on), so the first is the leaderboard's default. Results saved before datasets
    had content ids join the same-named dataset."""
    groups: list[dict] = []
    entries = [(info, e) for info in infos for e in info.evaluations.values()
               if split is None or e.get("split") == split]
    for info, e in sorted(entries, key=lambda pair: not ((pair[1].get("dataset") or {}).get("id"))):
        desc = e.get("dataset") or {}
        group = next((g for g in groups if registry.same_dataset(desc, g)), None)
        if group is None:
            group = {**registry.dataset_selector(desc), "source": desc.get("source"),
                     "n_images": desc.get("n_images"), "models": []}
            groups.append(group)
        if info.id not in group["models"]:
            group["models"].append(info.id)
    homes = [i.home_dataset() for i in infos]
    groups.sort(key=lambda g: (-len(g["models"]), -sum(registry.same_dataset(h, g) for h in homes)))
    for g in groups:
        size = f"{g['n_images']:,} images, " if g.get("n_images") else ""
        ident = f"id {g['id'][:8]}" if g["id"] else "recorded before dataset ids"
        g["label"] = f"{g['name']} ({size}{ident}; {len(g['models'])} model{'s' * (len(g['models']) != 1)})"
    return groups


def crowd_frame(infos, split: str, dataset: dict | None = None):
    """DataFrame of every model's saved score against the FER+ majority on `split` of `dataset`, across
    label sets, in the 7-class view (an 8-class model's contempt answers read as disgust) so FER+ and
    FER2013 models sit side by side; FER2013 accuracy beside it. Best FER+ accuracy first."""
    import pandas as pd

    rows = []
    for info in infos:
        m = info.metrics(split, dataset) or {}
        crowd = m.get("ferplus") or {}
        if not crowd.get("n"):
            continue
        seven = crowd.get("seven_class") or (crowd if set(info.labels) == set(EMOTIONS) else {})
        trained = ((info.card.get("dataset") or {}).get("label_source") or {}).get("label_source", "fer2013")
        rows.append({"model": info.id, "labels": info.label_set, "trained on labels": trained,
                     "FER+ accuracy (7-class view)": seven.get("accuracy"), "faces": seven.get("n"),
                     "FER+ accuracy (own emotions)": crowd.get("accuracy"), "own faces": crowd.get("n"),
                     "FER2013 accuracy": m.get("accuracy"), "TTA": m.get("tta")})
    columns = ["model", "labels", "trained on labels", "FER+ accuracy (7-class view)", "faces",
               "FER+ accuracy (own emotions)", "own faces", "FER2013 accuracy", "TTA"]
    return pd.DataFrame(rows, columns=columns).sort_values("FER+ accuracy (7-class view)", ascending=False,
                                                          kind="stable").reset_index(drop=True)


def cross_dataset_frame(infos, dataset: dict | None = None):
    """DataFrame of every saved result on a dataset other than `dataset` (a selector; None = all
    datasets): model, dataset name and id, split, images, accuracy, macro-F1, clean accuracy, date."""
    import pandas as pd

    rows = []
    for info in infos:
        for e in info.evaluations.values():
            desc = e.get("dataset") or {}
            if dataset is not None and registry.same_dataset(desc, dataset):
                continue
            rows.append({"model": info.id, "dataset": registry.dataset_name(desc),
                         "dataset id": (desc.get("id") or "")[:8], "split": e.get("split_description", e.get("split")),
                         "images": e.get("n"), "skipped": e.get("skipped"), "accuracy": e.get("accuracy"),
                         "macro-F1": e.get("macro_f1"), "clean accuracy": (e.get("clean") or {}).get("accuracy"),
                         "source": desc.get("source"), "evaluated at": e.get("evaluated_at")})
    columns = ["model", "dataset", "dataset id", "split", "images", "skipped", "accuracy", "macro-F1",
               "clean accuracy", "source", "evaluated at"]
    return pd.DataFrame(rows, columns=columns).sort_values(["model", "dataset", "split"], kind="stable") \
        .reset_index(drop=True)


SWA_PHASE = "SWA mean (validation)"


def history_frame(infos):
    """Long DataFrame (model, epoch, metric, phase, value) of every model's training history. A run that
    ships averaged weights (SWA) adds its mean's validation accuracy as a level line over the epochs it
    averaged, since no single epoch's curve shows what ships."""
    import pandas as pd

    rows = []
    for info in infos:
        training = info.card.get("training", {})
        for key, values in training.get("history", {}).items():
            metric = key.removeprefix("val_")
            if metric not in ("accuracy", "loss"):
                continue
            phase = "validation" if key.startswith("val_") else "train"
            rows += [{"model": info.id, "epoch": e + 1, "metric": metric, "phase": phase, "value": v}
                     for e, v in enumerate(values)]
        swa = training.get("swa") or {}
        if swa.get("epochs") and swa.get("val_accuracy") is not None:
            rows += [{"model": info.id, "epoch": e, "metric": "accuracy", "phase": SWA_PHASE,
                      "value": swa["val_accuracy"]} for e in (swa["epochs"][0], swa["epochs"][-1])]
    return pd.DataFrame(rows, columns=["model", "epoch", "metric", "phase", "value"])


def per_class_frame(infos, split: str, dataset: dict | None = None):
    """Long DataFrame (model, emotion, precision, recall, f1, support) of saved evaluations."""
    import pandas as pd

    rows = [{"model": info.id, "emotion": emotion, **scores} for info in infos
            for emotion, scores in ((info.metrics(split, dataset) or {}).get("per_class") or {}).items()]
    return pd.DataFrame(rows, columns=["model", "emotion", "precision", "recall", "f1", "support"])


def reliability_frame(infos, split: str, dataset: dict | None = None):
    """Long DataFrame (model, lower, upper, count, confidence, accuracy) of non-empty reliability bins."""
    import pandas as pd

    rows = [{"model": info.id, **b} for info in infos
            for b in ((info.metrics(split, dataset) or {}).get("reliability") or []) if b.get("count")]
    return pd.DataFrame(rows, columns=["model", "lower", "upper", "count", "confidence", "accuracy"])


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


# ----------------------------------------------------------------------------- CLI

def _cmd_evaluate(args) -> int:
    from ..base.progress import stderr_progress

    info = registry.get_model(args.model)
    dataset = load_dataset(args.data, progress=stderr_progress)
    result = evaluate_model(info, dataset, args.split, tta=args.tta, batch_size=args.batch_size,
                            progress=stderr_progress, save=not args.no_save, votes=args.votes)
    if args.json:
        print(json.dumps(result))
    else:
        print(format_report(result, info))
        if not args.no_save:
            desc = result["dataset"]
            print(f"\nSaved into {info.path / registry.CARD_FILE} (evaluations, {desc['name']} id {desc['id']}, "
                  f"{args.split}; results on other datasets are kept) and "
                  f"{predictions_path(info, args.split, registry.dataset_selector(desc))}")
    return 0


def format_report(result: dict, info: registry.ModelInfo) -> str:
    """A readable text report of one evaluation."""
    import pandas as pd

    skipped = ", ".join(f"{n} {e}" for e, n in result["skipped_by_class"].items())
    lines = [f"{info.id} ({info.name}; {label_set_name(info.labels)}) on {result['split_description']} of "
             f"{result['dataset'].get('name', '?')} ({result['dataset'].get('source', '?')})",
             f"  {result['n']:,} images" + (f", skipped {result['skipped']:,} outside the model's emotions "
                                             f"({skipped})" if result["skipped"] else "")
             + f", TTA {tta_mode(result['tta'])}",
             f"  accuracy {result['accuracy']:.4f} (95% CI {_interval(result['accuracy'], result['n'])})   "
             f"macro-F1 {result['macro_f1']:.4f}   "
             f"log-loss {result['log_loss']:.4f}   ECE {result['ece']:.4f}"]
    clean = result.get("clean")
    if clean and clean.get("n"):
        lines.append(f"  clean part (no exact or near duplicate in Training): accuracy {clean['accuracy']:.4f}   "
                     f"macro-F1 {clean['macro_f1']:.4f} on {clean['n']:,} images ({clean['duplicates']:,} left out)")
    crowd = result.get("ferplus")
    if crowd and crowd.get("n"):
        lines.append(f"  against the FER+ majority ({crowd['votes_file']}): accuracy {crowd['accuracy']:.4f} "
                     f"(95% CI {_interval(crowd['accuracy'], crowd['n'])})   macro-F1 {crowd['macro_f1']:.4f} on "
                     f"{crowd['n']:,} faces ({crowd['without_votes']:,} without votes, {crowd['no_majority']:,} "
                     f"without a majority in the label set; contempt {crowd['contempt']})")
    if result.get("latency_ms_per_face") is not None:
        lines.append(f"  latency {result['latency_ms_per_face']:.2f} ms per face on {result['device']}")
    table = pd.DataFrame(result["per_class"]).T
    table["support"] = table["support"].astype(int)
    lines += ["", table.to_string(float_format=lambda v: f"{v:.3f}"), "",
              "Confusion matrix (rows = true, columns = predicted):",
              pd.DataFrame(result["confusion_matrix"], index=result["labels"], columns=result["labels"]).to_string()]
    return "\n".join(lines)


def _interval(accuracy: float, n: int) -> str:
    low, high = accuracy_interval(accuracy, n)
    return f"{low:.4f}–{high:.4f}"


def _cmd_models(args) -> int:
    if args.set_default:
        info = registry.set_default(args.set_default)
        print(f"{info.id} is now the default model for label set {info.label_set!r}", file=sys.stderr)
    if args.set_tta:
        info = registry.set_default_tta(*args.set_tta)
        print(f"{info.id} now uses {info.card['inference']['tta']} test-time augmentation by default; re-run "
              f"`evaluate` to score it that way", file=sys.stderr)
    infos = registry.list_models()
    rows, roles = [model_summary(info) for info in infos], registry.model_roles(infos)
    if args.json:
        print(json.dumps(rows))
        return 0
    if not rows:
        print(f"no models under {registry.default_models_dir()}; train one with `python -m fer_core train`")
        return 0
    import pandas as pd

    def acc(v):
        return "-" if v is None else f"{v:.4f}"

    table = pd.DataFrame({"id": r["id"], "name": r["name"], "architecture": r["architecture"],
                          "labels": r["label_set"], "params": f"{r['params']:,}" if r["params"] else "-",
                          "size MB": f"{r['size_mb']:.2f}", "epochs": r["epochs"],
                          "train min": f"{r['train_minutes']:.0f}", "trained on": r["devices"] or "-",
                          "role": roles[r["id"]],
                          "val acc": acc(r["validation_accuracy"]), "test acc": acc(r["test_accuracy"])}
                         for r in rows)
    print(table.to_string(index=False))
    return 0


def add_cli(subparsers) -> None:
    """Add `evaluate` and `models` to the fer_core CLI."""
    p = subparsers.add_parser("evaluate", help="score a registered model on a dataset split and save the results")
    p.add_argument("--model", required=True, help="model id under models/ (see `models`) or a model folder")
    p.add_argument("--data", required=True, help="dataset folder, .zip or fer2013.csv")
    p.add_argument("--split", choices=EVAL_SPLITS, default="test",
                   help="test = PrivateTest where present (else PublicTest, and it says so); default test")
    add_tta_argument(p)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-save", action="store_true", help="do not write the card or eval/<split>.npz")
    p.add_argument("--votes", help="FER+ votes CSV (ferplus_votes.csv or fer2013new.csv) to also score against the "
                                   "crowd's majority; default: one found beside the data")
    p.set_defaults(func=_cmd_evaluate)

    p = subparsers.add_parser("models", help="list registered models with their card summaries")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.add_argument("--set-default", metavar="ID", help="make ID the default model of its label set first")
    p.add_argument("--set-tta", nargs=2, metavar=("ID", "MODE"),
                   help="record MODE (none, flip or tencrop) as ID's default test-time augmentation")
    p.set_defaults(func=_cmd_models)
