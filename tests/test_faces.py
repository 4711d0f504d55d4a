"""Face detection on real photos (scikit-image's astronaut portrait), scaling, minimum size and cropping."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from fer_core.inference import faces
from fer_core.inference.face import Face
from fer_core.inference.faces import DETECTORS, crop_box, detect_faces, get_detector
from fer_core.inference.images import SAMPLES, sample_image
from fer_core.inference.onet import onet_confirmer

ASTRONAUT_FACE = (177, 67, 93, 93)  # Eileen Collins' face, checked by eye


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    return inter / (aw * ah + bw * bh - inter)


def gradient(h=300, w=400) -> np.ndarray:
    ramp = np.linspace(0, 255, w, dtype=np.float32)[None, :].repeat(h, 0)
    return np.dstack([ramp, ramp[::-1], np.full_like(ramp, 128)]).astype(np.uint8)


def test_haar_finds_the_astronaut_and_nothing_in_faceless_photos():
    found = detect_faces(skdata.astronaut(), "haar")
    assert len(found) == 1
    assert iou(found[0].box, ASTRONAUT_FACE) > 0.6
    assert 0.5 < found[0].score <= 1.0
    assert detect_faces(skdata.coffee(), "haar") == []
    assert detect_faces(gradient(), "haar") == []


def test_mtcnn_finds_the_astronaut_with_landmarks_and_nothing_in_coffee():
    found = detect_faces(skdata.astronaut(), "mtcnn")
    assert len(found) == 1
    assert iou(found[0].box, ASTRONAUT_FACE) > 0.5
    assert found[0].score > 0.9
    x, y, w, h = found[0].box
    assert set(found[0].landmarks) == {"left_eye", "right_eye", "nose", "mouth_left", "mouth_right"}
    for px, py in found[0].landmarks.values():
        assert x <= px <= x + w and y <= py <= y + h
    assert detect_faces(skdata.coffee(), "mtcnn") == []
    cameraman = sample_image(next(t for t in SAMPLES if t.startswith("Cameraman")))  # as its sample title says
    assert len(detect_faces(cameraman, "mtcnn")) == 1 and detect_faces(cameraman, "haar") == []
    assert get_detector("mtcnn") is get_detector("mtcnn")  # loaded once


def test_large_photo_is_detected_downscaled_and_boxes_come_back_in_original_pixels():
    big = cv2.resize(skdata.astronaut(), (2048, 2048), interpolation=cv2.INTER_CUBIC)
    seen = []

    class Spy:
        def detect(self, image, min_size):
            seen.append((image.shape, min_size))
            return get_detector("haar").detect(image, min_size=min_size)

    found = detect_faces(big, Spy(), min_size=40, max_side=512)
    assert seen == [((512, 512, 3), 10)]
    assert len(found) == 1
    assert iou(found[0].box, tuple(4 * v for v in ASTRONAUT_FACE)) > 0.6


def test_shrink_averages_whole_blocks_first_and_stays_close_to_one_area_resize():
    photo = cv2.resize(skdata.astronaut(), (3001, 2250), interpolation=cv2.INTER_CUBIC)  # not a multiple of k = 2
    one_step = cv2.resize(photo, (1024, 768), interpolation=cv2.INTER_AREA)
    shrunk = faces.shrink(photo, (1024, 768))
    assert shrunk.shape == one_step.shape
    assert np.abs(shrunk.astype(int) - one_step).mean() < 1.0
    square = cv2.resize(skdata.astronaut(), (2048, 2048), interpolation=cv2.INTER_CUBIC)
    assert np.array_equal(faces.shrink(square, (1024, 1024)),  # a whole factor: exactly one area resize
                          cv2.resize(square, (1024, 1024), interpolation=cv2.INTER_AREA))
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    assert faces.shrink(gray, (300, 225)).shape == (225, 300)


def test_a_phone_sized_photo_finds_the_face_where_the_small_one_does():
    small = detect_faces(skdata.astronaut())
    big = cv2.resize(skdata.astronaut(), (4000, 4000), interpolation=cv2.INTER_CUBIC)[:3000]
    found = detect_faces(big)
    assert len(found) == len(small) == 1
    assert iou(found[0].box, tuple(v * 4000 / 512 for v in small[0].box)) > 0.9


def test_haar_scans_an_image_shrunk_to_its_window_when_min_size_allows():
    haar = get_detector("haar")
    seen = []

    class Spy:
        window = haar.window

        def detect(self, image, min_size):
            seen.append((image.shape, min_size))
            return haar.detect(image, min_size=min_size)

    found = detect_faces(skdata.astronaut(), Spy(), min_size=48)
    assert haar.window == 24 and seen == [((256, 256, 3), 24)]
    assert len(found) == 1 and iou(found[0].box, ASTRONAUT_FACE) > 0.6


def test_min_size_drops_small_faces():
    assert detect_faces(skdata.astronaut(), "haar", min_size=150) == []
    assert len(detect_faces(skdata.astronaut(), "haar", min_size=60)) == 1


def test_grayscale_input_is_accepted():
    gray = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2GRAY)
    assert len(detect_faces(gray, "haar")) == 1


def test_box_crops_use_the_original_with_margin_and_clip_at_borders():
    from fer_core.inference.framing import box_face_crop, face_crop

    img = np.arange(100 * 200 * 3, dtype=np.uint32).reshape(100, 200, 3).astype(np.uint8)
    crop, matrix = box_face_crop(img, (50, 20, 40, 40), margin=0.25)
    assert crop.shape == (60, 60, 3)
    np.testing.assert_array_equal(crop, img[10:70, 40:100])
    np.testing.assert_array_equal(matrix, [[1, 0, -40], [0, 1, -10]])  # photo → crop coordinates
    corner = face_crop(img, (0, 0, 40, 40), crop="box", margin=0.25)  # plain boxes work too
    assert corner.pixels.shape == (50, 50, 3) and corner.policy == "box"  # margin clipped at the top-left border
    tall, _ = box_face_crop(img, (100, 20, 20, 40), margin=0.0)
    assert tall.shape == (40, 40, 3)  # squared on the box centre, as FER faces are square
    assert crop_box((100, 20, 20, 40), img.shape, 0.0, square=False) == (100, 20, 120, 60)
    with pytest.raises(ValueError, match="outside"):
        crop_box((500, 500, 10, 10), img.shape)


def test_get_detector_caches_and_rejects_unknown_names():
    assert DETECTORS == ("blazeface", "haar", "mtcnn")
    assert get_detector("haar") is get_detector("HAAR")
    assert get_detector("haar", min_neighbors=3) is not get_detector("haar")
    with pytest.raises(ValueError, match="unknown face detector 'yolo'"):
        get_detector("yolo")


def test_face_to_dict_is_plain_json_types():
    d = Face((np.int32(1), 2, 3, 4), np.float32(0.5), {"nose": (np.int64(3), 4)}).to_dict()
    assert d == {"box": [1, 2, 3, 4], "score": 0.5, "landmarks": {"nose": [3, 4]}}
    assert type(d["box"][0]) is int and type(d["score"]) is float
    assert faces.HaarDetector.name == "haar"


def test_boxes_enclosing_another_face_are_dropped_as_false_positives():
    inner, around = Face((100, 100, 50, 50), 0.9), Face((80, 80, 100, 100), 0.8)
    elsewhere = Face((300, 40, 60, 60), 0.9)

    class Fixed:
        def detect(self, image, min_size):
            return [around, inner, elsewhere]

    found = detect_faces(np.zeros((400, 400, 3), np.uint8), Fixed(), min_size=20, max_side=0)
    assert [f.box for f in found] == [elsewhere.box, inner.box]  # largest first, the enclosing box gone
    assert len(faces.drop_enclosing([around, Face((150, 150, 60, 60), 0.9)])) == 2  # mere overlap is kept


def test_haar_detections_are_confirmed_so_coins_and_textures_are_no_faces():
    raw = get_detector("haar", confirm=False)
    assert len(detect_faces(skdata.coins(), raw)) >= 1, "the bare cascade sees faces in coins"
    assert detect_faces(skdata.coins(), "haar") == []
    big = cv2.resize(skdata.astronaut(), (2048, 2048), interpolation=cv2.INTER_CUBIC)
    assert len(detect_faces(big, raw, max_side=0)) > 1, "and on the upscaled portrait's suit"
    found = detect_faces(big, "haar", max_side=0)
    assert len(found) == 1 and iou(found[0].box, tuple(4 * v for v in ASTRONAUT_FACE)) > 0.6
    p = onet_confirmer().probabilities(skdata.astronaut(), [ASTRONAUT_FACE, (0, 400, 90, 90)])
    assert p[0] > 0.9 > 0.5 > p[1]


def test_duplicate_boxes_keep_the_higher_score_for_every_detector():
    best, shifted, other = Face((100, 100, 60, 60), 0.9), Face((115, 110, 60, 60), 0.7), Face((300, 40, 60, 60), 0.8)

    class Fixed:
        def detect(self, image, min_size):
            return [shifted, best, other]

    found = detect_faces(np.zeros((400, 400, 3), np.uint8), Fixed(), min_size=20, max_side=0)
    assert sorted(f.box for f in found) == sorted([best.box, other.box])
    kept = detect_faces(np.zeros((400, 400, 3), np.uint8), Fixed(), min_size=20, max_side=0, keep_overlapping=True)
    assert len(kept) == 3
    assert len(faces.drop_duplicates([best, Face((150, 100, 60, 60), 0.8)])) == 2  # a slight overlap is two faces


def test_mtcnn_finds_every_face_of_a_group_frame_at_any_min_size():
    from fer_core.video.sample import sample_clip

    frame = sample_clip(8)[0]  # two faces of ~85 px
    for min_size in (24, 40, 60):
        assert len(detect_faces(frame, "mtcnn", min_size=min_size)) == 2, min_size
    assert detect_faces(frame, "mtcnn", min_size=120) == []


def test_shipped_onet_answers_as_the_mtcnn_wheels_onet():
    """The LiteRT O-Net the Haar detector confirms with (no TensorFlow) is the `mtcnn` wheel's network:
    the same face probabilities on real and random patches."""
    import cv2
    import numpy as np
    from mtcnn.stages.stage_onet import StageONet
    from skimage import data as skdata

    from fer_core.inference.onet import OnetNetwork

    head = cv2.resize(skdata.astronaut()[66:161, 176:271], (48, 48), interpolation=cv2.INTER_LINEAR)  # Haar's box
    noise = np.random.default_rng(0).integers(0, 256, (5, 48, 48, 3), dtype=np.uint8)
    x = (np.concatenate([head[None], noise]).astype(np.float32) - 127.5) / 128.0
    shipped = OnetNetwork().face_probability(x)
    original = np.asarray(StageONet()._model(x, training=False)[2])[:, 1]
    np.testing.assert_allclose(shipped, original, atol=1e-4)
    assert shipped[0] > 0.8 > shipped[1:].max()  # the face is a face, noise is not
