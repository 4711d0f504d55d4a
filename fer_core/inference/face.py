"""The face record every detector returns (`Face`), and the colour conversions detectors share.

Its own module so that each detector (Haar and MTCNN in `faces`, BlazeFace in `blazeface`) and the O-Net
confirmation (`onet`) can use it without importing one another.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np


@dataclass
class Face:
    """One detected face: box (x, y, w, h) in original-image pixels, a detector score, optional landmarks
    ((x, y) in the same pixels; `left_eye` is the eye on the image's left in an upright face, as MTCNN names it)."""

    box: tuple[int, int, int, int]
    score: float
    landmarks: dict[str, tuple[float, float]] | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["box"] = [int(v) for v in self.box]
        d["score"] = float(self.score)
        if self.landmarks is not None:
            d["landmarks"] = {k: [int(v[0]), int(v[1])] for k, v in self.landmarks.items()}
        return d


def to_gray(image: np.ndarray) -> np.ndarray:
    """A uint8 gray image from a gray, RGB or RGBA one."""
    image = np.asarray(image)
    if image.ndim == 2:
        return image if image.dtype == np.uint8 else np.clip(image, 0, 255).astype(np.uint8)
    code = cv2.COLOR_RGBA2GRAY if image.shape[-1] == 4 else cv2.COLOR_RGB2GRAY
    return cv2.cvtColor(image.astype(np.uint8, copy=False), code)


def to_rgb(image: np.ndarray) -> np.ndarray:
    """An RGB image from a gray, RGB or RGBA one (RGB is returned as it is)."""
    image = np.asarray(image)
    if image.ndim == 2:
        return cv2.cvtColor(image.astype(np.uint8, copy=False), cv2.COLOR_GRAY2RGB)
    if image.shape[-1] == 4:
        return cv2.cvtColor(image, cv2.COLOR_RGBA2RGB)
    return image
