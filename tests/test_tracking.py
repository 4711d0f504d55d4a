"""Following faces across frames: box matching, optical-flow shifts and probability smoothing."""
from __future__ import annotations

import cv2
import pytest
import numpy as np

from fer_core.inference import faces as fer_faces
from fer_core.video import tracking


def test_tracking_helpers():
    assert fer_faces.box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert fer_faces.box_iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert fer_faces.box_iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    old, new = [(0, 0, 10, 10), (100, 100, 20, 20)], [(102, 101, 20, 20), (300, 0, 5, 5), (1, 0, 10, 10)]
    assert sorted(tracking.match_boxes(old, new)) == [(0, 2), (1, 0)]
    fast = (80, 0, 100, 100)  # moved by 0.8 of its side: IoU 0.11, still the same face
    assert fer_faces.box_iou((0, 0, 100, 100), fast) < 0.2
    assert tracking.match_boxes([(0, 0, 100, 100)], [fast]) == [(0, 0)]
    assert tracking.match_boxes([(0, 0, 100, 100)], [(60, 0, 40, 40)]) == [], "a much smaller box is another face"
    rng = np.random.default_rng(0)
    still = cv2.GaussianBlur(rng.integers(0, 255, (120, 160), dtype=np.uint8), (5, 5), 0)
    moved = np.roll(np.roll(still, 4, axis=1), -3, axis=0)
    dx, dy = tracking.box_shift(still, moved, (40, 30, 60, 50))
    assert dx == pytest.approx(4, abs=0.5) and dy == pytest.approx(-3, abs=0.5)
    assert tracking.box_shift(still, moved, (0, 0, 4, 4)) is None
    prev, cur = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    assert np.allclose(tracking.smooth(prev, cur, 0.75), [0.75, 0.25])
    assert np.allclose(tracking.smooth(None, cur, 0.75), cur)
