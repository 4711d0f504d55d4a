"""Face detection and cropping: BlazeFace (MediaPipe's detector in LiteRT, with six keypoints; its own
module, `fer_core.inference.blazeface`), OpenCV's Haar cascade confirmed by O-Net, or MTCNN (TensorFlow).

Every detector returns `Face` boxes (and landmarks, where it has them) in the original image's pixels.
Large photos are downscaled for detection only; crops are always cut from the original image
(`fer_core.inference.framing`), so the classifier sees as much detail as the photo holds. No weights are
downloaded: BlazeFace and O-Net ship in fer_core/assets, the Haar cascade in OpenCV, MTCNN's weights in
the `mtcnn` wheel.

False faces are cut twice: every Haar detection is confirmed by MTCNN's last network (O-Net, a
48×48 face/non-face classifier: one batched call per photo), and for every detector a box that
encloses another face or duplicates one is dropped. `bench/bench_faces.py` measures precision and
recall before and after.
"""
from __future__ import annotations

import functools
import math
import threading

import cv2
import numpy as np

from .blazeface import BlazeFaceDetector
from .face import Face, to_gray, to_rgb
from .onet import onet_confirmer

DETECTORS: tuple[str, ...] = ("blazeface", "haar", "mtcnn")
WHOLE_IMAGE = "none"  # the detector name that classifies each image whole, as one pre-cropped face
DETECTOR_CHOICES: tuple[str, ...] = (*DETECTORS, WHOLE_IMAGE)  # what --detector accepts where images may be crops
DEFAULT_DETECTOR = "blazeface"  # what every caller (API, CLI, serve, webcam, video, batch, pages) uses unless told
# How a detected face becomes the classifier's input (`fer_core.inference.framing.face_crops`):
CROP_POLICIES: dict[str, str] = {
    "fer2013": "eyes levelled and the face framed as in FER2013's 48×48 images (the box crop when the "
               "detector gives no eye keypoints)",
    "box": "the detector's box made square, with a 15 % margin per side",
}
DEFAULT_CROP = "fer2013"  # docs/face_framing.md: real_faces accuracy 0.608 (box crop 0.592)


def crop_help(extra: str = "") -> str:
    """The `--crop` option's help (every command that detects faces), %-escaped for argparse."""
    text = "how a face becomes the model's input: " + "; ".join(f"{k} = {v}" for k, v in CROP_POLICIES.items())
    return (text + extra).replace("%", "%%")


DEFAULT_MIN_SIZE = 24  # pixels in the original image; FER faces are 48 px, smaller ones carry little expression
DEFAULT_MAX_SIDE = 1024  # longer side used for detection; boxes are scaled back to the original image
HAAR_CASCADE = "haarcascade_frontalface_default.xml"



class HaarDetector:
    """OpenCV's frontal-face Haar cascade (Viola–Jones), run on the histogram-equalised gray image.

    Score: the cascade's last-stage level weight from `detectMultiScale3(outputRejectLevels=True)`,
    squashed with a logistic to 0–1. It ranks detections; it is not a calibrated probability.
    With `confirm` (default), each detection must also look like a face to MTCNN's O-Net
    (`onet.OnetConfirmer`): the cascade fires on coins, fabric and textures; O-Net does not.
    """

    name = "haar"

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, confirm: bool = True):
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.confirm = confirm
        self._cascade = cv2.CascadeClassifier(cv2.data.haarcascades + HAAR_CASCADE)
        if self._cascade.empty():
            raise RuntimeError(f"OpenCV could not load its bundled {HAAR_CASCADE}")
        self._lock = threading.Lock()  # a CascadeClassifier is not documented as thread-safe
        self.window = int(max(self._cascade.getOriginalWindowSize()))  # 24 px: the smallest face it sees

    def detect(self, image_rgb: np.ndarray, min_size: int = DEFAULT_MIN_SIZE) -> list[Face]:
        gray = cv2.equalizeHist(to_gray(image_rgb))
        side = max(1, int(min_size))
        with self._lock:
            rects, _levels, weights = self._cascade.detectMultiScale3(
                gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                minSize=(side, side), outputRejectLevels=True)
        faces = [Face(tuple(int(v) for v in r), 1.0 / (1.0 + math.exp(-float(w))))
                 for r, w in zip(rects, np.ravel(weights))]
        if self.confirm and faces:
            faces = onet_confirmer().confirm(image_rgb, faces)
        return faces



class MtcnnDetector:
    """MTCNN (P-, R- and O-Net cascade) from the `mtcnn` package: boxes, confidences and 5 landmarks.

    TensorFlow and the three networks load on first construction, so use `get_detector("mtcnn")`,
    which builds it once per process.
    """

    name = "mtcnn"
    # The smallest face MTCNN is asked for. mtcnn 1.0's pyramid misses every face when min_face_size
    # is above ~22 px (its level count ignores the start scale), so larger minimum sizes shrink the
    # image instead (detect_faces does that for any detector with a window): the same pyramid, intact.
    window = 20

    def __init__(self, min_score: float = 0.9, device: str = "CPU:0"):
        from ..base.extras import require

        mtcnn = require("mtcnn", "the MTCNN face detector")  # slow import (TensorFlow, three Keras nets): on demand
        self.min_score = min_score
        self._mtcnn = mtcnn.MTCNN(device=device)
        self._lock = threading.Lock()

    def detect(self, image_rgb: np.ndarray, min_size: int = DEFAULT_MIN_SIZE) -> list[Face]:
        rgb = to_rgb(image_rgb)
        if min(rgb.shape[:2]) < 12:  # smaller than MTCNN's 12-px P-Net window
            return []
        with self._lock:
            found = self._mtcnn.detect_faces(rgb, min_face_size=max(12, int(min_size)))
        faces = []
        for f in found or []:
            x, y, w, h = (int(round(v)) for v in f["box"])
            if f["confidence"] < self.min_score or w < min_size or h < min_size:
                continue
            marks = {k: (int(round(v[0])), int(round(v[1]))) for k, v in f.get("keypoints", {}).items()}
            faces.append(Face((x, y, w, h), float(f["confidence"]), marks or None))
        return faces


class WholeImageDetector:
    """A detector that finds nothing, so with the whole-image fallback every image is classified as
    one face: the `none` detector, for pre-cropped faces such as FER2013's 48×48 images or a folder of
    face crops (`evaluate --photos … --detector none` measures the classifier alone)."""

    name = WHOLE_IMAGE
    window = None

    def detect(self, image_rgb, min_size: int = DEFAULT_MIN_SIZE) -> list:
        return []


_DETECTOR_CLASSES = {"haar": HaarDetector, "mtcnn": MtcnnDetector, "blazeface": BlazeFaceDetector,
                     WHOLE_IMAGE: WholeImageDetector}


@functools.lru_cache(maxsize=8)
def _cached_detector(name: str, options: tuple):
    return build_detector(name, **dict(options))


def build_detector(name: str = DEFAULT_DETECTOR, **kw):
    """A new detector `name` (one of `DETECTOR_CHOICES`) with options `kw`; `get_detector` shares one per process."""
    key = str(name).strip().lower()
    if key not in _DETECTOR_CLASSES:
        raise ValueError(f"unknown face detector {name!r}; choose one of: {', '.join(DETECTOR_CHOICES)}")
    return _DETECTOR_CLASSES[key](**kw)


def get_detector(name: str = DEFAULT_DETECTOR, **kw):
    """The detector `name` (one of `DETECTOR_CHOICES`), built once per process and option set (an unknown name
    raises in `build_detector`; lru_cache keeps no failure)."""
    return _cached_detector(str(name).strip().lower(), tuple(sorted(kw.items())))


def box_intersection(a, b) -> float:
    """Overlapping area of two (x, y, w, h) boxes."""
    iw = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return iw * ih


def box_iou(a, b) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    inter = box_intersection(a, b)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def drop_enclosing(faces: list[Face], min_cover: float = 0.8) -> list[Face]:
    """Faces without those whose box encloses another face's box: a "face" drawn around a face is a
    detector false positive (Haar finds them on large photos)."""
    def encloses(big, small):
        return big[2] * big[3] > small[2] * small[3] and box_intersection(big, small) >= min_cover * small[2] * small[3]
    return [f for f in faces if not any(encloses(f.box, other.box) for other in faces if other is not f)]


def drop_duplicates(faces: list[Face], max_iou: float = 0.3, max_cover: float = 0.5) -> list[Face]:
    """Faces without second boxes on the same face: of two boxes overlapping by more than `max_iou`
    (IoU), or covering more than `max_cover` of the smaller one, the one with the higher score stays."""
    kept: list[Face] = []
    for f in sorted(faces, key=lambda f: f.score, reverse=True):
        if not any(box_iou(f.box, k.box) > max_iou
                   or box_intersection(f.box, k.box) > max_cover * min(f.box[2] * f.box[3], k.box[2] * k.box[3])
                   for k in kept):
            kept.append(f)
    return kept


def detect_faces(image_rgb: np.ndarray, detector=DEFAULT_DETECTOR, min_size: int = DEFAULT_MIN_SIZE,
                 max_side: int = DEFAULT_MAX_SIDE, keep_overlapping: bool = False) -> list[Face]:
    """Faces in an RGB (or gray) image, largest first, boxes in original pixels, without boxes that
    enclose another face or duplicate one (false positives; `keep_overlapping` keeps them all).

    Photos whose longer side exceeds `max_side` are downscaled for detection (speed) and the boxes
    scaled back; `min_size` is the smallest face side kept, in original pixels. A sliding-window
    detector (Haar) also works on an image shrunk until `min_size` matches its window: the faces
    it can find are the same, the pixels to scan far fewer.
    """
    det = get_detector(detector) if isinstance(detector, str) else detector
    image = np.asarray(image_rgb)
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w)) if max_side else 1.0
    window = getattr(det, "window", None)
    if window and min_size > window:
        scale = min(scale, window / min_size)
    small = shrink(image, (max(1, round(w * scale)), max(1, round(h * scale)))) if scale < 1.0 else image
    faces = det.detect(small, min_size=max(8, int(round(min_size * scale))))
    if scale < 1.0:
        faces = [_rescale(f, 1.0 / scale, w, h) for f in faces]
    faces = [f for f in faces if min(f.box[2], f.box[3]) >= min_size]
    if not keep_overlapping:
        faces = drop_duplicates(drop_enclosing(faces))
    return sorted(faces, key=lambda f: f.box[2] * f.box[3], reverse=True)


def shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` downscaled to `size` (width, height) by area averaging. A photo at least twice as large is first
    averaged over whole k×k pixel blocks (OpenCV's integer fast path; the last < k rows and columns dropped),
    then resized the rest of the way: detecting faces in a 12-megapixel phone photo takes three quarters of the
    time it took after one fractional area resize, the pixels half a gray level apart on average
    (bench/bench_faces.py)."""
    H, W = image.shape[:2]
    k = min(W // size[0], H // size[1])
    if k >= 2:
        image = cv2.resize(image[:H - H % k, :W - W % k], (W // k, H // k), interpolation=cv2.INTER_AREA)
    if image.shape[1::-1] == tuple(size):
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def crop_box(box, image_shape, margin: float = 0.15, square: bool = True) -> tuple[int, int, int, int]:
    """The (x0, y0, x1, y1) crop around `box` grown by `margin` of its size per side, clipped to the image.

    With `square`, the crop is a square on the box centre (side = the longer box side), as FER
    faces are square; a non-square crop would be stretched when resized to the model input.
    """
    x, y, w, h = box
    H, W = image_shape[:2]
    if square:
        side = max(w, h)
        x, y, w, h = x + (w - side) / 2, y + (h - side) / 2, side, side
    x0, y0 = int(round(x - margin * w)), int(round(y - margin * h))
    x1, y1 = int(round(x + w + margin * w)), int(round(y + h + margin * h))
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(W, x1), min(H, y1)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"face box {tuple(box)} lies outside the {W}×{H} image")
    return x0, y0, x1, y1


def _rescale(face: Face, k: float, W: int, H: int) -> Face:
    x, y, w, h = face.box
    x0, y0 = max(0, int(round(x * k))), max(0, int(round(y * k)))
    x1, y1 = min(W, int(round((x + w) * k))), min(H, int(round((y + h) * k)))
    marks = None
    if face.landmarks:
        marks = {n: (round(p[0] * k, 1), round(p[1] * k, 1)) for n, p in face.landmarks.items()}
    return Face((x0, y0, x1 - x0, y1 - y0), face.score, marks)
