"""Following faces across frames: match boxes between frames, move them with the optical flow, smooth
their probabilities.

Used by the per-frame processor (`fer_core.video.frame_processor`) for the live webcam and video files;
small pure functions, so they are easy to test on their own.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..inference.faces import box_iou


@dataclass
class Track:
    """A face followed across frames: its id, latest box (and the detector's landmarks, moved with it) and
    smoothed probabilities."""

    id: int
    box: tuple[int, int, int, int]
    probs: np.ndarray | None = None
    missed: int = 0
    landmarks: dict[str, tuple[int, int]] | None = None


def box_similarity(a, b) -> float:
    """How likely two boxes are the same face in consecutive frames: IoU, or for similar-sized boxes
    1 − centre distance / (1.5 × mean side), whichever is larger (so fast motion or dropped frames still match)."""
    iou = box_iou(a, b)
    side_a, side_b = (a[2] + a[3]) / 2, (b[2] + b[3]) / 2
    if min(side_a, side_b) <= 0 or max(side_a, side_b) / min(side_a, side_b) > 1.5:
        return iou
    dist = np.hypot(a[0] + a[2] / 2 - b[0] - b[2] / 2, a[1] + a[3] / 2 - b[1] - b[3] / 2)
    return max(iou, 1.0 - dist / (1.5 * (side_a + side_b) / 2))


def match_boxes(old, new, min_similarity: float = 0.3) -> list[tuple[int, int]]:
    """Greedy one-to-one matching of `old` to `new` boxes by `box_similarity`: (old index, new index) pairs."""
    pairs = sorted(((box_similarity(a, b), i, j) for i, a in enumerate(old) for j, b in enumerate(new)), reverse=True)
    used_old, used_new, matched = set(), set(), []
    for score, i, j in pairs:
        if score < min_similarity:
            break
        if i not in used_old and j not in used_new:
            used_old.add(i)
            used_new.add(j)
            matched.append((i, j))
    return matched


def box_shift(prev_gray: np.ndarray, gray: np.ndarray, box) -> tuple[float, float] | None:
    """How far the content of `box` moved between two gray frames, or None when unsure.

    Median Lucas–Kanade flow of the box's corners, keeping only points that track back to where they
    started (forward–backward check), as in the Median Flow tracker.
    """
    x, y, w, h = (max(0, int(round(v))) for v in box)
    roi = prev_gray[y:y + h, x:x + w]
    if roi.shape[0] < 8 or roi.shape[1] < 8:
        return None
    pts = cv2.goodFeaturesToTrack(roi, maxCorners=40, qualityLevel=0.01, minDistance=3)
    if pts is None or len(pts) < 4:
        return None
    pts = (pts + np.float32([x, y])).astype(np.float32)
    lk = dict(winSize=(15, 15), maxLevel=3)
    moved, ok, _ = cv2.calcOpticalFlowPyrLK(prev_gray, gray, pts, None, **lk)
    back, ok_back, _ = cv2.calcOpticalFlowPyrLK(gray, prev_gray, moved, None, **lk)
    fb_error = np.linalg.norm((back - pts).reshape(-1, 2), axis=1)
    ok = (ok.ravel() == 1) & (ok_back.ravel() == 1) & (fb_error < 1.0)
    if ok.sum() < max(4, len(pts) // 4):
        return None
    dx, dy = np.median((moved - pts).reshape(-1, 2)[ok], axis=0)
    return float(dx), float(dy)


def smooth(previous: np.ndarray | None, current: np.ndarray, smoothing: float) -> np.ndarray:
    """One exponential-moving-average step: `smoothing` of the past plus the rest of the new frame."""
    if previous is None or smoothing <= 0 or previous.shape != current.shape:
        return current
    return smoothing * previous + (1.0 - smoothing) * current
