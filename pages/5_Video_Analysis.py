"""Video Analysis: every face's emotion over time in an uploaded video, its summary and an annotated copy.

The upload is decoded in memory by `fer_core.video.files.analyze_video`, which runs the same per-frame
processor as the live webcam page on every N-th frame.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import plotly.express as px
import streamlit as st

from fer_core.video import timeline
from fer_core.video import files as video
from fer_core.video import sample
from fer_core.inference.faces import DEFAULT_DETECTOR, DETECTORS
from fer_core.models import registry
from pages.common import DETECTOR_NAMES, classifier, emotion_color_map, model_infos

st.set_page_config(page_title="Video Analysis", page_icon="🎞️", layout="wide")
st.title("Video Analysis")

infos = model_infos()
if not infos:
    st.info("No trained models yet. Train one with `python -m fer_core train --arch fer_resvgg --data DIR`.")
    st.stop()


@st.cache_data(show_spinner="Generating the sample clip …")
def sample_video() -> bytes:
    return video.write_mp4(sample.sample_clip(90), fps=15)


class _Results:
    """Finished analyses shared by every session, least recently used dropped past `budget` bytes of
    annotated video: session state keeps only the job's key, so many sessions cannot pile up MP4s."""

    def __init__(self, budget: int = 512 * 2**20):
        self.budget, self._items, self._lock = budget, OrderedDict(), threading.Lock()

    def get(self, job):
        with self._lock:
            if job in self._items:
                self._items.move_to_end(job)
            return self._items.get(job)

    def put(self, job, result: video.VideoAnalysis) -> None:
        with self._lock:
            self._items[job] = result
            while len(self._items) > 1 and sum(len(r.video or b"") for r in self._items.values()) > self.budget:
                self._items.popitem(last=False)


@st.cache_resource
def results() -> _Results:
    return _Results()


# ----------------------------------------------------------------------------- inputs
with st.sidebar:
    st.subheader("Analysis")
    info = st.selectbox("Model", infos, index=infos.index(registry.pick_default(infos)),
                        format_func=lambda m: f"{m.name} — {m.label_set}")
    detector = st.radio("Face detector", DETECTORS, format_func=DETECTOR_NAMES.get,
                        index=DETECTORS.index(DEFAULT_DETECTOR))
    every = st.slider("Analyse every N-th frame", 1, 30, 5, help="1 analyses every frame (slowest, finest timeline).")
    smoothing = st.slider("Label smoothing", 0.0, 0.95, 0.5, 0.05,
                          help="Weight of each face's past probabilities between analysed frames (0 = none).")
    annotate = st.checkbox("Make an annotated video", value=True)

upload = st.file_uploader("Video file", type=list(video.VIDEO_TYPES),
                          help="Processed in memory; nothing is stored. Browsers play the annotated H.264 MP4.")
use_sample = st.toggle("…or use a generated sample clip (two faces cut from scikit-image's astronaut photo)")
if upload is not None:
    data, name = upload.getvalue(), upload.name
elif use_sample:
    data, name = sample_video(), "sample clip"
else:
    st.info("Upload a video (" + ", ".join(video.VIDEO_TYPES) + ") to see each face's emotions over time.")
    st.stop()

LIMITS = video.PAGE_LIMITS
job = (hashlib.sha1(data).hexdigest(), info.id, info.model_file.stat().st_mtime, detector, every, smoothing, annotate)
result = results().get(job) if st.session_state.get("video_job") == job else None
if result is None:
    if st.session_state.get("video_job") == job:
        st.caption("The earlier result was dropped from memory to make room for others; analyse again.")
    if not st.button("Analyse video", type="primary"):
        st.stop()
    bar = st.progress(0.0, text=f"Analysing {name} …")
    try:
        result = video.analyze_video(data, classifier(info), every_n=every,
                                     detector=detector, smoothing=smoothing, annotate=annotate,
                                     max_frames=LIMITS.max_frames, limits=LIMITS,
                                     progress=lambda d, t, m: bar.progress(min(1.0, d / max(t, 1)), text=m))
    except ValueError as err:
        bar.empty()
        st.error(f"Could not analyse {name}: {err}")
        st.stop()
    bar.empty()
    results().put(job, result)
    st.session_state.video_job = job
if result.frames >= LIMITS.max_frames:
    st.info(f"Only the first {LIMITS.max_frames:,} frames ({result.duration:.0f} s) were analysed, the page's "
            "limit; `python -m fer_core video` analyses longer videos.")

# ----------------------------------------------------------------------------- results
df = result.timeline
colors = emotion_color_map(result.labels)
a, b, c, d = st.columns(4)
a.metric("Duration", f"{result.duration:.1f} s", help=f"{result.frames:,} frames at {result.fps:.1f} fps")
b.metric("Frames analysed", f"{result.analyzed:,}", help=f"one in {every} frame(s)")
c.metric("Faces tracked", df["face"].nunique())
top = result.summary["share"].idxmax() if result.summary["share"].sum() > 0 else "—"
d.metric("Most of the time", top)

if df.empty:
    st.warning("No face was found in the analysed frames. Try the MTCNN detector, or analyse more frames.")
left, right = st.columns([3, 2])
if result.video:
    left.video(result.video, format="video/mp4")
if not df.empty:
    summary = result.summary.reset_index()
    fig = px.bar(summary, x="share", y="emotion", orientation="h", color="emotion", color_discrete_map=colors,
                 title="Share of face-time per emotion", range_x=[0, 1])
    fig.update_layout(showlegend=False, xaxis_tickformat=".0%", height=320)
    right.plotly_chart(fig)

    strip = df.assign(face=df["face"].map(lambda f: f"face {f}"))
    fig = px.scatter(strip, x="time", y="face", color="label", color_discrete_map=colors,
                     hover_data=["confidence"], title="Dominant emotion of each face over time")
    fig.update_traces(marker=dict(symbol="line-ns-open", size=18, line_width=3))
    fig.update_layout(height=160 + 50 * df["face"].nunique(), xaxis_title="time (s)", yaxis_title=None)
    st.plotly_chart(fig)

    faces = df["face"].value_counts().index.tolist()
    face = st.selectbox("Probabilities of face", faces,
                        format_func=lambda f: f"face {f} ({(df['face'] == f).sum()} frames)")
    long = timeline.timeline_long(df[df["face"] == face], result.labels)
    fig = px.line(long, x="time", y="probability", color="emotion", color_discrete_map=colors,
                  title=f"Face {face}: emotion probabilities over time (smoothing {smoothing:g})")
    fig.update_yaxes(range=[0, 1])
    st.plotly_chart(fig)

x, y = st.columns(2)
x.download_button("Download timeline (CSV)", result.csv(), file_name="video_emotions.csv", mime="text/csv")
if result.video:
    y.download_button("Download annotated video (MP4)", result.video, file_name="annotated.mp4", mime="video/mp4")
