"""From a detected face to the classifier's input (fer_core.inference.framing): the FER2013 framing's geometry, a
rotated face levelled, the box fallback without keypoints, and the whole-image rule for face-filling photos."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from fer_core.inference import framing
from fer_core.inference.face import Face
from fer_core.inference.faces import CROP_POLICIES, DEFAULT_CROP, detect_faces


def eye_angle(face: Face) -> float:
    left, right = framing.eye_points(face)
    return math.degrees(math.atan2(right[1] - left[1], right[0] - left[0]))


def test_aligned_matrix_puts_the_eyes_where_fer2013_has_them():
    left, right = np.array([100.0, 220.0]), np.array([160.0, 190.0])  # tilted eyes, 67 px apart
    matrix, side = framing.aligned_matrix(left, right)
    d = np.linalg.norm(right - left)
    assert side == round(d / framing.FER2013_EYE_DISTANCE)
    ex, ey = framing.FER2013_EYES_AT
    half = framing.FER2013_EYE_DISTANCE * side / 2  # the eyes are FER2013_EYE_DISTANCE of the crop apart
    np.testing.assert_allclose(matrix @ [*left, 1], [ex * side - half, ey * side], atol=0.6)
    np.testing.assert_allclose(matrix @ [*right, 1], [ex * side + half, ey * side], atol=0.6)
    big, capped = framing.aligned_matrix([0, 0], [400, 0])
    assert capped == framing.MAX_CROP_SIDE  # a huge face is cut at the largest side a classifier needs
    np.testing.assert_allclose(big @ [200, 0, 1], [framing.FER2013_EYES_AT[0] * capped,
                                                   framing.FER2013_EYES_AT[1] * capped], atol=1e-6)


def test_a_rotated_face_comes_out_level_and_framed():
    photo = skdata.astronaut()
    turned = cv2.warpAffine(photo, cv2.getRotationMatrix2D((225, 120), 25, 1.0), (512, 512),
                            borderMode=cv2.BORDER_REFLECT)
    (face,) = detect_faces(turned, "blazeface")
    assert abs(eye_angle(face) + 25) < 6  # the detector sees the eyes tilted by the rotation
    crop = framing.face_crop(turned, face, "fer2013")
    assert crop.policy == "fer2013" and crop.pixels.shape[0] == crop.pixels.shape[1]
    left, right = framing.eye_points(face)
    for eye in (left, right):  # the matrix maps the eyes onto one level line, at FER2013's height
        assert (crop.matrix @ [*eye, 1])[1] == pytest.approx(framing.FER2013_EYES_AT[1] * crop.pixels.shape[0], abs=1)
    up = cv2.resize(crop.pixels, (192, 192), interpolation=cv2.INTER_CUBIC)
    (again,) = detect_faces(up, "blazeface")
    assert abs(eye_angle(again)) < 5  # and the detector agrees on the crop itself
    assert np.linalg.norm(np.subtract(*framing.eye_points(again))) / 192 == pytest.approx(
        framing.FER2013_EYE_DISTANCE, rel=0.15)


def test_large_faces_are_cut_from_a_shrunk_copy_with_the_same_framing():
    big = cv2.resize(skdata.astronaut(), (2048, 2048), interpolation=cv2.INTER_CUBIC)
    (face,) = detect_faces(big, "blazeface", max_side=0)
    crop = framing.face_crop(big, face, "fer2013")
    side = crop.pixels.shape[0]
    assert side == framing.MAX_CROP_SIDE
    small = framing.face_crop(skdata.astronaut(), detect_faces(skdata.astronaut(), "blazeface")[0], "fer2013")
    resized = cv2.resize(small.pixels, (side, side), interpolation=cv2.INTER_LINEAR).astype(float)
    assert np.abs(resized - crop.pixels).mean() < 20  # the same part of the face, at a different resolution


def test_box_crop_is_the_square_margin_crop_and_the_fallback_without_eye_keypoints():
    img = np.arange(100 * 200 * 3, dtype=np.uint32).reshape(100, 200, 3).astype(np.uint8)
    haar_face = Face((50, 20, 40, 40), 0.9)  # no landmarks
    for policy in CROP_POLICIES:
        crop = framing.face_crop(img, haar_face, policy, margin=0.25)
        assert crop.policy == "box"
        np.testing.assert_array_equal(crop.pixels, img[10:70, 40:100])
        np.testing.assert_allclose(crop.matrix @ [40, 10, 1], [0, 0])
    one_eye = Face((50, 20, 40, 40), 0.9, {"left_eye": (60, 30)})
    assert framing.face_crop(img, one_eye, "fer2013").policy == "box"
    with pytest.raises(ValueError, match="unknown crop policy 'tight'; choose one of: fer2013, box"):
        framing.face_crops(img, [haar_face], "tight")
    assert DEFAULT_CROP == "fer2013"


def test_whole_image_rule_takes_small_square_faces_not_scenes_or_blanks():
    face48 = cv2.cvtColor(cv2.resize(skdata.astronaut()[60:170, 170:280], (48, 48)), cv2.COLOR_RGB2GRAY)
    assert framing.is_face_crop(face48)
    assert framing.is_face_crop(np.zeros((150, 120, 3), np.uint8) + np.arange(120, dtype=np.uint8)[None, :, None])
    assert not framing.is_face_crop(np.full((48, 48), 128, np.uint8))  # blank
    assert not framing.is_face_crop(skdata.coffee())  # a 600×400 scene
    assert not framing.is_face_crop(np.tile(face48, (1, 3)))  # 144×48: a strip, not a face crop
    assert not framing.is_face_crop(np.zeros((0, 0), np.uint8))
