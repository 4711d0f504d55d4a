"""The three-line Python API: `fer_core.analyze(photo)` and `fer_core.load(model_id)`.

    >>> import fer_core
    >>> from skimage import data                   # any photo: a path, bytes, file object or RGB array
    >>> result = fer_core.analyze(data.astronaut())
    >>> len(result.faces), result.faces[0].box
    (1, (175, 75, 100, 99))
    >>> face = result.faces[0]
    >>> face.label in result.labels and abs(sum(face.probabilities.values()) - 1) < 1e-4
    True
    >>> result.annotated().shape                   # the photo with boxes and labels drawn
    (512, 512, 3)
    >>> '"faces"' in result.to_json()              # the same document as `python -m fer_core predict --json`
    True

The same pipeline as the CLI's `predict` and the Image Prediction page (`fer_core.inference.predict`), with
the registry's default model unless one is named; models are loaded once per process.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from .inference.faces import DEFAULT_CROP, DEFAULT_DETECTOR, DEFAULT_MIN_SIZE
from .models.card import ModelInfo


def load(model: str | ModelInfo | None = None):
    """A registered model ready for inference, as a `fer_core.inference.predict.Classifier` (`.labels`,
    `.predict(crops)`): by id, model folder or `ModelInfo`; None means the default model. Loaded once
    per process and again when its files change (`fer_core.inference.loader.load_classifier`).

    >>> import fer_core
    >>> clf = fer_core.load("fer_resvgg_7class")
    >>> clf.labels
    ('angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral')
    """
    from .inference.loader import load_classifier

    return load_classifier(model)


@dataclass
class PhotoResult:
    """What `analyze` found in one photo: `.faces` (box, label, confidence, probabilities per face,
    largest first), `.to_json()`, `.annotated()`; `.analysis` is the underlying `ImageAnalysis`."""

    analysis: object  # predict.ImageAnalysis
    image: np.ndarray
    file: str | None = None

    @property
    def faces(self) -> list:
        """One `FacePrediction` per face: `.box` (x, y, w, h), `.label`, `.confidence`, `.probabilities`."""
        return self.analysis.faces

    @property
    def labels(self) -> tuple[str, ...]:
        return self.analysis.labels

    def to_dict(self) -> dict:
        """This photo's entry of the `predict --json` document: file, model, faces with boxes and probabilities."""
        return {"file": self.file, **self.analysis.to_dict()}

    def to_json(self, indent: int | None = 1) -> str:
        """The `python -m fer_core predict --json` document for this one photo."""
        from .inference.predict import predictions_document

        a = self.analysis
        return json.dumps(predictions_document(a.model_id, a.labels, a.detector, a.tta, [self.to_dict()], a.crop),
                          indent=indent)

    def annotated(self) -> np.ndarray:
        """A copy of the photo (RGB uint8) with each face's box and "emotion NN%" drawn in its emotion's colour."""
        from .inference.predict import annotate

        return annotate(self.image, self.analysis)


def analyze(image, model=None, detector: str = DEFAULT_DETECTOR, tta=None, min_size: int = DEFAULT_MIN_SIZE,
            whole_image_if_no_face: bool | None = None, crop: str = DEFAULT_CROP) -> PhotoResult:
    """Detect every face in a photo and classify its emotion, in one call.

    `image`: a file path, bytes, a file object, or an RGB (or gray) uint8 array. `model`: a model id,
    folder, `ModelInfo` or a loaded classifier (default: the registry's default model). `detector`: one of
    `fer_core.inference.faces.DETECTORS` (default `DEFAULT_DETECTOR`); `crop`: how a face becomes the model's
    input, one of `CROP_POLICIES` (default `DEFAULT_CROP`). `whole_image_if_no_face`: classify a photo without a
    detected face as one face — None (default) when it looks like a face crop itself (small, about square), True
    always, False never; the result's `whole_image` says so. `tta`: test-time augmentation ("none", "flip", ...; the
    model's own default when None). Bad files raise `fer_core.inference.images.ImageError` (a ValueError) with
    a clear message.

    >>> import fer_core
    >>> from skimage import data
    >>> [f.box for f in fer_core.analyze(data.astronaut(), model="fer_resvgg_4class").faces]
    [(175, 75, 100, 99)]
    """
    from .inference.images import read_image
    from .inference.predict import analyze_image

    file = None
    if isinstance(image, (str, os.PathLike)):
        file = str(image)
    elif hasattr(image, "read"):
        file = getattr(image, "name", None)
    pixels = image if isinstance(image, np.ndarray) else read_image(image)
    classifier = model if hasattr(model, "predict") and hasattr(model, "labels") else load(model)
    analysis = analyze_image(pixels, classifier, detector, tta=tta, whole_image_if_no_face=whole_image_if_no_face,
                             min_size=min_size, crop=crop)
    return PhotoResult(analysis, pixels, None if file is None else str(file))
