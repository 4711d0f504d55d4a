"""BlazeFace, MediaPipe's face detector, run from its LiteRT files in the standalone interpreter (no TensorFlow).

Two models ship in fer_core/assets (fer_core/assets/NOTICE.md says where they come from): the short-range one
(128×128 input, 896 anchors; faces that fill a good part of the picture) and the full-range one (192×192,
2,304 anchors; faces down to a few percent of the picture, as in group photos). Each predicts, per SSD
anchor, a face score and a box with six keypoints. Here: letterbox the photo into the model's square,
decode the anchors, keep the scores over a threshold and merge overlapping boxes by weighted non-maximum
suppression (MediaPipe's own post-processing), then map back to photo pixels.

`BlazeFaceDetector` runs both models and merges their faces (measured in docs/face_framing.md).
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..base.litert import interpreter_class
from .face import Face, to_rgb
from .onet import onet_confirmer

ASSETS = Path(__file__).resolve().parents[1] / "assets"
# the six keypoints in the models' order, named as MTCNN names its landmarks: `left_eye` is the eye on the
# image's left in an upright face (the person's right eye); the ears are the tragions
KEYPOINTS: tuple[str, ...] = ("left_eye", "right_eye", "nose", "mouth", "left_ear", "right_ear")
RAW_SCORE_CLIP = 80.0  # logits are clipped before the sigmoid (MediaPipe clips at 100; float32 needs less)


@dataclass(frozen=True)
class BlazeModel:
    """One BlazeFace model: its file, square input side, SSD strides and anchors per feature-map cell
    (from MediaPipe's face_detection_{short,full}_range_common.pbtxt options)."""

    file: str
    size: int
    strides: tuple[int, ...]
    anchors_per_stride_layer: int  # 2 when interpolated_scale_aspect_ratio is 1 (two anchors per layer), else 1


SHORT_RANGE = BlazeModel("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 2)
FULL_RANGE = BlazeModel("face_detection_full_range.tflite", 192, (4,), 1)


def ssd_anchors(model: BlazeModel) -> np.ndarray:
    """Anchor centres (N, 2), normalised to the input square, in the order the model emits its predictions.

    Consecutive layers with the same stride share one feature map: each of its cells holds that many layers
    × `anchors_per_stride_layer` anchors, all centred on the cell (MediaPipe's SsdAnchorsCalculator with
    fixed anchor sizes).
    """
    centres = []
    strides = list(model.strides)
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        cells = model.size // strides[i]
        per_cell = (j - i) * model.anchors_per_stride_layer
        grid = (np.arange(cells, dtype=np.float32) + 0.5) / cells
        ys, xs = np.meshgrid(grid, grid, indexing="ij")
        centres.append(np.repeat(np.stack([xs.ravel(), ys.ravel()], axis=1), per_cell, axis=0))
        i = j
    return np.concatenate(centres).astype(np.float32)


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, size: int,
           min_score: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The predictions scoring at least `min_score`: boxes (M, 4) as normalised (x0, y0, x1, y1), scores (M,)
    and keypoints (M, 6, 2), normalised to the input square.

    Each raw prediction is (dx, dy, w, h, then (dx, dy) per keypoint) in input pixels, offsets from its anchor.
    """
    logits = np.clip(np.asarray(raw_scores, np.float32).reshape(-1), -RAW_SCORE_CLIP, RAW_SCORE_CLIP)
    scores = 1.0 / (1.0 + np.exp(-logits))
    keep = np.flatnonzero(scores >= min_score)
    raw = np.asarray(raw_boxes, np.float32).reshape(len(logits), -1)[keep] / size
    centre = raw[:, 0:2] + anchors[keep]
    half = raw[:, 2:4] / 2
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    points = raw[:, 4:].reshape(len(keep), (raw.shape[1] - 4) // 2, 2) + anchors[keep][:, None, :]
    valid = (half > 0).all(axis=1)
    return boxes[valid], scores[keep][valid], points[valid]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every (x0, y0, x1, y1) box in `a` with every one in `b`."""
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, points: np.ndarray,
                 max_iou: float = 0.3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's weighted non-maximum suppression: the best-scoring box takes every box overlapping it by
    more than `max_iou` (IoU) and becomes their score-weighted mean (box and keypoints), keeping its own score.
    Repeats on the rest. BlazeFace fires on several neighbouring anchors per face; the mean is steadier
    than any one of them."""
    order = np.argsort(-scores, kind="stable")
    boxes, scores, points = boxes[order], scores[order], points[order]
    overlap = iou_matrix(boxes, boxes) if len(boxes) else np.zeros((0, 0))
    left = np.ones(len(boxes), bool)
    out_b, out_s, out_p = [], [], []
    for i in range(len(boxes)):
        if not left[i]:
            continue
        group = left & (overlap[i] > max_iou)
        group[i] = True
        w = scores[group][:, None]
        out_b.append((boxes[group] * w).sum(0) / w.sum())
        out_p.append((points[group] * w[:, :, None]).sum(0) / w.sum())
        out_s.append(scores[i])
        left &= ~group
    if not out_b:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, points.shape[1], 2), np.float32)
    return np.array(out_b, np.float32), np.array(out_s, np.float32), np.array(out_p, np.float32)


def letterbox(image_rgb: np.ndarray, size: int, fill: float = 1.0) -> tuple[np.ndarray, float, tuple[float, float]]:
    """The photo scaled into a `size`² square (its longer side spans `fill` of it; black around it, centred) as
    the model's (1, size, size, 3) float input in [-1, 1], with the scale and the (x, y) offset of the photo."""
    h, w = image_rgb.shape[:2]
    scale = size * fill / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(image_rgb, (nw, nh), interpolation=interp) if (nw, nh) != (w, h) else image_rgb
    ox, oy = (size - nw) // 2, (size - nh) // 2
    square = np.zeros((size, size, 3), np.float32)
    square[oy:oy + nh, ox:ox + nw] = small
    square = square * (2.0 / 255.0) - 1.0
    return square[None], scale, (float(ox), float(oy))


class BlazeNetwork:
    """One BlazeFace model in the LiteRT interpreter: `faces(image_rgb, min_score)` → boxes, scores and
    keypoints in photo pixels, after weighted NMS. Thread-safe (one interpreter behind a lock)."""

    def __init__(self, model: BlazeModel, threads: int = 1):
        path = ASSETS / model.file
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: the BlazeFace model ships with fer_core (reinstall it)")
        self.model = model
        self.anchors = ssd_anchors(model)
        self._it = interpreter_class()(model_content=path.read_bytes(), num_threads=threads)
        self._it.allocate_tensors()
        self._input = self._it.get_input_details()[0]["index"]
        outs = self._it.get_output_details()
        self._boxes = next(d["index"] for d in outs if d["shape"][-1] > 1)
        self._scores = next(d["index"] for d in outs if d["shape"][-1] == 1)
        self._lock = threading.Lock()

    def raw(self, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The model's raw (boxes, score logits) for one (1, size, size, 3) input."""
        with self._lock:
            self._it.set_tensor(self._input, tensor)
            self._it.invoke()
            return self._it.get_tensor(self._boxes)[0].copy(), self._it.get_tensor(self._scores)[0].copy()

    def faces(self, image_rgb: np.ndarray, min_score: float, max_iou: float = 0.3, fill: float = 1.0):
        """(boxes (M, 4) x0, y0, x1, y1; scores (M,); keypoints (M, 6, 2)) in photo pixels; `fill`: see `letterbox`."""
        size = self.model.size
        tensor, scale, (ox, oy) = letterbox(image_rgb, size, fill)
        boxes, scores, points = weighted_nms(*decode(*self.raw(tensor), self.anchors, size, min_score), max_iou)
        offset = np.array([ox, oy], np.float32)
        boxes = (boxes.reshape(-1, 2, 2) * size - offset).reshape(-1, 4) / scale
        points = (points * size - offset) / scale
        return boxes, scores, points


def photo_tiles(shape, side: int = 640) -> list[tuple[int, int, int, int]]:
    """(x, y, w, h) windows the full-range model sees, each letterboxed into its 192² input: the whole photo
    when neither side exceeds 1.25 × `side`, else, along each longer axis, windows `side` long spread evenly
    and overlapping. A 640×480 frame is one window; a 1600×560 group photo three; a 960×640 photo two. The
    model reaches faces of ~16 px in its input, so a window of 640 px finds faces from ~50 px up; a whole wide
    photo shrunk to 192 px would lose its small faces."""
    H, W = shape[:2]

    def spans(length: int) -> list[tuple[int, int]]:
        n = max(1, int(np.ceil(length / side - 0.25)))
        if n == 1:
            return [(0, length)]
        return [(int(round(i * (length - side) / (n - 1))), side) for i in range(n)]

    return [(x, y, w, h) for y, h in spans(H) for x, w in spans(W)]


class BlazeFaceDetector:
    """BlazeFace short + full range, every face with its box, score and six keypoints (`KEYPOINTS`).

    The short-range model sees the whole photo (near faces); the full-range one sees it in `photo_tiles`
    (faces from ~50 px up). Their candidates scoring at least `min_score` are pooled and
    merged by weighted NMS, so a face both find counts once. A face scoring under `sure_score` must also
    look like a face to MTCNN's O-Net (`onet.OnetConfirmer`, probability ≥ 0.8): low BlazeFace scores are
    where textures and colour wheels sit. When nothing is found, the short-range model looks again at the
    photo shrunk to `fill_retry` of its square: a photo that is itself a face (a tight crop, FER2013's
    48×48 images) is then seen with the margin around the face the model was trained with; those faces are
    always O-Net-confirmed. The thresholds were chosen on real photos and bench/bench_faces.py's set
    (docs/face_framing.md).
    """

    name = "blazeface"
    window = None  # not a sliding window: detect_faces need not shrink the photo for a minimum size (and it drops
    # faces under the minimum size itself, so `detect` ignores `min_size`)

    def __init__(self, min_score: float = 0.3, sure_score: float = 0.6, fill_retry: float = 2 / 3,
                 max_iou: float = 0.3, threads: int = 1):
        self.min_score = float(min_score)
        self.sure_score = float(sure_score)
        self.fill_retry = float(fill_retry)
        self.max_iou = float(max_iou)
        self._short = BlazeNetwork(SHORT_RANGE, threads)
        self._full = BlazeNetwork(FULL_RANGE, threads)
        # the short-range model runs in this thread while the caller's runs the full-range one (both release
        # the GIL): a photo's detection takes about the longer of the two, not their sum
        self._beside = ThreadPoolExecutor(1, thread_name_prefix="blazeface-short")

    def detect(self, image_rgb: np.ndarray, min_size: int = 0) -> list[Face]:
        rgb = to_rgb(image_rgb)
        if min(rgb.shape[:2]) < 8:
            return []
        near = self._beside.submit(self._short.faces, rgb, self.min_score, self.max_iou)  # on the other core
        far = []
        for x, y, w, h in photo_tiles(rgb.shape):
            boxes, scores, points = self._full.faces(rgb[y:y + h, x:x + w], self.min_score, self.max_iou)
            far.append((boxes + np.float32([x, y, x, y]), scores, points + np.float32([x, y])))
        parts = [near.result(), *far]
        faces = self._confirmed(rgb, *weighted_nms(*(np.concatenate(p) for p in zip(*parts)), self.max_iou),
                                self.sure_score)
        if not faces and self.fill_retry < 1:
            found = self._short.faces(rgb, self.min_score, self.max_iou, fill=self.fill_retry)
            faces = self._confirmed(rgb, *found, sure=np.inf)
        return faces

    def _confirmed(self, rgb, boxes, scores, points, sure: float) -> list[Face]:
        """Faces of the merged candidates, those scoring under `sure` only if O-Net agrees."""
        faces = [self._face(b, s, p, rgb.shape) for b, s, p in zip(boxes, scores, points)]
        unsure = [f for f in faces if f.score < sure and f.box[2] > 0 and f.box[3] > 0]
        if unsure:
            agreed = {id(f) for f in onet_confirmer().confirm(rgb, unsure)}
            faces = [f for f in faces if f.score >= sure or id(f) in agreed]
        return [f for f in faces if f.box[2] > 0 and f.box[3] > 0]

    @staticmethod
    def _face(box, score, points, shape) -> Face:
        H, W = shape[:2]
        x0, y0 = max(0, int(round(box[0]))), max(0, int(round(box[1])))
        x1, y1 = min(W, int(round(box[2]))), min(H, int(round(box[3])))
        marks = {name: (round(float(p[0]), 1), round(float(p[1]), 1)) for name, p in zip(KEYPOINTS, points)}
        return Face((x0, y0, max(0, x1 - x0), max(0, y1 - y0)), float(score), marks)
