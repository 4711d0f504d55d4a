"""The per-frame video processor, video-file analysis, the `video` CLI and the two video pages.

Frames come from `video.sample_clip` (real faces: scikit-image's astronaut photo); the model is
a tiny untrained Keras net registered under a temporary FER_MODELS_DIR.
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_core import faces as fer_faces  # noqa: E402
from fer_core import registry, video  # noqa: E402
from fer_core.cli import main as cli_main  # noqa: E402
from fer_core.labels import EMOTIONS  # noqa: E402

MODEL_ID = "tiny_video"


def make_tiny_model(models_dir: Path, model_id: str = MODEL_ID) -> Path:
    """A tiny 7-class Keras model with a card, registered under `models_dir`."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Conv2D(8, 3, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(7, activation="softmax")])
    folder = models_dir / model_id
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / registry.MODEL_FILE)
    registry.write_card(folder, {"id": model_id, "name": "Tiny video test net", "architecture": "tiny",
                                 "description": "untrained fixture", "labels": list(EMOTIONS),
                                 "preprocessing": {"input_size": 48, "channels": 1, "scale": "unit"},
                                 "params": model.count_params(), "default": True})
    return folder


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    make_tiny_model(root)
    return root


@pytest.fixture()
def env_models(models_dir, monkeypatch):
    monkeypatch.setenv("FER_MODELS_DIR", str(models_dir))
    return models_dir


@pytest.fixture(scope="module")
def classifier(models_dir):
    from fer_core.predict import Classifier

    return Classifier.from_registry(registry.get_model(MODEL_ID, models_dir))


@pytest.fixture(scope="module")
def clip():
    return video.sample_clip(24)


class SpyClassifier:
    """Wraps a classifier, recording the batch size of every predict call."""

    def __init__(self, inner):
        self.inner, self.labels, self.batches = inner, inner.labels, []

    def predict(self, crops, tta=False):
        self.batches.append(len(crops))
        return self.inner.predict(crops, tta=tta)


class JitterClassifier:
    """Returns a preset noisy probability sequence (happy vs sad) whose raw argmax flips often."""

    labels = ("happy", "sad")

    def __init__(self, p_happy):
        self.p_happy, self.i = list(p_happy), 0

    def predict(self, crops, tta=False):
        p = self.p_happy[self.i % len(self.p_happy)]
        self.i += 1
        return np.array([[p, 1.0 - p]] * len(crops))


# ----------------------------------------------------------------------------- frame processor
def test_processor_detects_classifies_and_draws_real_faces(classifier, clip, monkeypatch):
    calls = []
    real_detect = fer_faces.detect_faces
    monkeypatch.setattr(fer_faces, "detect_faces", lambda *a, **k: calls.append(1) or real_detect(*a, **k))
    spy = SpyClassifier(classifier)
    proc = video.FrameProcessor(spy, detect_every=4)
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
    assert len(df) == len(all_rows) and list(df.columns[:9]) == list(video.ROW_COLUMNS)
    counts = df["face"].value_counts()
    assert (counts >= 12).sum() >= 2, f"both moving faces must keep their id across frames: {counts.to_dict()}"
    assert all(b == len(r) for b, r in zip(spy.batches, [df[df.frame == f] for f in sorted(df.frame.unique())]))
    assert max(spy.batches) >= 2, "all faces of a frame are classified in one batched call"
    assert proc.status().startswith("Faces: 2 — ")
    assert proc.stats()["frames"] == 12


def test_processor_bgr_roundtrip_and_av_frames(classifier, clip):
    spy = SpyClassifier(classifier)
    video.warm_up(spy)
    assert spy.batches == [1, 2, 3, 4]
    proc = video.FrameProcessor(classifier, detect_every=1)
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
        proc = video.FrameProcessor(JitterClassifier(p_happy), smoothing=smoothing, detect_every=5)
        labels = [proc.process(f, timestamp=i / 15)[1] for i, f in enumerate(frames)]
        seq = [rows[0]["label"] for rows in labels if rows]
        assert len(seq) == len(frames)
        return sum(a != b for a, b in zip(seq, seq[1:]))

    raw, smoothed = flips(0.0), flips(0.8)
    assert raw >= 10, "the fixture must flip often without smoothing"
    assert smoothed <= raw / 3, (raw, smoothed)


def test_boxes_follow_moving_faces_between_detections(classifier):
    clip = video.sample_clip(30)
    truth = [sorted(f.box[:2] for f in fer_faces.detect_faces(f, min_size=40, max_side=640)) for f in clip]

    def box_error(follow):
        proc = video.FrameProcessor(classifier, detect_every=5, follow_motion=follow)
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
    proc = video.FrameProcessor(classifier)
    assert proc.update(smoothing=0.9, detect_every=2).smoothing == 0.9
    assert proc.settings.detect_every == 2
    for bad in ({"smoothing": 1.0}, {"detect_every": 0}, {"detector": "yolo"}, {"haar_step": 1.0}, {"speed": 3}):
        with pytest.raises(ValueError):
            proc.update(**bad)
    assert proc.settings.smoothing == 0.9, "a rejected update must leave the settings unchanged"
    proc.process(clip[0])
    proc.update(classifier=JitterClassifier([0.7]))
    _, rows = proc.process(clip[1])
    assert rows and set(rows[0]) >= {"happy", "sad"} and rows[0]["confidence"] == pytest.approx(0.7)


def test_tracking_helpers():
    assert fer_faces.box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert fer_faces.box_iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert fer_faces.box_iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    old, new = [(0, 0, 10, 10), (100, 100, 20, 20)], [(102, 101, 20, 20), (300, 0, 5, 5), (1, 0, 10, 10)]
    assert sorted(video.match_boxes(old, new)) == [(0, 2), (1, 0)]
    fast = (80, 0, 100, 100)  # moved by 0.8 of its side: IoU 0.11, still the same face
    assert fer_faces.box_iou((0, 0, 100, 100), fast) < 0.2 and video.match_boxes([(0, 0, 100, 100)], [fast]) == [(0, 0)]
    assert video.match_boxes([(0, 0, 100, 100)], [(60, 0, 40, 40)]) == [], "a much smaller box is another face"
    rng = np.random.default_rng(0)
    still = cv2.GaussianBlur(rng.integers(0, 255, (120, 160), dtype=np.uint8), (5, 5), 0)
    moved = np.roll(np.roll(still, 4, axis=1), -3, axis=0)
    dx, dy = video.box_shift(still, moved, (40, 30, 60, 50))
    assert dx == pytest.approx(4, abs=0.5) and dy == pytest.approx(-3, abs=0.5)
    assert video.box_shift(still, moved, (0, 0, 4, 4)) is None
    prev, cur = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    assert np.allclose(video.smooth(prev, cur, 0.75), [0.75, 0.25])
    assert np.allclose(video.smooth(None, cur, 0.75), cur)


# ----------------------------------------------------------------------------- timelines
def test_timeline_summary_weights_time_and_caps_pauses():
    df = pd.DataFrame({"time": [0.0, 1.0, 2.0, 3.0], "face": 1, "label": ["happy", "happy", "sad", "happy"]})
    s = video.timeline_summary(df, ("happy", "sad", "neutral"))
    assert s.loc["happy", "share"] == pytest.approx(0.75) and s.loc["sad", "share"] == pytest.approx(0.25)
    assert s.loc["neutral", "frames"] == 0 and list(s.index) == ["happy", "sad", "neutral"]
    paused = pd.DataFrame({"time": [0.0, 0.1, 0.2, 30.0], "face": 1, "label": ["sad", "sad", "sad", "happy"]})
    s = video.timeline_summary(paused)
    assert s.loc["sad", "face_seconds"] == pytest.approx(0.3) and s.loc["happy", "face_seconds"] == pytest.approx(0.1)
    assert video.timeline_summary(video.timeline_frame([], EMOTIONS), EMOTIONS)["share"].sum() == 0


# ----------------------------------------------------------------------------- video files
def test_analyze_video_file_and_bytes(classifier, clip, tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(video.write_mp4(clip, fps=12))
    seen = []
    res = video.analyze_video(path, classifier, every_n=3, progress=lambda d, t, m: seen.append((d, t)))
    assert (res.frames, res.analyzed, res.width, res.height) == (24, 8, 640, 480)
    assert res.fps == pytest.approx(12) and res.duration == pytest.approx(2.0, abs=0.01)
    assert seen and seen[-1][0] == seen[-1][1] == 24
    df = res.timeline
    assert set(df["frame"]) == set(range(8)) and df["time"].between(0, 2).all()
    assert df["face"].value_counts().max() == 8
    assert res.summary["share"].sum() == pytest.approx(1.0)
    back = pd.read_csv(io.BytesIO(res.csv()))
    assert len(back) == len(df) and list(back.columns) == list(df.columns)
    with av.open(io.BytesIO(res.video)) as out:
        stream = out.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        decoded = [f.to_ndarray(format="rgb24") for f in out.decode(stream)]
    assert len(decoded) == 24 and decoded[0].shape == (480, 640, 3)
    from_memory = video.analyze_video(path.read_bytes(), classifier, every_n=3, annotate=False)
    assert from_memory.video is None
    pd.testing.assert_frame_equal(from_memory.timeline, df)


def test_analyze_video_written_by_opencv(classifier, clip, tmp_path):
    path = tmp_path / "cv.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for frame in clip[:10]:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    res = video.analyze_video(path, classifier, every_n=2, annotate=False)
    assert res.frames == 10 and res.analyzed == 5 and not res.timeline.empty


def test_analyze_video_rejects_non_videos(classifier, clip, tmp_path):
    from fer_core.images import encode_png

    with pytest.raises(ValueError, match="not a readable video"):
        video.analyze_video(b"definitely not a video" * 50, classifier)
    with pytest.raises(ValueError, match="empty"):
        video.analyze_video(b"", classifier)
    with pytest.raises(ValueError, match="still image"):
        video.analyze_video(encode_png(clip[0]), classifier)
    with pytest.raises(FileNotFoundError):
        video.analyze_video(tmp_path / "missing.mp4", classifier)
    with pytest.raises(ValueError, match="every_n"):
        video.analyze_video(video.write_mp4(clip[:2]), classifier, every_n=0)


def test_ice_server_config():
    assert video.parse_ice_servers(None) == [] and video.parse_ice_servers(" ") == []
    assert video.parse_ice_servers('[{"urls": "stun:stun.example.org"}]') == [{"urls": "stun:stun.example.org"}]
    for bad in ("{", "[1]", '[{"user": "x"}]'):
        with pytest.raises(ValueError):
            video.parse_ice_servers(bad)


# ----------------------------------------------------------------------------- CLI
def test_cli_video(env_models, clip, tmp_path, capsys):
    src = tmp_path / "in.mp4"
    src.write_bytes(video.write_mp4(clip[:12], fps=12))
    csv, out = tmp_path / "t.csv", tmp_path / "annotated.mp4"
    assert cli_main(["video", "--model", MODEL_ID, "--every", "4", "--csv", str(csv), "--out", str(out), str(src)]) == 0
    printed = capsys.readouterr().out
    assert "12 frames" in printed and "3 analysed" in printed and "share" in printed
    assert len(pd.read_csv(csv)) >= 3 and out.read_bytes()[4:8] == b"ftyp"
    bad = tmp_path / "notes.mp4"
    bad.write_text("hello")
    assert cli_main(["video", "--model", MODEL_ID, str(bad)]) == 2
    assert "not a readable video" in capsys.readouterr().err
    assert cli_main(["video", "--model", MODEL_ID, "--out", str(tmp_path / "x.avi"), str(src)]) == 2
    assert cli_main(["video", "--model", "nope", str(src)]) == 2


# ----------------------------------------------------------------------------- pages
def _page_texts(at) -> str:
    kinds = ("markdown", "info", "warning", "caption", "error", "title", "metric")
    return "\n".join(str(getattr(e, "value", "")) for k in kinds for e in getattr(at, k))


def test_video_analysis_page(env_models, clip):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "pages" / "5_Video_Analysis.py"), default_timeout=120)
    at.run()
    assert not at.exception and "Upload a video" in _page_texts(at)
    at.file_uploader[0].set_value(("notes.mp4", b"this is text, not a video", "video/mp4"))
    at.run()
    at.button[0].click()
    at.run()
    assert not at.exception and "not a readable video" in _page_texts(at)
    at.file_uploader[0].set_value(("clip.mp4", video.write_mp4(clip[:12], fps=12), "video/mp4"))
    at.sidebar.slider[0].set_value(2)
    at.run()
    at.button[0].click()
    at.run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Frames analysed"] == "6" and int(metrics["Faces tracked"]) >= 2
    assert len(at.get("plotly_chart")) == 3
    assert [b.label for b in at.get("download_button")] == ["Download timeline (CSV)", "Download annotated video (MP4)"]


def test_live_webcam_page_wiring(env_models, clip, monkeypatch):
    """The page with streamlit-webrtc's component replaced by a recorder (the real one runs in the e2e test)."""
    import types

    import streamlit as st
    from streamlit.testing.v1 import AppTest

    video.prepare_webrtc_import()  # TensorFlow is loaded in this process already
    import streamlit_webrtc

    calls = []

    def fake_streamer(**kwargs):
        calls.append(kwargs)
        return types.SimpleNamespace(state=types.SimpleNamespace(playing=False, signalling=False))

    monkeypatch.setattr(streamlit_webrtc, "webrtc_streamer", fake_streamer)
    monkeypatch.setenv("FER_ICE_SERVERS", "not json")
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "pages" / "4_Live_Webcam.py"), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    text = _page_texts(at)
    assert "Ignoring the configured ICE servers" in text and "Press **START**" in text and "Waiting for frames" in text
    assert calls[-1]["rtc_configuration"] == {"iceServers": []}, "no STUN/TURN server unless configured"
    assert calls[-1]["media_stream_constraints"]["audio"] is False
    processor = at.session_state["webcam_processor"]
    assert calls[-1]["video_frame_callback"] == processor.process_av
    assert not at.get("download_button")

    monkeypatch.setenv("FER_ICE_SERVERS", '[{"urls": ["stun:stun.example.org:3478"]}]')
    at.sidebar.slider[1].set_value(0.2)
    at.sidebar.slider[0].set_value(5)
    at.run()
    assert processor.settings.smoothing == pytest.approx(0.2) and processor.settings.detect_every == 5
    assert calls[-1]["rtc_configuration"] == {"iceServers": [{"urls": ["stun:stun.example.org:3478"]}]}

    for i, frame in enumerate(clip[:6]):  # frames as the webcam callback would deliver them
        calls[-1]["video_frame_callback"](av.VideoFrame.from_ndarray(frame, format="rgb24"))
    at.run()
    assert not at.exception, at.exception
    assert "Faces: 2 — " in _page_texts(at)
    assert len(at.get("plotly_chart")) == 2
    assert [b.label for b in at.get("download_button")] == ["Download per-frame results (CSV)"]


def test_webrtc_stack_loads_after_tensorflow():
    """aiortc's SRTP binding segfaults when loaded after TensorFlow unless `prepare_webrtc_import` ran first."""
    import subprocess

    code = ("import tensorflow, fer_core.video as v; v.prepare_webrtc_import(); import streamlit_webrtc, aiortc; "
            "from pylibsrtp import Policy, Session; "
            "s = Session(policy=Policy(key=b'0' * 30, ssrc_type=Policy.SSRC_ANY_OUTBOUND)); "
            "print('protected', len(s.protect(b'\\x80\\x08\\x00\\x01' + bytes(28))))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "protected" in done.stdout, done.stderr[-2000:]
