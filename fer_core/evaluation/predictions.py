"""Per-image predictions of a model on an evaluation split, and where they are kept: `models/<id>/eval/
<dataset id>/<split>.npz` beside the metrics in the card, so pages draw reliability diagrams, run McNemar
tests and show misclassified faces without re-running any model."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..base.files import atomic_write
from ..models import registry
from ..models.tta import tta_mode

EVAL_SPLITS = ("test", "validation")


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
    extra = {"clean": np.asarray(predictions.clean, bool)} if predictions.clean is not None else {}
    atomic_write(path, lambda tmp: np.savez_compressed(
        tmp, files=predictions.files.astype(str), y_true=predictions.y_true.astype(np.int16),
        probabilities=predictions.probabilities.astype(np.float16), meta=np.array(json.dumps(meta)), **extra))
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
