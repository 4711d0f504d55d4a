"""Live Webcam: emotions of every face in the camera stream, in real time, with a live timeline.

The browser streams the camera over WebRTC (streamlit-webrtc); each frame goes through
`fer_core.video.frame_processor.FrameProcessor`, which lives in this session and also collects the timeline.
"""
from __future__ import annotations

import os
import time

import plotly.express as px
import streamlit as st

from fer_core.video import frame_processor
from fer_core.video import timeline
from fer_core.video import webrtc
from fer_core.inference.faces import DEFAULT_DETECTOR, DETECTORS
from fer_core.models import registry
from pages.common import DETECTOR_NAMES, TTA_NAMES, classifier, emotion_color_map, model_infos

webrtc.prepare_webrtc_import()  # before streamlit_webrtc: its SRTP library crashes if loaded after TensorFlow
from streamlit_webrtc import WebRtcMode, webrtc_streamer  # noqa: E402

st.set_page_config(page_title="Live Webcam", page_icon="🎥", layout="wide")
st.title("Live Webcam")

LIVE_WINDOW_S = 60  # the live chart shows the last minute
LIVE_TTA = {"none": "none (fastest)", "flip": TTA_NAMES["flip"], None: "the model's default"}

infos = model_infos()
if not infos:
    st.info("No trained models yet. Train one with `python -m fer_core train --arch fer_resvgg --data DIR`.")
    st.stop()


def ice_servers() -> list[dict]:
    """$FER_ICE_SERVERS (JSON) or secrets `ice_servers`; none by default (direct connection, fine on localhost)."""
    spec = os.environ.get("FER_ICE_SERVERS")
    if spec is None and st.secrets.load_if_toml_exists():
        spec = st.secrets.get("ice_servers")
    try:
        return webrtc.parse_ice_servers(spec)
    except ValueError as err:
        st.error(f"Ignoring the configured ICE servers: {err}")
        return []


# ----------------------------------------------------------------------------- settings
with st.sidebar:
    st.subheader("Model and speed")
    info = st.selectbox("Model", infos, index=infos.index(registry.pick_default(infos)),
                        format_func=lambda m: f"{m.name} — {m.label_set}")
    detector = st.radio("Face detector", DETECTORS, format_func=DETECTOR_NAMES.get,
                        index=DETECTORS.index(DEFAULT_DETECTOR),
                        help="BlazeFace (the default) is the fastest and gives the eye keypoints that level and "
                             "frame each face as FER2013 does; Haar + O-Net finds frontal faces only; MTCNN finds "
                             "turned and small faces but is slower.")
    every = st.slider("Detect faces every N-th frame", 1, 10, 3,
                      help="Between detections the last boxes are reused; higher is faster, slower to follow motion.")
    smoothing = st.slider("Label smoothing", 0.0, 0.95, 0.6, 0.05,
                          help="Weight of each face's past probabilities (moving average): higher = steadier "
                               "labels, slower to react. 0 shows raw per-frame predictions.")
    tta = st.selectbox("Test-time augmentation", LIVE_TTA, format_func=LIVE_TTA.get,
                       help="Views averaged per face and frame. Smoothing across frames already averages, so "
                            "live video rarely needs ten-crop, which costs 10× per face.")

clf = classifier(info)
if "webcam_processor" not in st.session_state:
    st.session_state.webcam_processor = frame_processor.FrameProcessor(clf)
processor: frame_processor.FrameProcessor = st.session_state.webcam_processor
processor.update(classifier=clf, detector=detector, detect_every=every, smoothing=smoothing, tta=tta)

# ----------------------------------------------------------------------------- stream
left, right = st.columns([3, 2])
with left:
    ctx = webrtc_streamer(
        key="fer-webcam",
        mode=WebRtcMode.SENDRECV,
        rtc_configuration={"iceServers": ice_servers()},
        media_stream_constraints={"video": {"width": {"ideal": 640}, "height": {"ideal": 480}}, "audio": False},
        video_frame_callback=processor.process_av,
        async_processing=True,
        translations={
            "device_access_denied": "Camera access was denied. Allow the camera for this site (camera icon in "
                                    "the address bar), then press START again.",
            "media_api_not_available": "This browser cannot open a camera on this address. Open the app via "
                                       "http://localhost or an https:// address.",
        },
    )
    st.caption("Press **START** and allow the camera. Nothing is recorded; frames are analysed in memory. "
               "If the camera was blocked, allow it in the browser's site settings and reload. Over a network "
               "other than localhost/LAN, set STUN/TURN servers via `FER_ICE_SERVERS` (JSON) or "
               "`ice_servers` in `.streamlit/secrets.toml`.")
with right:
    status_box = st.empty()
    summary_box = st.empty()
timeline_box = st.empty()
colors = emotion_color_map(processor.labels)


def show(tick: int) -> None:
    """Status line, session summary and timeline of what the processor has seen so far."""
    stats = processor.stats()
    with status_box.container():
        st.markdown(f"### {processor.status()}")
        st.caption(f"{stats['size']} at {stats['fps']:.1f} fps · {stats['latency_ms']:.0f} ms per frame · "
                   f"{stats['frames']:,} frames")
    df = processor.timeline()
    if df.empty:
        summary_box.info("The emotion timeline and session summary appear here once a face is seen.")
        timeline_box.empty()
        return
    summary = timeline.timeline_summary(df, processor.labels).reset_index()
    fig = px.bar(summary, x="share", y="emotion", orientation="h", color="emotion", color_discrete_map=colors,
                 title="Session: share of time per emotion", range_x=[0, 1])
    fig.update_layout(showlegend=False, height=300, margin=dict(t=40, b=10), xaxis_tickformat=".0%")
    summary_box.plotly_chart(fig, key=f"summary-{tick}")
    recent = df[df["time"] >= df["time"].max() - LIVE_WINDOW_S]
    faces = recent["face"].value_counts().index[:3]
    long = timeline.timeline_long(recent[recent["face"].isin(faces)], processor.labels)
    fig = px.line(long, x="time", y="probability", color="emotion", color_discrete_map=colors,
                  facet_row="face", title=f"Emotion probabilities, last {LIVE_WINDOW_S} s (smoothed)")
    fig.update_layout(height=220 + 160 * len(faces), margin=dict(t=40, b=10))
    fig.update_yaxes(range=[0, 1])
    timeline_box.plotly_chart(fig, key=f"timeline-{tick}")


if ctx.state.playing:
    tick = 0
    while ctx.state.playing:  # refresh while frames flow; a rerun (STOP, sidebar change) ends the loop
        show(tick)
        tick += 1
        time.sleep(1.0)
else:
    show(0)
    results = processor.timeline()
    if not results.empty:
        a, b = st.columns(2)
        a.download_button("Download per-frame results (CSV)", timeline.timeline_csv(results),
                          file_name="webcam_emotions.csv", mime="text/csv")
        if b.button("Clear session"):
            processor.reset()
            st.rerun()
