"""Where photo-pipeline results are kept: in the model's card under `photo_metrics[<dataset id>][<detector>/<crop>]`
(written under the card's lock, other datasets and pipelines kept) and, per photo, in `models/<id>/eval/<dataset
id>/photos_<detector>_<crop>.npz` beside the per-image predictions of `evaluate --data`, so the Model Comparison
page shows the accuracy through the photo pipeline and a gallery of misses without running any model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..base.files import atomic_write
from ..models import registry
from .photos import PhotoEvaluation, PhotoPredictions

SECTION = "photo_metrics"


def pipeline_key(detector: str, crop: str) -> str:
    """A pipeline's key in a card: `<detector>/<crop>`."""
    return f"{detector}/{crop}"


def predictions_file(info: registry.ModelInfo, dataset_id: str, detector: str, crop: str) -> Path:
    return info.path / registry.PREDICTIONS_DIR / dataset_id / f"photos_{detector}_{crop}.npz"


def save_photo_evaluation(info: registry.ModelInfo, result: PhotoEvaluation) -> Path:
    """Write a `evaluate_photos` result's per-photo predictions and put its metrics into the card; returns
    the predictions file."""
    pred = result.predictions
    if pred is None:
        raise ValueError("save_photo_evaluation needs the result of evaluate_photos (with its per-photo predictions)")
    dataset_id = result["dataset"]["id"]
    path = predictions_file(info, dataset_id, result["detector"], result["crop"])
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {**pred.meta, "labels": list(pred.labels)}
    atomic_write(path, lambda tmp: np.savez_compressed(
        tmp, files=pred.files.astype(str), y_true=pred.y_true.astype(np.int16), found=pred.found,
        boxes=pred.boxes.astype(np.int32), y_pred=pred.y_pred.astype(np.int16),
        confidence=pred.confidence.astype(np.float16), probabilities=pred.probabilities.astype(np.float16),
        meta=np.array(json.dumps(meta))))
    entry = {**result, "predictions": path.relative_to(info.path).as_posix()}
    key = pipeline_key(result["detector"], result["crop"])

    def change(card: dict) -> None:
        card.setdefault(SECTION, {}).setdefault(dataset_id, {})[key] = entry

    info.card = registry.update_card(info.path, change)
    return path


def photo_results(info: registry.ModelInfo) -> list[dict]:
    """Every saved photo-pipeline result of a model, newest first."""
    found = [r for by_key in (info.card.get(SECTION) or {}).values() for r in by_key.values() if isinstance(r, dict)]
    return sorted(found, key=lambda r: str(r.get("evaluated_at") or ""), reverse=True)


def photo_result(info: registry.ModelInfo, dataset_id: str | None, pipeline: str) -> dict | None:
    """The saved result of one pipeline (`<detector>/<crop>`) on one photo dataset, or None."""
    return ((info.card.get(SECTION) or {}).get(dataset_id) or {}).get(pipeline)


def photo_datasets(infos) -> list[dict]:
    """The photo datasets the models were measured on: {id, name, source, n_photos, models}, the one with
    the most models first."""
    groups: dict[str, dict] = {}
    for info in infos:
        for r in photo_results(info):
            desc = r.get("dataset") or {}
            group = groups.setdefault(desc.get("id"), {**{k: desc.get(k) for k in ("id", "name", "source",
                                                                                     "n_photos")}, "models": []})
            if info.id not in group["models"]:
                group["models"].append(info.id)
    return sorted(groups.values(), key=lambda g: -len(g["models"]))


def load_photo_predictions(info: registry.ModelInfo, dataset_id: str, pipeline: str) -> PhotoPredictions | None:
    """The saved per-photo predictions of one pipeline (`<detector>/<crop>`) on one photo dataset, or None."""
    result = photo_result(info, dataset_id, pipeline)
    if result is None:
        return None
    path = info.path / result.get("predictions", "")
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        return PhotoPredictions(z["files"], z["y_true"].astype(np.int64), z["found"].astype(bool),
                                z["boxes"].astype(np.int32), z["y_pred"].astype(np.int64),
                                z["confidence"].astype(np.float32), z["probabilities"].astype(np.float32),
                                tuple(meta["labels"]), meta)


def default_pipeline() -> str:
    """The key of the pipeline every caller uses unless told (the default detector and crop policy)."""
    from ..inference.faces import DEFAULT_CROP, DEFAULT_DETECTOR

    return pipeline_key(DEFAULT_DETECTOR, DEFAULT_CROP)


def pipelines(info: registry.ModelInfo, dataset_id: str) -> list[str]:
    """The pipelines (`<detector>/<crop>`) a model was measured with on one photo dataset, the default first."""
    keys = list((info.card.get(SECTION) or {}).get(dataset_id) or {})
    return sorted(keys, key=lambda k: k != default_pipeline())
