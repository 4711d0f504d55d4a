"""The per-frame video processor, video-file analysis, the `video` CLI and the two video pages.

Frames come from `sample.sample_clip` (real faces: scikit-image's astronaut photo); the model is
a tiny untrained Keras net registered under a temporary FER_MODELS_DIR.
"""
from __future__ import annotations

import io
from pathlib import Path

import av
import cv2
import pandas as pd
import pytest

from fer_core.models import registry
from fer_core.video import files as video
from fer_core.video import webrtc
from fer_core.cli import main as cli_main
from tests.model_fixtures import VIDEO_MODEL_ID as MODEL_ID
from tests.model_fixtures import make_tiny_model

ROOT = Path(__file__).resolve().parents[1]

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
    from fer_core.inference.predict import Classifier

    return Classifier.from_registry(registry.get_model(MODEL_ID, models_dir))


# ----------------------------------------------------------------------------- timelines
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


def test_uploaded_video_is_decoded_and_encoded_in_memory(classifier, clip, tmp_path, monkeypatch):
    """Privacy: an upload never touches the disk: no temporary file, nothing in the temp folder."""
    import tempfile

    data = video.write_mp4(clip[:9], fps=9)
    spare = tmp_path / "tmp"
    spare.mkdir()
    monkeypatch.setenv("TMPDIR", str(spare))
    monkeypatch.setattr(tempfile, "tempdir", str(spare))
    for name in ("mkstemp", "mkdtemp", "NamedTemporaryFile", "TemporaryFile", "TemporaryDirectory",
                 "SpooledTemporaryFile"):
        monkeypatch.setattr(tempfile, name, lambda *a, **k: pytest.fail("a temporary file was created"))
    res = video.analyze_video(data, classifier, every_n=3, annotate=True)
    assert res.frames == 9 and res.video[4:8] == b"ftyp" and not list(spare.iterdir())
    frames = list(video.read_frames(io.BytesIO(data), every_n=4))
    assert [f.index for f in frames] == [0, 4, 8] and frames[1].time == pytest.approx(4 / 9, abs=1e-3)
    assert frames[0].rgb.shape == clip[0].shape
    assert len(list(video.read_frames(data, max_frames=5))) == 5
    with pytest.raises(ValueError, match="not a readable video"):
        list(video.read_frames(b"no video here" * 10))


def test_analyze_video_written_by_opencv(classifier, clip, tmp_path):
    path = tmp_path / "cv.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for frame in clip[:10]:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    res = video.analyze_video(path, classifier, every_n=2, annotate=False)
    assert res.frames == 10 and res.analyzed == 5 and not res.timeline.empty


def test_analyze_video_rejects_non_videos(classifier, clip, tmp_path):
    from fer_core.inference.images import encode_png

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

    webrtc.prepare_webrtc_import()  # TensorFlow is loaded in this process already
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


def test_docstring_examples_run():
    import doctest

    failures, tried = doctest.testmod(video)
    assert tried >= 1 and failures == 0
