"""BlazeFace (fer_core.inference.blazeface): anchors, decoding and weighted NMS on made-up tensors, then the shipped
models on the bundled photos: the group, one-face and no-face photos, blank and texture images; no TensorFlow."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from skimage import data as skdata

from fer_core.inference import blazeface
from fer_core.inference.faces import detect_faces, get_detector
from fer_core.video.sample import group_photo

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT_FACE = (177, 67, 93, 93)


def iou(a, b) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / (a[2] * a[3] + b[2] * b[3] - ix * iy)


def test_anchors_follow_mediapipes_ssd_options():
    short = blazeface.ssd_anchors(blazeface.SHORT_RANGE)
    full = blazeface.ssd_anchors(blazeface.FULL_RANGE)
    assert short.shape == (896, 2) and full.shape == (2304, 2)  # the models' output rows
    # short range: a 16×16 map with 2 anchors per cell, then one 8×8 map for the three stride-16 layers (6 per cell)
    np.testing.assert_allclose(short[0], short[1])
    np.testing.assert_allclose(short[:2], [[0.5 / 16, 0.5 / 16]] * 2)
    np.testing.assert_allclose(short[2], [1.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(short[512:518], [[0.5 / 8, 0.5 / 8]] * 6)
    np.testing.assert_allclose(short[-1], [7.5 / 8, 7.5 / 8])
    np.testing.assert_allclose(full[[0, 1, 48]], [[0.5 / 48, 0.5 / 48], [1.5 / 48, 0.5 / 48], [0.5 / 48, 1.5 / 48]])


def test_decode_turns_anchor_offsets_into_boxes_and_keypoints():
    anchors = np.array([[0.25, 0.25], [0.5, 0.5], [0.75, 0.5]], np.float32)
    raw = np.zeros((3, 16), np.float32)
    raw[0, 2:4] = [16, 16]  # centred on its anchor, 1/8 of the input wide and high
    raw[1, :4] = [12.8, -6.4, 32, 64]  # offset (+0.1, −0.05) of the 128-px input, size 0.25 × 0.5
    raw[1, 4:6] = [-12.8, 0]  # first keypoint 0.1 left of the anchor
    raw[2, 2:4] = [0, 10]  # a box without width is no box
    logits = np.array([5.0, 2.0, 3.0])  # sigmoid: 0.993, 0.881, 0.953
    boxes, scores, points = blazeface.decode(raw, logits[:, None], anchors, 128, min_score=0.9)
    assert len(boxes) == 1  # row 1 scores too low, row 2 has no width
    np.testing.assert_allclose(boxes[0], [0.1875, 0.1875, 0.3125, 0.3125])
    boxes, scores, points = blazeface.decode(raw, logits[:, None], anchors, 128, min_score=0.5)
    i = int(np.argmin(np.abs(scores - 1 / (1 + np.exp(-2.0)))))
    np.testing.assert_allclose(boxes[i], [0.6 - 0.125, 0.45 - 0.25, 0.6 + 0.125, 0.45 + 0.25], atol=1e-6)
    np.testing.assert_allclose(points[i, 0], [0.4, 0.5], atol=1e-6)
    np.testing.assert_allclose(points[i, 1], [0.5, 0.5], atol=1e-6)
    assert points.shape[1:] == (6, 2)
    huge = blazeface.decode(raw[:1], np.array([[1e4]]), anchors[:1], 128, 0.5)[1]
    assert np.isfinite(huge).all()  # logits are clipped before the sigmoid


def test_weighted_nms_merges_overlapping_boxes_into_their_score_weighted_mean():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.6, 0.9, 0.7], np.float32)
    points = np.zeros((3, 6, 2), np.float32)
    points[:, 0] = [[0, 0], [10, 10], [55, 55]]
    out_b, out_s, out_p = blazeface.weighted_nms(boxes, scores, points, max_iou=0.3)
    assert out_s.tolist() == pytest.approx([0.9, 0.7])  # the best score of each group, best group first
    np.testing.assert_allclose(out_b[0], (0.6 * boxes[0] + 0.9 * boxes[1]) / 1.5, rtol=1e-6)
    np.testing.assert_allclose(out_p[0, 0], [6, 6], rtol=1e-6)
    np.testing.assert_allclose(out_b[1], boxes[2])
    empty = blazeface.weighted_nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 6, 2)))
    assert [len(a) for a in empty] == [0, 0, 0]


def test_letterbox_centres_the_photo_and_scales_to_minus_one_one():
    img = np.full((50, 100, 3), 255, np.uint8)
    tensor, scale, (ox, oy) = blazeface.letterbox(img, 128)
    assert tensor.shape == (1, 128, 128, 3) and scale == pytest.approx(1.28) and (ox, oy) == (0, 32)
    assert tensor[0, 64, 64, 0] == pytest.approx(1.0) and tensor[0, 5, 64, 0] == pytest.approx(-1.0)
    _, half, (ox, oy) = blazeface.letterbox(img, 128, fill=0.5)
    assert half == pytest.approx(0.64) and (ox, oy) == (32, 48)


def test_photo_tiles_split_only_large_photos():
    assert blazeface.photo_tiles((480, 640)) == [(0, 0, 640, 480)]
    assert blazeface.photo_tiles((350, 350)) == [(0, 0, 350, 350)]
    assert blazeface.photo_tiles((560, 1600)) == [(0, 0, 640, 560), (480, 0, 640, 560), (960, 0, 640, 560)]
    assert blazeface.photo_tiles((640, 960)) == [(0, 0, 640, 640), (320, 0, 640, 640)]
    tall = blazeface.photo_tiles((1024, 768))
    assert tall == [(0, 0, 768, 640), (0, 384, 768, 640)]


def test_blazeface_finds_the_astronaut_with_six_keypoints_in_place():
    (face,) = detect_faces(skdata.astronaut(), "blazeface")
    assert iou(face.box, ASTRONAUT_FACE) > 0.5 and face.score > 0.8
    assert set(face.landmarks) == set(blazeface.KEYPOINTS)
    marks = face.landmarks
    # named as MTCNN names them: the image-left eye is `left_eye`; eyes above the nose, the nose above the mouth
    assert marks["left_eye"][0] < marks["nose"][0] < marks["right_eye"][0]
    assert max(marks["left_eye"][1], marks["right_eye"][1]) < marks["nose"][1] < marks["mouth"][1]
    assert marks["left_ear"][0] < marks["left_eye"][0] and marks["right_ear"][0] > marks["right_eye"][0]
    x, y, w, h = face.box
    for px, py in marks.values():
        assert x - 5 <= px <= x + w + 5 and y - 5 <= py <= y + h + 5
    assert get_detector("blazeface") is get_detector("blazeface")


def test_blazeface_counts_the_group_single_and_no_face_photos():
    from fer_core.video.sample import sample_clip

    assert len(detect_faces(group_photo(), "blazeface")) == 6
    assert len(detect_faces(sample_clip(1)[0], "blazeface")) == 2
    mirrored = skdata.astronaut()[:, ::-1].copy()
    assert len(detect_faces(mirrored, "blazeface")) == 1
    for name in ("coffee", "chelsea", "coins", "rocket", "brick", "gravel", "grass", "text", "colorwheel"):
        img = getattr(skdata, name)()
        assert detect_faces(img, "blazeface") == [], name


def test_blazeface_reports_no_face_on_blank_noise_and_tiny_images():
    rng = np.random.default_rng(0)
    for img in (np.zeros((480, 640, 3), np.uint8), np.full((300, 300, 3), 200, np.uint8),
                rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), rng.integers(0, 256, (48, 48), dtype=np.uint8),
                np.zeros((5, 5, 3), np.uint8)):
        assert detect_faces(img, "blazeface") == []


def test_blazeface_runs_without_tensorflow():
    code = ("import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
            "from skimage import data\n"
            "from fer_core.inference.faces import detect_faces\n"
            "from fer_core.inference.framing import face_crops\n"
            "faces = detect_faces(data.astronaut(), 'blazeface')\n"
            "crops = face_crops(data.astronaut(), faces, 'fer2013')\n"
            "print(len(faces), crops[0].policy, sorted(m for m in ('tensorflow', 'keras', 'mtcnn') "
            "if sys.modules.get(m)))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "1 fer2013 []"
