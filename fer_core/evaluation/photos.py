"""Evaluating a model through the whole photo pipeline on class folders of real photos: read → detect →
align/crop → classify, as `fer_core.analyze` runs it, a photo with no face found counting as wrong.

FER2013's 48×48 crops are only a proxy for what users upload; this measures what they get. A folder is
`DIR/<emotion>/*` or `DIR/test/<emotion>/*` (fer_core.data's folder and label-name rules); emotions the
model does not have are counted and skipped. `photo_store` keeps the results in the model's card, per
dataset and pipeline (detector/crop), with the per-photo predictions beside them.
"""
from __future__ import annotations

import hashlib
import logging
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..base.labels import CONTEMPT, sort_emotions
from ..base.progress import ProgressFn
from ..base.runtime import quick_device_description
from ..data.fer_dataset import DataError
from ..data.image_folders import IMAGE_EXTENSIONS, label_entries
from ..data.sources import Source, fingerprint
from ..inference.faces import DEFAULT_CROP, DEFAULT_DETECTOR, WHOLE_IMAGE
from ..inference.images import read_image
from ..inference.loader import load_classifier
from ..inference.predict import Classifier, analyze_image
from ..models import registry
from .metrics import confusion_matrix, per_class_report

log = logging.getLogger(__name__)

FIVE_CLASS = ("angry", "happy", "neutral", "sad", "surprise")  # issue #33's "5-class recall": FER2013's big five
PHOTO_SPLITS = ("test", "validation")  # a folder with split folders is evaluated on the first it has
NO_FACE = -1  # the predicted index of a photo in which no face was found
MAX_LISTED_UNREADABLE = 20  # unreadable files named in a result (all are counted)
WHOLE_CROP = "whole"  # the crop policy recorded with detector `none`: the whole photo is the face


@dataclass
class PhotoFolder:
    """The labelled photos of a folder (or zip): relative paths and emotions, sorted by path."""

    source: Source
    name: str  # display name: the folder's name (its parent's when it is a split folder such as test/)
    split: str  # the split folder evaluated ("test", "validation"), or "" when the photos have none
    files: list[str]
    emotions: list[str]
    fingerprint: str  # of the file list (paths, sizes, dates), as fer_core.data keys its cache
    limit: int | None = None

    def counts(self) -> dict[str, int]:
        """Photos per emotion, in canonical order."""
        return {e: self.emotions.count(e) for e in sort_emotions(set(self.emotions))}


def list_photos(folder, limit: int | None = None) -> PhotoFolder:
    """The photos of `DIR/<emotion>/` (or `DIR/test/<emotion>/`, the first of `PHOTO_SPLITS` the folder has),
    at most `limit` per emotion (the first by path). DataError for a missing folder or one without any."""
    src = Source(folder)
    images = [e for e in src.entries() if e.path.lower().endswith(IMAGE_EXTENSIONS)]
    labelled = label_entries(images)
    if not labelled:
        raise DataError(f"{src.description} has no photos in emotion folders; expected DIR/<emotion>/*.jpg "
                        "or DIR/test/<emotion>/*.jpg (folder names such as happy, sad, angry)")
    split = next((s for s in PHOTO_SPLITS if any(sp == s for _, _, sp in labelled)), "")
    chosen, per_emotion = [], {}
    for entry, emotion, sp in labelled:
        emotion = CONTEMPT if entry.path.split("/")[-2].lower() == CONTEMPT else emotion  # FER+'s eighth
        if (split and sp != split) or (limit is not None and per_emotion.get(emotion, 0) >= limit):
            continue
        per_emotion[emotion] = per_emotion.get(emotion, 0) + 1
        chosen.append((entry, emotion))
    return PhotoFolder(src, _folder_name(src.description, split), split, [e.path for e, _ in chosen],
                       [emotion for _, emotion in chosen], fingerprint([e for e, _ in chosen], src.key), limit)


def _folder_name(description: str, split: str) -> str:
    path = Path(description)
    return path.parent.name if split == "" and path.name.lower() in PHOTO_SPLITS else path.name or description


@dataclass
class PhotoPredictions:
    """Per-photo results of one pipeline: file, true label, whether a face was found, its box (the largest
    face; −1s when none), predicted label index (`NO_FACE` when none), confidence and probabilities."""

    files: np.ndarray
    y_true: np.ndarray
    found: np.ndarray
    boxes: np.ndarray
    y_pred: np.ndarray
    confidence: np.ndarray
    probabilities: np.ndarray
    labels: tuple[str, ...]
    meta: dict = field(default_factory=dict)  # model, detector, crop, TTA, dataset, source folder

    def __len__(self) -> int:
        return len(self.y_true)


def photo_scores(y_true, y_pred, labels) -> dict:
    """Every measure of a pipeline from true and predicted label indices (`NO_FACE` = no face found,
    counted wrong): face-found rate, accuracy, accuracy on the photos with a face, per-class scores
    (scikit-learn's) and macro-F1 over the emotions the photos have (an emotion without photos has no F1 to
    average; answering it is still wrong), 5-class recall, and the confusion matrix whose last column
    counts the photos without a face."""
    y_true, y_pred = np.asarray(y_true, int), np.asarray(y_pred, int)
    found = y_pred != NO_FACE
    present = sorted(set(y_true.tolist()))
    report = per_class_report(y_true, y_pred, labels)
    per_class = {labels[i]: {**report[labels[i]], "face_found": _mean(found[y_true == i]),
                             "recall_found": _mean(y_pred[found & (y_true == i)] == i)} for i in present}
    five = [e for e in FIVE_CLASS if e in per_class]
    matrix = confusion_matrix(y_true, np.where(found, y_pred, len(labels)), len(labels) + 1)[:len(labels)]
    return {"n": int(len(y_true)), "faces_found": int(found.sum()), "face_found": _mean(found),
            "accuracy": _mean(y_pred == y_true), "accuracy_found": _mean(y_pred[found] == y_true[found]),
            "macro_f1": _mean([per_class[labels[i]]["f1"] for i in present]),
            "five_class_recall": float(np.mean([per_class[e]["recall"] for e in five])) if five else None,
            "five_class_emotions": five, "labels": list(labels), "per_class": per_class,
            "confusion_labels": list(labels) + ["no face"], "confusion_matrix": matrix.tolist()}


def _mean(values) -> float | None:
    values = np.asarray(values)
    return float(values.mean()) if values.size else None


class PhotoEvaluation(dict):
    """The JSON-ready results of one pipeline on one photo folder; `.predictions` holds the per-photo ones."""

    predictions: PhotoPredictions | None = None


def evaluate_photos(info_or_id, folder, detector: str = DEFAULT_DETECTOR, crop: str = DEFAULT_CROP, tta=None,
                    *, limit: int | None = None, progress: ProgressFn | None = None,
                    classifier: Classifier | None = None) -> PhotoEvaluation:
    """Run a registered model through the photo pipeline (`detector`, `crop` policy, `tta`: None = the card's
    default) on every photo of `folder` (a path or a `list_photos` result) and score it. A photo with several
    faces is judged by its largest; unreadable files are logged and left out; save with `photo_store`.
    Detector `none` classifies each photo whole (crop policy `whole`): the classifier alone, as on face crops."""
    if detector == WHOLE_IMAGE:
        crop = WHOLE_CROP
    info = info_or_id if isinstance(info_or_id, registry.ModelInfo) else registry.get_model(str(info_or_id))
    photos = folder if isinstance(folder, PhotoFolder) else list_photos(folder, limit)
    ours = [e for e in photos.emotions if e in info.labels]
    if not ours:
        raise DataError(f"the photos of {photos.source.description} ({', '.join(photos.counts())}) have none of "
                        f"{info.id}'s emotions ({', '.join(info.labels)})")
    clf = classifier if classifier is not None else load_classifier(info)
    tta = clf.resolve_tta(tta)
    started = time.perf_counter()
    rows, content, unreadable, times = _run_all(photos, clf, detector, crop, tta, progress)
    pred = _predictions(rows, info.labels)
    skipped = {e: n for e, n in photos.counts().items() if e not in info.labels}
    dataset = {"id": content, "name": photos.name, "source": photos.source.description, "split": photos.split,
               "fingerprint": photos.fingerprint, "n_photos": len(photos.files), "photos_by_class": photos.counts(),
               "limit_per_class": photos.limit}
    result = PhotoEvaluation(
        model=info.id, dataset=dataset, detector=detector, crop=crop, tta=tta, **photo_scores(
            pred.y_true, pred.y_pred, info.labels),
        photos_by_class={e: int(np.sum(pred.y_true == i)) for i, e in enumerate(info.labels) if e in ours},
        skipped=int(sum(skipped.values())), skipped_by_class=skipped, unreadable=len(unreadable),
        unreadable_files=unreadable[:MAX_LISTED_UNREADABLE],
        ms_per_photo=float(np.mean(times)) if times else None, device=quick_device_description(),
        evaluated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        eval_seconds=round(time.perf_counter() - started, 2))
    pred.meta = {"model": info.id, "detector": detector, "crop": crop, "tta": tta, "dataset": dataset,
                 "evaluated_at": result["evaluated_at"]}
    result.predictions = pred
    return result


def _run_all(photos: PhotoFolder, clf: Classifier, detector: str, crop: str, tta: str, progress):
    """Each photo through the pipeline: per-photo rows, the content id of all the photos (file names, bytes and
    emotions, those the model lacks included, so every model and every copy of the folder, with or without its
    test/ level, gets the same id), unreadable [file, reason] pairs and the pipeline's milliseconds per photo
    (detect, crop, classify; not the disk read)."""
    h = hashlib.sha1(b"fer-photos-content-v1")
    rows, unreadable, times, found = [], [], [], 0
    meter = _Meter(len(photos.files), progress)
    policy = DEFAULT_CROP if crop == WHOLE_CROP else crop  # detector `none`: the whole photo, no crop policy applies
    for path, emotion in zip(photos.files, photos.emotions):
        data, image = _read(photos.source, path, decode=emotion in clf.labels, unreadable=unreadable)
        h.update(f"{path.rsplit('/', 1)[-1]}|{emotion}|{hashlib.sha1(data or b'').hexdigest()}\n".encode())
        if image is not None:
            start = time.perf_counter()
            face = _largest(analyze_image(image, clf, detector, crop=policy, tta=tta))
            times.append((time.perf_counter() - start) * 1000)
            rows.append((path, emotion, face))
            found += face is not None
        meter.step(found, len(unreadable))
    return rows, h.hexdigest()[:16], unreadable, times


def _read(source: Source, path: str, decode: bool, unreadable: list):
    """A photo's bytes and (when `decode`) its RGB pixels; (bytes or None, None) for a file that cannot be
    read or decoded, which is logged and added to `unreadable` as [path, reason]."""
    data = None
    try:
        data = source.read(path)
        return data, read_image(data) if decode else None
    except (OSError, ValueError, zipfile.BadZipFile, zlib.error) as err:  # ImageError and LimitError are ValueErrors
        reason = str(err).replace("\n", " ")[:160]
        log.warning("skipping unreadable photo %s: %s", path, reason)
        unreadable.append([path, reason])
        return data, None


def _largest(analysis):
    """The largest face of an analysed photo, or None when no face was found."""
    return max(analysis.faces, key=lambda f: f.box[2] * f.box[3], default=None)


def _predictions(rows, labels) -> PhotoPredictions:
    index = {e: i for i, e in enumerate(labels)}
    n = len(rows)
    probs = np.zeros((n, len(labels)), np.float32)
    boxes = np.full((n, 4), -1, np.int32)
    y_pred = np.full(n, NO_FACE, np.int64)
    confidence = np.full(n, np.nan, np.float32)
    for k, (_, _, face) in enumerate(rows):
        if face is not None:
            probs[k] = [face.probabilities[e] for e in labels]
            boxes[k] = face.box
            y_pred[k], confidence[k] = index[face.label], face.confidence
    return PhotoPredictions(np.array([r[0] for r in rows], dtype=str), np.array([index[r[1]] for r in rows], np.int64),
                            y_pred != NO_FACE, boxes, y_pred, confidence, probs, tuple(labels))


class _Meter:
    """`progress(done, total, message)` calls whose message is a tqdm meter line (bar, photos done, time left,
    faces found so far, unreadable), as batch scoring reports; every 10th photo and the last."""

    def __init__(self, total: int, progress: ProgressFn | None):
        self.total, self.done, self.progress = total, 0, progress
        self._start = time.perf_counter()

    def step(self, found: int, unreadable: int) -> None:
        self.done += 1
        if self.progress is None or (self.done % 10 and self.done != self.total):
            return
        from tqdm import tqdm

        self.progress(self.done, self.total, tqdm.format_meter(
            self.done, self.total, time.perf_counter() - self._start, ncols=100, unit=" photos",
            postfix=f"{found:,} faces found, {unreadable} unreadable"))
