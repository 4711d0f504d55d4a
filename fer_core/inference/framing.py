"""From a detected face to the classifier's input: the crop policies of `faces.CROP_POLICIES`.

"box" cuts the detector's box, made square, with a margin (the pipeline's crop until issue #33).
"fer2013" levels the eyes (rotation about their midpoint, from the detector's eye keypoints) and cuts a
square framed the way FER2013's 48×48 faces are: the eye midpoint at `FER2013_EYES_AT` of the frame and the
eyes `FER2013_EYE_DISTANCE` of its side apart. A face without eye keypoints (Haar) gets the box crop.
Every crop comes with the 2×3 affine matrix mapping photo pixels to crop pixels, so an explanation
heatmap can be drawn back onto the photo.

`is_face_crop` is the rule for photos in which no face is found: a small, about square, not blank image is
taken to be a face crop itself (FER2013's 48×48 faces, film-frame thumbnails) and classified whole.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .face import Face
from .faces import CROP_POLICIES, DEFAULT_CROP, crop_box

# FER2013's framing as BlazeFace sees it: medians over 3,000 training faces upscaled to 192 px
# (`python -m bench.measure_framing`; docs/face_framing.md gives the method, the spread and the run).
FER2013_EYE_DISTANCE = 0.341  # distance between the eye keypoints / side of the 48×48 frame (IQR 0.309–0.367)
FER2013_EYES_AT = (0.505, 0.388)  # eye midpoint (x, y) / side of the frame (IQR x 0.476–0.538, y 0.351–0.420)
MAX_CROP_SIDE = 256  # larger faces are cut at this side: the classifiers take 48–224 px
DEFAULT_MARGIN = 0.15
# A photo without a detected face is classified whole when it looks like a face crop itself (`is_face_crop`):
WHOLE_IMAGE_MAX_SIDE = 160  # px: FER2013/FER+ faces are 48, film-frame and thumbnail crops up to ~150
WHOLE_IMAGE_MAX_RATIO = 1.5  # longer / shorter side: face crops are about square
WHOLE_IMAGE_MIN_STD = 4.0  # gray-level spread under which an image is blank, not a face


@dataclass
class FaceCrop:
    """The pixels given to the classifier for one face, the policy that cut them, and the photo→crop matrix."""

    pixels: np.ndarray
    matrix: np.ndarray  # 2×3 affine: photo (x, y, 1) → crop (x, y)
    policy: str


def check_crop(crop: str) -> str:
    """The crop policy's name, or a ValueError naming the known ones."""
    key = str(crop).strip().lower()
    if key not in CROP_POLICIES:
        raise ValueError(f"unknown crop policy {crop!r}; choose one of: {', '.join(CROP_POLICIES)}")
    return key


def eye_points(face: Face) -> tuple[np.ndarray, np.ndarray] | None:
    """The (image-left, image-right) eye centres of a face from its landmarks, or None when it has none.

    Landmark names follow MTCNN's: `left_eye` is the eye on the image's left in an upright face.
    """
    marks = face.landmarks or {}
    if "left_eye" not in marks or "right_eye" not in marks:
        return None
    left, right = np.asarray(marks["left_eye"], np.float64), np.asarray(marks["right_eye"], np.float64)
    return (left, right) if np.linalg.norm(right - left) >= 2 else None


def aligned_matrix(left_eye, right_eye, eye_distance: float = FER2013_EYE_DISTANCE,
                   eyes_at: tuple[float, float] = FER2013_EYES_AT,
                   max_side: int = MAX_CROP_SIDE) -> tuple[np.ndarray, int]:
    """The photo→crop affine matrix that levels the eyes and frames the face, and the crop's side in pixels.

    The crop's side is the face's own scale (eye distance / `eye_distance`), capped at `max_side`.
    """
    left, right = np.asarray(left_eye, np.float64), np.asarray(right_eye, np.float64)
    d = float(np.linalg.norm(right - left))
    side = d / eye_distance
    out = int(round(min(max(side, 8.0), max_side)))
    k = out / side
    angle = math.atan2(right[1] - left[1], right[0] - left[0])
    c, s = math.cos(angle) * k, math.sin(angle) * k
    mid = (left + right) / 2
    rot = np.array([[c, s], [-s, c]])  # rotates the eye line onto the x axis, scaled by k
    shift = np.array([eyes_at[0] * out, eyes_at[1] * out]) - rot @ mid
    return np.hstack([rot, shift[:, None]]), out


def aligned_crop(image: np.ndarray, left_eye, right_eye, **kw) -> tuple[np.ndarray, np.ndarray]:
    """The eyes-level crop framed like FER2013 (`aligned_matrix`) and its matrix. Pixels outside the photo
    repeat its edge. A crop much smaller than the face is cut from a shrunk copy (no aliasing)."""
    matrix, out = aligned_matrix(left_eye, right_eye, **kw)
    source, to_source = _shrunk_for(image, matrix, out)
    pixels = cv2.warpAffine(source, matrix @ to_source, (out, out), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    return pixels, matrix


def box_face_crop(image: np.ndarray, box, margin: float = DEFAULT_MARGIN) -> tuple[np.ndarray, np.ndarray]:
    """The square box crop with `margin` per side (`faces.crop_box`) and its (translation) matrix."""
    x0, y0, x1, y1 = crop_box(box, image.shape, margin, True)
    return np.ascontiguousarray(image[y0:y1, x0:x1]), np.array([[1.0, 0, -x0], [0, 1.0, -y0]])


def face_crop(image: np.ndarray, face, crop: str = DEFAULT_CROP, margin: float = DEFAULT_MARGIN) -> FaceCrop:
    """One face (a `Face` or an (x, y, w, h) box) cut by the policy `crop`."""
    face = face if isinstance(face, Face) else Face(tuple(int(v) for v in face), float("nan"))
    eyes = eye_points(face) if check_crop(crop) == "fer2013" else None
    if eyes is None:
        return FaceCrop(*box_face_crop(image, face.box, margin), policy="box")
    return FaceCrop(*aligned_crop(image, *eyes), policy="fer2013")


def face_crops(image: np.ndarray, faces, crop: str = DEFAULT_CROP, margin: float = DEFAULT_MARGIN) -> list[FaceCrop]:
    """Every face of a photo cut by the policy `crop` (see `face_crop`)."""
    image = np.asarray(image)
    return [face_crop(image, f, crop, margin) for f in faces]


def is_face_crop(image: np.ndarray) -> bool:
    """Whether a photo in which no face was found should be classified whole, as a face crop: at most
    `WHOLE_IMAGE_MAX_SIDE` px on its longer side, at most `WHOLE_IMAGE_MAX_RATIO` between its sides, and not
    blank. A larger photo without a face is reported as one: classifying a whole scene as a face would be a
    made-up answer. BlazeFace finds 93 % of FER2013's 48×48 faces itself (docs/face_framing.md); this catches
    the rest."""
    h, w = np.asarray(image).shape[:2]
    if min(h, w) < 1 or max(h, w) > WHOLE_IMAGE_MAX_SIDE or max(h, w) / min(h, w) > WHOLE_IMAGE_MAX_RATIO:
        return False
    gray = np.asarray(image, np.float32)
    return float(gray.std()) >= WHOLE_IMAGE_MIN_STD


def _shrunk_for(image: np.ndarray, matrix: np.ndarray, out: int) -> tuple[np.ndarray, np.ndarray]:
    """The source to warp from, and the 3×3 matrix from its pixels to the photo's: the photo itself, or,
    when the crop shrinks the face more than 2×, the region the crop covers shrunk (INTER_AREA) to twice
    the crop's resolution, so the linear warp does not alias."""
    k = math.hypot(matrix[0, 0], matrix[0, 1])  # crop pixels per photo pixel
    if k >= 0.5:
        return image, np.eye(3)
    cx, cy = cv2.invertAffineTransform(matrix) @ np.array([out / 2, out / 2, 1.0])
    half = 0.75 * out / k  # beyond the half diagonal of the rotated square
    H, W = image.shape[:2]
    x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
    x1, y1 = min(W, int(cx + half) + 1), min(H, int(cy + half) + 1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return image, np.eye(3)
    f = 2 * k
    region = image[y0:y1, x0:x1]
    small = cv2.resize(region, (max(1, round(region.shape[1] * f)), max(1, round(region.shape[0] * f))),
                       interpolation=cv2.INTER_AREA)
    fx, fy = small.shape[1] / region.shape[1], small.shape[0] / region.shape[0]
    return small, np.array([[1 / fx, 0, x0], [0, 1 / fy, y0], [0, 0, 1.0]])
