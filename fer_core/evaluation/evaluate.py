"""Scoring a registered model on a dataset split: `evaluate_model` runs the model through the app's own
inference path on the images of its own label set, records every metric (`scores`), its clean part and its
score against FER+'s crowd in the model's card and keeps the per-image probabilities (`predictions`), so
the Model Comparison page never re-runs a model. `format_report` is the text report of one evaluation.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

import numpy as np

from ..base.labels import label_set_name
from ..base.progress import ProgressFn
from ..base.runtime import device_description
from ..data.datasets import load_dataset
from ..data.fer_dataset import FerDataset, resolve_split
from ..inference.predict import Classifier
from ..models import registry
from ..models.tta import tta_mode
from .latency import LATENCY_BATCH, measure_latency
from .metrics import accuracy_interval
from .parents import parent_latency, parent_scores
from .predictions import EVAL_SPLITS, Predictions, save_evaluation
from .scores import clean_mask, clean_scores, dataset_description, evaluate_predictions, ferplus_scores


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
    info, dataset = _model_and_data(info_or_id, dataset, votes, progress)
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


def rescore_saved(info_or_id, dataset, split: str = "test", *, save: bool = False, votes=None) -> Evaluation:
    """Score a model's saved per-image predictions on `split` of `dataset` against what lies beside the data,
    without running the model: FER+ votes that arrived after the evaluation (a ten-crop ensemble takes ~20
    minutes here to re-run) and the clean part. The run's own metrics and facts (TTA, time, latency, device)
    are kept; with save=True the card's entry is updated. Refuses predictions made on other data."""
    from ..models.eval_datasets import dataset_selector
    from .predictions import load_predictions

    info, dataset = _model_and_data(info_or_id, dataset, votes)
    desc = dataset_description(dataset)
    entry, pred = info.metrics(split, dataset_selector(desc)), load_predictions(info, split, dataset_selector(desc))
    if entry is None or pred is None:
        raise ValueError(f"{info.id} has no saved predictions on {split} of {desc['name']}: run `evaluate` "
                         "without --rescore first")
    if (entry.get("dataset") or {}).get("id") != desc["id"]:  # the content id: same pixels, labels and splits
        raise ValueError(f"{info.id}'s saved {split} predictions were made on other data than this "
                         f"{desc['name']} (its images, labels or splits differ): run `evaluate` without --rescore")
    pred.clean = clean_mask(dataset, split, pred.files)
    # the metrics stay the run's own (computed from float32; the saved probabilities are float16)
    result = Evaluation({**entry, "clean": clean_scores(pred), "ferplus": ferplus_scores(dataset, pred),
                         "rescored_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    result.predictions = pred
    if save:
        registry.save_metrics(info, split, dict(result))
    return result


def _model_and_data(info_or_id, dataset, votes=None, progress: ProgressFn | None = None):
    """The registered model and the dataset (loaded if given as a path) with its FER+ votes attached: the
    ones found beside it, or the `votes` file when one is named."""
    from ..data.votes import attach_votes

    info = info_or_id if isinstance(info_or_id, registry.ModelInfo) else registry.get_model(str(info_or_id))
    if not isinstance(dataset, FerDataset):
        dataset = load_dataset(dataset, progress=progress)
    if dataset.votes is None or votes is not None:
        dataset = attach_votes(dataset, votes)
    return info, dataset


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
