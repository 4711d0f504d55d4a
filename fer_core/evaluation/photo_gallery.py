"""A gallery of a photo pipeline's misses, from its saved per-photo predictions and the photo folder: the photos
in which no face was found, then the most frequent confusions (true → predicted), each as thumbnails with the
face box drawn, so a reader sees whether detection, framing or the classifier lost them."""
from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np

from ..base.labels import emotion_rgb
from ..data.sources import Source
from ..inference.images import read_image
from .photos import NO_FACE, PhotoPredictions


@dataclass
class GalleryItem:
    """One photo of the gallery: its file (relative to the photo folder), face box (None: no face) and caption."""

    file: str
    box: tuple[int, int, int, int] | None
    caption: str
    label: str | None = None  # the predicted emotion (the box's colour)


@dataclass
class GallerySection:
    title: str
    count: int  # photos of this kind (the section shows at most `per_section` of them)
    items: list[GalleryItem]


def miss_gallery(pred: PhotoPredictions, confusions: int = 3, per_section: int = 12) -> list[GallerySection]:
    """The misses of one pipeline: photos with no face found, then its `confusions` most frequent confusions,
    each with its most confident mistakes first (at most `per_section` photos a section)."""
    labels = pred.labels
    sections = []
    lost = np.flatnonzero(~pred.found)
    if len(lost):
        sections.append(GallerySection(f"No face found: {_photos(len(lost))}", len(lost), [
            GalleryItem(str(pred.files[i]), None, f"{labels[pred.y_true[i]]} · no face") for i in lost[:per_section]]))
    for true, predicted, count in worst_confusions(pred, confusions):
        t, p = labels.index(true), labels.index(predicted)
        rows = np.flatnonzero((pred.y_true == t) & (pred.y_pred == p))
        rows = rows[np.argsort(-pred.confidence[rows], kind="stable")][:per_section]
        sections.append(GallerySection(f"{true} called {predicted}: {_photos(count)}", count, [
            GalleryItem(str(pred.files[i]), tuple(int(v) for v in pred.boxes[i]),
                        f"{true} → {predicted} {pred.confidence[i]:.0%}", predicted) for i in rows]))
    return sections


def _photos(n: int) -> str:
    return f"{n:,} photo" + ("s" if n != 1 else "")


def worst_confusions(pred: PhotoPredictions, k: int = 3) -> list[tuple[str, str, int]]:
    """The `k` most frequent (true, predicted, count) mistakes among the photos with a face found."""
    wrong = pred.found & (pred.y_pred != pred.y_true) & (pred.y_pred != NO_FACE)
    pairs, counts = np.unique(np.stack([pred.y_true[wrong], pred.y_pred[wrong]], axis=1), axis=0, return_counts=True)
    order = np.lexsort((pairs[:, 1], pairs[:, 0], -counts)) if len(counts) else []
    return [(pred.labels[pairs[i, 0]], pred.labels[pairs[i, 1]], int(counts[i])) for i in order[:k]]


def folder_present(source: str | None) -> bool:
    """Whether the photo folder (or zip) a result was measured on is on this machine."""
    return bool(source) and os.path.exists(source)


def thumbnail(source: str, item: GalleryItem, size: int = 128) -> np.ndarray | None:
    """The photo `item.file` of the folder `source`, its face box drawn in the predicted emotion's colour,
    fitted into `size`×`size` pixels; None when the file is missing or unreadable."""
    try:
        image = read_image(Source(source).read(item.file))
    except (OSError, ValueError, KeyError):  # a file moved away since, or not a readable image any more
        return None
    if item.box is not None and item.box[2] > 0:
        x, y, w, h = item.box
        thick = max(2, round(max(image.shape[:2]) / 150))
        image = cv2.rectangle(np.array(image, np.uint8, copy=True), (x, y), (x + w - 1, y + h - 1),
                              emotion_rgb(item.label or "", (255, 255, 0)), thick)
    scale = size / max(image.shape[:2])
    new = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, new, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
