"""A model's preprocessing, stored in its card and applied identically everywhere.

Training, evaluation, photo and webcam inference all turn uint8 face crops into model input
through `Preprocessing.apply`, so a page never re-types input size, channels or scaling.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

SCALES = ("unit", "symmetric", "raw")


@dataclass(frozen=True)
class Preprocessing:
    """Input size (square, pixels), channels (1 gray or 3 gray-replicated), pixel scaling and
    histogram equalisation.

    scale: `unit` maps 0–255 to 0–1, `symmetric` to −1…1, `raw` keeps 0–255 (for models that
    rescale inside themselves, e.g. Keras applications). equalize: the FER2013 copy we train on is
    histogram-equalised, so photo and webcam crops are equalised the same way before a model sees them.
    """

    input_size: int = 48
    channels: int = 1
    scale: str = "unit"
    equalize: bool = False

    def __post_init__(self):
        if self.channels not in (1, 3):
            raise ValueError("channels must be 1 or 3")
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        return cls(int(d.get("input_size", 48)), int(d.get("channels", 1)), str(d.get("scale", "unit")),
                   bool(d.get("equalize", False)))

    def apply(self, faces) -> np.ndarray:
        """uint8 face crops (one H×W[×3] array, a list of them, or an N×H×W stack) → float32 N×S×S×C."""
        if isinstance(faces, np.ndarray) and faces.ndim == 3 and faces.shape[-1] not in (3, 4):
            stack = faces  # already N×H×W grayscale
        elif isinstance(faces, np.ndarray) and faces.ndim in (2, 3):
            stack = [faces]
        else:
            stack = list(faces)
        return self.to_input(self.prepare_uint8(stack))

    def to_input(self, faces: np.ndarray) -> np.ndarray:
        """Prepared N×S×S faces in 0–255 (uint8 or augmented floats) → the model's float32 N×S×S×C input."""
        x = faces.astype(np.float32)[..., None]
        if self.channels == 3:
            x = np.repeat(x, 3, axis=-1)
        if self.scale == "unit":
            x /= 255.0
        elif self.scale == "symmetric":
            x = x / 127.5 - 1.0
        return x

    def prepare_uint8(self, faces) -> np.ndarray:
        """Crops → N×S×S uint8 grayscale at the input size, equalised if the model expects it.

        Training calls this once on the whole dataset; `apply` calls it on every batch of crops.
        """
        if len(faces) == 0:
            return np.zeros((0, self.input_size, self.input_size), np.uint8)
        return np.stack([self._gray_resized(f) for f in faces])

    def _gray_resized(self, face: np.ndarray) -> np.ndarray:
        import cv2  # here, not at the top, so that reading cards (registry) stays light

        face = np.asarray(face)
        if face.ndim == 3:
            face = cv2.cvtColor(face, cv2.COLOR_RGBA2GRAY if face.shape[-1] == 4 else cv2.COLOR_RGB2GRAY)
        if face.dtype != np.uint8:
            face = np.clip(face, 0, 255).astype(np.uint8)
        if face.shape != (self.input_size, self.input_size):
            interp = cv2.INTER_AREA if face.shape[0] > self.input_size else cv2.INTER_LINEAR
            face = cv2.resize(face, (self.input_size, self.input_size), interpolation=interp)
        return cv2.equalizeHist(face) if self.equalize else face
