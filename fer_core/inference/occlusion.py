"""Occlusion sensitivity: which parts of a face a model needs, found by hiding them (Zeiler & Fergus, 2014).

Grad-CAM needs gradients, so an edge export (LiteRT / ONNX) can only be explained through the Keras
model it was converted from, and not at all when that parent is not shipped. Occlusion needs nothing
but predictions: a patch of the face's mean value slides over the preprocessed input, every position
is classified in one batch, and each pixel scores the mean drop of the class's probability over the
patches that hid it. It explains any registered model as it actually runs (export, ensemble or Keras),
without test-time augmentation, for the price of one batched forward pass per face.
"""
from __future__ import annotations

from itertools import product

import cv2
import numpy as np

PATCH_FRACTION = 1 / 6  # patch side as a fraction of the input side: 8 pixels on a 48×48 face, about an eye


def occlusion_map(classifier, x_preprocessed: np.ndarray, class_index: int | None = None,
                  size: tuple[int, int] | None = None, patch: int | None = None,
                  stride: int | None = None) -> np.ndarray:
    """Heatmap in [0, 1] for one preprocessed input (S×S×C or 1×S×S×C) and a class (default: the predicted one).

    `classifier` is anything with `predict_preprocessed(batch, tta=...)`, e.g. a `predict.Classifier`.
    `patch` and `stride` are in input pixels (default: a sixth of the side, half-overlapping); `size`
    (height, width) resizes the map to a face crop. All zeros when hiding no part lowers the class's probability.
    """
    x = _one_input(x_preprocessed)
    side = min(x.shape[:2])
    patch = int(patch or max(1, round(side * PATCH_FRACTION)))
    stride = int(stride or max(1, patch // 2))
    if not 0 < stride <= patch <= side:
        raise ValueError(f"need 0 < stride ≤ patch ≤ {side} (the input side), got patch {patch}, stride {stride}")
    base = classifier.predict_preprocessed(x[None], tta="none")[0]
    k = int(np.argmax(base)) if class_index is None else int(class_index)
    if not 0 <= k < len(base):
        raise ValueError(f"class index {class_index} is out of range for {len(base)} classes")

    corners = list(product(_starts(x.shape[0], patch, stride), _starts(x.shape[1], patch, stride)))
    hidden = np.repeat(x[None], len(corners), axis=0)
    fill = x.mean(axis=(0, 1))  # the face's own mean: hides content without painting an extreme edge
    for view, (top, left) in zip(hidden, corners):
        view[top:top + patch, left:left + patch] = fill
    drops = base[k] - classifier.predict_preprocessed(hidden, tta="none")[:, k]

    total, count = np.zeros(x.shape[:2], np.float64), np.zeros(x.shape[:2], np.float64)
    for drop, (top, left) in zip(drops, corners):
        total[top:top + patch, left:left + patch] += drop
        count[top:top + patch, left:left + patch] += 1
    heat = np.clip(total / count, 0.0, None)
    if heat.max() > 0:
        heat /= heat.max()
    if size is not None:
        heat = cv2.resize(heat, (int(size[1]), int(size[0])), interpolation=cv2.INTER_CUBIC)
    return np.clip(heat, 0.0, 1.0).astype(np.float32)


def _one_input(x_preprocessed) -> np.ndarray:
    x = np.asarray(x_preprocessed, dtype=np.float32)
    if x.ndim == 4 and len(x) == 1:
        x = x[0]
    if x.ndim != 3:
        raise ValueError(f"expected one preprocessed input of shape S×S×C, got {np.shape(x_preprocessed)}")
    return x


def _starts(side: int, patch: int, stride: int) -> list[int]:
    """Patch offsets along one axis, the last one flush with the edge so every pixel is hidden at least once."""
    starts = list(range(0, side - patch + 1, stride))
    return starts if starts[-1] == side - patch else starts + [side - patch]
