"""Emotion prediction on photos: detect faces, classify every face of a photo in one batched call.

`Classifier` wraps a registered model with its card's labels and preprocessing and a compiled
forward pass (padded to fixed batch sizes so it traces once per size, not per call);
`analyze_image` is the photo pipeline shared by the page, the CLI and the video stage.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .face import Face
from .faces import DEFAULT_CROP, DEFAULT_DETECTOR, DEFAULT_MAX_SIDE, DEFAULT_MIN_SIZE, WHOLE_IMAGE, detect_faces
from .framing import DEFAULT_MARGIN, check_crop, face_crops, is_face_crop
from ..base.labels import emotion_rgb
from ..models.tta import tta_mode, tta_views
from ..models.probabilities import as_probabilities
from ..models.registry import ModelInfo, RegistryError, get_model, load_model

BATCH_BUCKETS: tuple[int, ...] = (1, 2, 4, 8, 16, 32)  # the forward pass's batch sizes (forward_batch_sizes)


class Classifier:
    """A registered Keras model ready for inference: `.labels`, `.preprocessing` and `.predict(crops)`."""

    def __init__(self, model, info: ModelInfo):
        self.model = model
        self.info = info
        self.labels: tuple[str, ...] = info.labels
        self.preprocessing = info.preprocessing
        self._check_shapes()
        self._forward = None  # compiled lazily so building a Classifier stays cheap

    @classmethod
    def from_registry(cls, model: str | ModelInfo) -> "Classifier":
        """Load a registered model by id (or folder path, or `ModelInfo`) for inference."""
        info = model if isinstance(model, ModelInfo) else get_model(str(model))
        return cls(load_model(info), info)

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def default_tta(self) -> str:
        """The model's own default inference, from its card (`inference.tta`; "none" unless set)."""
        return self.info.model_card.tta

    def resolve_tta(self, tta=None) -> str:
        """The TTA mode a call uses: the one asked for, else the card's default."""
        return self.default_tta if tta is None else tta_mode(tta)

    def predict(self, crops, tta=None) -> np.ndarray:
        """Class probabilities (N, K) for uint8 face crops, all in one batched call.

        `tta`: "none", "flip" (average with the mirrored face) or "tencrop" (ten views); None uses
        the card's default inference. True/False mean flip/none.
        """
        return self.predict_preprocessed(self.preprocessing.apply(crops), tta=tta)

    def predict_preprocessed(self, x: np.ndarray, tta=None) -> np.ndarray:
        """Class probabilities (N, K) for an already preprocessed float32 batch."""
        x = np.asarray(x, dtype=np.float32)
        n = len(x)
        if n == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        views = tta_views(x, self.resolve_tta(tta))
        probs = as_probabilities(self._run(views))
        return probs.reshape(len(views) // n, n, -1).mean(axis=0)

    def _run(self, x: np.ndarray) -> np.ndarray:
        if self._forward is None:
            self._forward = compiled_forward(self.model)
        outs, start = [], 0
        for size in forward_batch_sizes(len(x), pad=not getattr(self.model, "runtime", None)):
            chunk = x[start:start + size]
            real = len(chunk)
            if size != real:
                pad = np.zeros((size - real,) + chunk.shape[1:], np.float32)
                chunk = np.concatenate([chunk, pad])
            outs.append(np.asarray(self._forward(chunk))[:real])
            start += real
        return np.concatenate(outs).astype(np.float32)

    def _check_shapes(self) -> None:
        out = self.model.output_shape[-1]
        if out != len(self.labels):
            raise RegistryError(f"model {self.info.id!r} outputs {out} classes but its card lists "
                                f"{len(self.labels)} labels ({', '.join(self.labels)})")
        want = (self.preprocessing.input_size, self.preprocessing.input_size, self.preprocessing.channels)
        got = tuple(self.model.input_shape[1:])
        if got != want:
            raise RegistryError(f"model {self.info.id!r} expects input {got} but its card's preprocessing "
                                f"produces {want}")


def forward_batch_sizes(n: int, pad: bool = True) -> list[int]:
    """The batch sizes the forward pass runs for `n` inputs: full chunks of the largest of `BATCH_BUCKETS`, then
    the rest. `pad`: zero-pad the rest up to the smallest bucket that holds it (one compiled graph per size, not
    per count: Keras); else split it into buckets, largest first (an edge runtime's interpreter per size: one more
    call costs less than padded rows, e.g. 6 views run as 4 + 2, not as 8)."""
    top = BATCH_BUCKETS[-1]
    full, rest = divmod(n, top)
    sizes = [top] * full
    if pad:
        return sizes + ([next(b for b in BATCH_BUCKETS if b >= rest)] if rest else [])
    for bucket in reversed(BATCH_BUCKETS):
        while rest >= bucket:
            sizes.append(bucket)
            rest -= bucket
    return sizes


def compiled_forward(model):
    """`model(x)` as a compiled call returning NumPy: a tf.function on TensorFlow (≈10× faster than
    `model.predict` for one face), the backend-compiled `predict_on_batch` on JAX or PyTorch."""
    if getattr(model, "runtime", None):  # an edge export's LiteRT / ONNX Runtime session: already compiled
        return model
    import keras

    if keras.backend.backend() != "tensorflow":
        return model.predict_on_batch
    import tensorflow as tf

    forward = tf.function(lambda t: model(t, training=False))
    return lambda x: forward(x).numpy()


@dataclass
class FacePrediction:
    """One classified face: detector box and score, per-class probabilities, top label and confidence, and how
    it was cut (`crop`: "fer2013", "box", or "whole" for a photo classified whole)."""

    box: tuple[int, int, int, int]
    score: float | None
    probabilities: dict[str, float]
    label: str
    confidence: float
    landmarks: dict[str, tuple[int, int]] | None = None
    crop: str = DEFAULT_CROP

    def to_dict(self) -> dict:
        d = {"box": [int(v) for v in self.box], "detector_score": None if self.score is None else float(self.score),
             "crop": self.crop, "label": self.label, "confidence": float(self.confidence),
             "probabilities": {k: float(v) for k, v in self.probabilities.items()}}
        if self.landmarks:
            d["landmarks"] = {k: [int(p[0]), int(p[1])] for k, p in self.landmarks.items()}
        return d


@dataclass
class ImageAnalysis:
    """Everything found in one photo. `whole_image` is True when no face was detected and the whole
    image was classified as one (pre-cropped) face; `crop` is the crop policy asked for
    (`faces.CROP_POLICIES`); `crops` are exactly the pixels given to the classifier and `crop_matrices`
    their photo→crop affine matrices (neither in JSON)."""

    faces: list[FacePrediction]
    whole_image: bool
    image_size: tuple[int, int]  # (width, height)
    model_id: str
    labels: tuple[str, ...]
    detector: str
    tta: str  # the test-time augmentation mode used ("none", "flip", "tencrop")
    margin: float = DEFAULT_MARGIN
    crops: list[np.ndarray] = field(default_factory=list, repr=False, compare=False)
    crop: str = DEFAULT_CROP
    crop_matrices: list[np.ndarray] = field(default_factory=list, repr=False, compare=False)

    @property
    def probabilities(self) -> np.ndarray:
        """(N faces, K classes) probability matrix in `labels` order."""
        return np.array([[f.probabilities[e] for e in self.labels] for f in self.faces], np.float32) \
            .reshape(len(self.faces), len(self.labels))

    def to_dict(self) -> dict:
        return {"model": self.model_id, "labels": list(self.labels), "detector": self.detector,
                "crop": self.crop, "tta": self.tta, "whole_image": bool(self.whole_image),
                "image_size": {"width": int(self.image_size[0]), "height": int(self.image_size[1])},
                "faces": [f.to_dict() for f in self.faces]}


def analyze_image(image_rgb: np.ndarray, classifier: Classifier, detector=DEFAULT_DETECTOR, tta=None,
                  whole_image_if_no_face: bool | None = None, min_size: int = DEFAULT_MIN_SIZE,
                  max_side: int = DEFAULT_MAX_SIDE, margin: float = DEFAULT_MARGIN,
                  crop: str = DEFAULT_CROP) -> ImageAnalysis:
    """Detect the faces of a photo, cut each by the crop policy `crop` (`faces.CROP_POLICIES`) and classify
    them all in one batch.

    A photo without a detected face is classified whole, as one face, and `whole_image` set: when
    `whole_image_if_no_face` is None (the default), if it looks like a face crop itself (`framing.is_face_crop`:
    small, about square, not blank, such as FER2013's 48×48 images); with True, always; with False, never.
    The detector `none` (`faces.WholeImageDetector`) looks for nothing: every image is one pre-cropped face.
    """
    image = np.asarray(image_rgb)
    h, w = image.shape[:2]
    crop = check_crop(crop)
    if getattr(detector, "name", detector) == WHOLE_IMAGE:
        faces, whole = [], True
    else:
        faces = detect_faces(image, detector, min_size=min_size, max_side=max_side)
        whole = not faces and (is_face_crop(image) if whole_image_if_no_face is None else bool(whole_image_if_no_face))
    if whole:
        faces, crops, matrices = [Face((0, 0, w, h), float("nan"))], [image], [np.array([[1.0, 0, 0], [0, 1.0, 0]])]
        policies = ["whole"]
    else:
        cut = face_crops(image, faces, crop, margin)
        crops, matrices, policies = [c.pixels for c in cut], [c.matrix for c in cut], [c.policy for c in cut]
    tta = classifier.resolve_tta(tta)
    probs = classifier.predict(crops, tta=tta) if crops else np.zeros((0, len(classifier.labels)))
    results = []
    for face, p, policy in zip(faces, probs, policies):
        top = int(np.argmax(p))
        results.append(FacePrediction(face.box, None if whole else float(face.score),
                                      {e: float(v) for e, v in zip(classifier.labels, p)},
                                      classifier.labels[top], float(p[top]), face.landmarks, policy))
    name = detector if isinstance(detector, str) else getattr(detector, "name", type(detector).__name__)
    return ImageAnalysis(results, whole, (w, h), classifier.id, classifier.labels, name, tta, margin, crops,
                         crop, matrices)


def predictions_document(model_id: str, labels, detector: str, tta: str, images: list[dict],
                         crop: str = DEFAULT_CROP) -> dict:
    """The `predict --json` document: the model, its labels, detector, crop policy and TTA mode, then one entry per
    image (`{"file": …, **ImageAnalysis.to_dict()}`, or `{"file": …, "error": …}`). `fer_core.analyze(…)
    .to_json()` writes the same schema."""
    return {"model": model_id, "labels": list(labels), "detector": detector, "crop": crop, "tta": tta,
            "images": images}


def compare_models(crops, classifiers, tta=None, answered: dict | None = None) -> list[dict]:
    """Every classifier's prediction for every crop: rows of face, model, top label, confidence and
    the probability of each of that model's own labels (models may use different label sets).
    `answered` maps a model id to probabilities already computed for these crops (N × labels, same TTA),
    so the model a photo was analysed with is not run twice."""
    rows = []
    for clf in classifiers:
        probs = (answered or {}).get(clf.id)
        probs = clf.predict(crops, tta=tta) if probs is None else np.asarray(probs)
        for i, p in enumerate(probs):
            top = int(np.argmax(p))
            rows.append({"face": i + 1, "model": clf.id, "label": clf.labels[top], "confidence": float(p[top]),
                         **{e: float(v) for e, v in zip(clf.labels, p)}})
    return rows


def annotate(image_rgb: np.ndarray, analysis: ImageAnalysis) -> np.ndarray:
    """A copy of the photo with each face's box and a numbered "emotion 87%" label, in the emotion's colour."""
    out = np.array(np.asarray(image_rgb)[..., :3], dtype=np.uint8, copy=True)
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=-1)
    H, W = out.shape[:2]
    thick = max(1, round(max(H, W) / 400))
    font = max(0.35, max(H, W) / 1200)
    for i, face in enumerate(analysis.faces, start=1):
        color = emotion_rgb(face.label)
        x, y, w, h = face.box
        if not analysis.whole_image:
            cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), color, thick, cv2.LINE_AA)
        text = f"{i}: {face.label} {face.confidence:.0%}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, thick)
        ty = y - base - 2 if y - th - base - 4 >= 0 else y + th + 2
        tx = min(max(0, x), max(0, W - tw - 2))
        cv2.rectangle(out, (tx, ty - th - 2), (tx + tw + 2, ty + base), color, -1)
        cv2.putText(out, text, (tx + 1, ty), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), thick, cv2.LINE_AA)
    return out
