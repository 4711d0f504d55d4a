"""The per-frame processor (live webcam and video files): detect every N-th frame, follow boxes in between,
classify in one batch, smooth labels, draw; settings change while it runs.

Frames come from `sample.sample_clip` (real faces: scikit-image's astronaut photo); the model is a
tiny untrained Keras net (tests/test_video.py builds it).
"""
from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from fer_core.inference import faces as fer_faces
from fer_core.video import frame_processor
from fer_core.inference.warm_up import warm_batch_sizes, warm_up
from fer_core.models import registry
from fer_core.video import timeline
from fer_core.video import sample
from fer_core.base.labels import EMOTIONS
from tests.model_fixtures import VIDEO_MODEL_ID as MODEL_ID
from tests.model_fixtures import make_tiny_model


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    from fer_core.inference.predict import Classifier

    root = tmp_path_factory.mktemp("models")
    make_tiny_model(root)
    return Classifier.from_registry(registry.get_model(MODEL_ID, root))


class SpyClassifier:
    """Wraps a classifier, recording the batch size of every predict call."""

    def __init__(self, inner):
        self.inner, self.labels, self.batches, self.ttas = inner, inner.labels, [], []
        self.model, self.default_tta = inner.model, inner.default_tta

    def predict(self, crops, tta=None):
        self.batches.append(len(crops))
        self.ttas.append(tta)
        return self.inner.predict(crops, tta=tta)

    def predict_preprocessed(self, x, tta=None):
        self.batches.append(len(x))
        self.ttas.append(tta)
        return self.inner.predict_preprocessed(x, tta=tta)


class JitterClassifier:
    """Returns a preset noisy probability sequence (happy vs sad) whose raw argmax flips often."""

    labels = ("happy", "sad")

    def __init__(self, p_happy):
        self.p_happy, self.i = list(p_happy), 0

    def predict(self, crops, tta=False):
        p = self.p_happy[self.i % len(self.p_happy)]
        self.i += 1
        return np.array([[p, 1.0 - p]] * len(crops))


def test_processor_detects_classifies_and_draws_real_faces(classifier, clip, monkeypatch):
    calls = []
    real_detect = fer_faces.detect_faces
    monkeypatch.setattr(fer_faces, "detect_faces", lambda *a, **k: calls.append(1) or real_detect(*a, **k))
    spy = SpyClassifier(classifier)
    proc = frame_processor.FrameProcessor(spy, detect_every=4)
    all_rows = []
    for i, frame in enumerate(clip[:12]):
        before = frame.copy()
        out, rows = proc.process(frame, timestamp=i / 15)
        assert np.array_equal(frame, before), "the input frame must not be drawn on"
        assert out.shape == frame.shape and out.dtype == np.uint8
        all_rows += rows
        for r in rows:
            x, y, w, h = r["x"], r["y"], r["w"], r["h"]
            assert 0 <= x and 0 <= y and x + w <= frame.shape[1] and y + h <= frame.shape[0]
            edge = (slice(y, y + 2), slice(x, x + w))  # the box outline is drawn on the top edge
            assert (out[edge] != frame[edge]).any(), "box not drawn"
            probs = np.array([r[e] for e in EMOTIONS])
            assert probs.sum() == pytest.approx(1.0, abs=1e-3)
            assert r["label"] == EMOTIONS[int(np.argmax(probs))]
            assert r["confidence"] == pytest.approx(probs.max(), abs=1e-4)
    assert len(calls) == 3, "detector must run on frames 0, 4 and 8 only"
    df = proc.timeline()
    assert len(df) == len(all_rows) and list(df.columns[:9]) == list(timeline.ROW_COLUMNS)
    counts = df["face"].value_counts()
    assert (counts >= 12).sum() >= 2, f"both moving faces must keep their id across frames: {counts.to_dict()}"
    assert all(b == len(r) for b, r in zip(spy.batches, [df[df.frame == f] for f in sorted(df.frame.unique())]))
    assert max(spy.batches) >= 2, "all faces of a frame are classified in one batched call"
    assert proc.status().startswith("Faces: 2 — ")
    assert proc.stats()["frames"] == 12


def test_processor_bgr_roundtrip_and_av_frames(classifier, clip):
    spy = SpyClassifier(classifier)
    warm_up(spy)
    assert spy.batches == [1, 2, 4], "one pass per padded batch size that 1–4 faces take"
    spy.default_tta = "tencrop"
    assert warm_batch_sizes(spy, 4) == [8, 16, 32]  # 10, 20, 30 and 32 + 8 views
    proc = frame_processor.FrameProcessor(classifier, detect_every=1)
    bgr = cv2.cvtColor(clip[0], cv2.COLOR_RGB2BGR)
    out_bgr, rows_bgr = proc.process(bgr, bgr=True)
    proc.reset()
    out_rgb, rows_rgb = proc.process(clip[0])
    assert [r["label"] for r in rows_bgr] == [r["label"] for r in rows_rgb] and rows_rgb
    assert np.array_equal(cv2.cvtColor(out_bgr, cv2.COLOR_BGR2RGB), out_rgb)
    frame = av.VideoFrame.from_ndarray(clip[1], format="rgb24")
    frame.pts = 7
    annotated = proc.process_av(frame)
    assert annotated.pts == 7 and (annotated.width, annotated.height) == (frame.width, frame.height)
    assert not np.array_equal(annotated.to_ndarray(format="rgb24"), clip[1])


def test_smoothing_reduces_label_flips(clip):
    rng = np.random.default_rng(1)
    p_happy = np.clip(0.56 + rng.normal(0, 0.12, 60), 0.01, 0.99)
    frames = [clip[0]] * len(p_happy)  # one still face: only the classifier output varies

    def flips(smoothing):
        proc = frame_processor.FrameProcessor(JitterClassifier(p_happy), smoothing=smoothing, detect_every=5)
        labels = [proc.process(f, timestamp=i / 15)[1] for i, f in enumerate(frames)]
        seq = [rows[0]["label"] for rows in labels if rows]
        assert len(seq) == len(frames)
        return sum(a != b for a, b in zip(seq, seq[1:]))

    raw, smoothed = flips(0.0), flips(0.8)
    assert raw >= 10, "the fixture must flip often without smoothing"
    assert smoothed <= raw / 3, (raw, smoothed)


def test_boxes_follow_moving_faces_between_detections(classifier):
    clip = sample.sample_clip(30)
    truth = [sorted(f.box[:2] for f in fer_faces.detect_faces(f, min_size=40, max_side=640)) for f in clip]

    def box_error(follow):
        proc = frame_processor.FrameProcessor(classifier, detect_every=5, follow_motion=follow)
        errors = []
        for i, frame in enumerate(clip):
            found = sorted((r["x"], r["y"]) for r in proc.process(frame)[1])
            if i % 5 and len(found) == len(truth[i]) == 2:  # frames between detections
                errors += [abs(a[0] - b[0]) + abs(a[1] - b[1]) for a, b in zip(found, truth[i])]
        assert len(errors) >= 30
        return float(np.mean(errors))

    still, followed = box_error(False), box_error(True)
    assert followed < still / 2, (still, followed)


def test_settings_update_at_runtime_and_validation(classifier, clip):
    proc = frame_processor.FrameProcessor(classifier)
    assert proc.update(smoothing=0.9, detect_every=2).smoothing == 0.9
    assert proc.settings.detect_every == 2
    for bad in ({"smoothing": 1.0}, {"detect_every": 0}, {"detector": "yolo"}, {"haar_step": 1.0}, {"speed": 3},
                {"tta": "fivecrop"}):
        with pytest.raises(ValueError):
            proc.update(**bad)
    assert proc.settings.smoothing == 0.9, "a rejected update must leave the settings unchanged"
    proc.process(clip[0])
    proc.update(classifier=JitterClassifier([0.7]))
    _, rows = proc.process(clip[1])
    assert rows and set(rows[0]) >= {"happy", "sad"} and rows[0]["confidence"] == pytest.approx(0.7)


def test_live_test_time_augmentation_reaches_the_classifier(classifier, clip):
    """The webcam page's TTA choice: None keeps the card's default, `none`/`flip` override it per face."""
    spy = SpyClassifier(classifier)
    proc = frame_processor.FrameProcessor(spy, detect_every=1)
    proc.process(clip[0])
    proc.update(tta="flip")
    proc.process(clip[1])
    assert spy.ttas == [None, "flip"]
