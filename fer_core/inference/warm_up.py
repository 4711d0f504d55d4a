"""Warm a classifier up before its first real face: compile a Keras model for the batch sizes a few faces take,
and load the default face detector and the net that confirms uncertain faces, so a photo's or a stream's first
frames are not the slow ones."""
from __future__ import annotations

import numpy as np

from ..models.tta import tta_views
from .faces import detect_faces
from .onet import onet_confirmer
from .predict import forward_batch_sizes


def warm_up(classifier, max_faces: int = 4) -> None:
    """Compile a Keras classifier for the padded batch sizes that 1…`max_faces` faces take under its default
    TTA (one pass per size, on zeros), and load the default detector (`faces.DEFAULT_DETECTOR`) and the net that
    confirms uncertain faces, so a stream's (or photo's) first frames aren't slow. An edge export (LiteRT / ONNX)
    has nothing to compile."""
    if not getattr(getattr(classifier, "model", None), "runtime", None):
        for size in warm_batch_sizes(classifier, max_faces):
            classifier.predict_preprocessed(np.zeros((size, *classifier.model.input_shape[1:]), np.float32),
                                            tta="none")
    onet_confirmer().probabilities(np.zeros((48, 48, 3), np.uint8), [(0, 0, 48, 48)])
    detect_faces(np.zeros((64, 64, 3), np.uint8))


def warm_batch_sizes(classifier, max_faces: int) -> list[int]:
    """The batch sizes (`predict.forward_batch_sizes`) the forward pass sees for 1…`max_faces` faces and their
    TTA views."""
    one = np.zeros((1, *classifier.model.input_shape[1:]), np.float32)
    per_face = len(tta_views(one, classifier.default_tta))
    return sorted({size for faces in range(1, max_faces + 1) for size in forward_batch_sizes(faces * per_face)})
