"""Emotions over time, for the live webcam and for video files, through one per-frame processor.

`FrameProcessor.process` turns a frame into an annotated frame plus per-face timeline rows. It is
built for real time on a small CPU: faces are detected on a downscaled copy every N-th frame (boxes
follow the optical flow in between), all faces are classified in one batched call, and each face's probabilities
are smoothed over frames (an exponential moving average, faces matched between frames by box overlap)
so labels don't flicker. `analyze_video` runs the same processor over a file; `timeline_summary`
gives the share of time per emotion.
"""
from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, fields, replace
from fractions import Fraction
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pandas as pd

from . import faces as fer_faces
from .labels import EMOTION_COLORS, EMOTIONS

VIDEO_TYPES: tuple[str, ...] = ("mp4", "webm", "mov", "avi", "mkv", "m4v")
ROW_COLUMNS: tuple[str, ...] = ("time", "frame", "face", "x", "y", "w", "h", "label", "confidence")
MAX_OUTPUT_SIDE = 1280  # annotated videos are scaled down to this longer side (encode time, file size)
ProgressFn = Callable[[int, int, str], None]


@dataclass(frozen=True)
class VideoSettings:
    """Speed/stability knobs of the processor; every one can change while a stream runs.

    detect_every: run the detector on every N-th frame; in between, boxes follow the faces' motion.
    smoothing: weight of a face's past probabilities in the moving average (0 = raw per frame).
    detect_side: longer side of the downscaled copy the detector sees.
    min_face: smallest face side kept, in original pixels.
    haar_step: scale step of the Haar detector's image pyramid (1.1 is thorough; 1.2 is ~40 % faster, and
        tracking between detections covers the odd miss).
    keep_missed: detector rounds a face may go undetected before its box disappears.
    follow_motion: between detections, move each box with the optical flow of its pixels (Lucas–Kanade).
    """

    detector: str = "haar"
    detect_every: int = 3
    smoothing: float = 0.6
    detect_side: int = 320
    min_face: int = 40
    haar_step: float = 1.2
    margin: float = 0.15
    match_similarity: float = 0.3
    keep_missed: int = 1
    follow_motion: bool = True
    show_fps: bool = True

    def __post_init__(self):
        if str(self.detector).lower() not in fer_faces.DETECTORS:
            raise ValueError(f"unknown face detector {self.detector!r}; "
                             f"choose one of: {', '.join(fer_faces.DETECTORS)}")
        if int(self.detect_every) < 1:
            raise ValueError("detect_every must be 1 or more")
        if not 0.0 <= float(self.smoothing) < 1.0:
            raise ValueError("smoothing must be in [0, 1): 0 means no smoothing")
        if int(self.detect_side) < 64 or int(self.min_face) < 8:
            raise ValueError("detect_side must be at least 64 px and min_face at least 8 px")
        if not 0.0 <= float(self.margin) <= 1.0 or not 0.0 < float(self.match_similarity) < 1.0:
            raise ValueError("margin must be in [0, 1] and match_similarity in (0, 1)")
        if not 1.01 <= float(self.haar_step) <= 2.0:
            raise ValueError("haar_step must be between 1.01 and 2")
        if int(self.keep_missed) < 0:
            raise ValueError("keep_missed must be 0 or more")


@dataclass
class _Track:
    """A face followed across frames: its id, latest box and smoothed probabilities."""

    id: int
    box: tuple[int, int, int, int]
    probs: np.ndarray | None = None
    missed: int = 0


def box_similarity(a, b) -> float:
    """How likely two boxes are the same face in consecutive frames: IoU, or for similar-sized boxes
    1 − centre distance / (1.5 × mean side), whichever is larger (so fast motion or dropped frames still match)."""
    iou = fer_faces.box_iou(a, b)
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


class FrameProcessor:
    """Frames in; annotated frames and per-face timeline rows out. All state (tracks, history) lives here.

    `classifier` is anything with `.labels` and `.predict(crops) -> (N, K)` (a `predict.Classifier`);
    the timeline keeps the latest `history` rows (≈ 17 min of two faces at 15 fps). Thread-safe:
    streamlit-webrtc calls `process` from its worker thread while the page calls `update`,
    `timeline` and `status` from the script thread.
    """

    def __init__(self, classifier, settings: VideoSettings | None = None, history: int = 30_000, **changes):
        self._lock = threading.RLock()
        self._classifier = classifier
        self._settings = replace(settings or VideoSettings(), **changes)
        self._rows: deque[dict] = deque(maxlen=history)
        self.reset()

    # --- settings and state -------------------------------------------------------------------
    @property
    def settings(self) -> VideoSettings:
        return self._settings

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self._classifier.labels)

    def update(self, classifier=None, **changes) -> VideoSettings:
        """Change settings (and/or the classifier) while frames keep coming; a new classifier restarts the tracks."""
        known = {f.name for f in fields(VideoSettings)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown video setting(s): {', '.join(sorted(unknown))}")
        with self._lock:
            self._settings = replace(self._settings, **changes)
            if classifier is not None and classifier is not self._classifier:
                self._classifier = classifier
                self._tracks, self._need_detect = [], True
        return self._settings

    def reset(self) -> None:
        """Forget tracks, history and clocks (a new session)."""
        with self._lock:
            self._tracks: list[_Track] = []
            self._need_detect = True
            self._next_id = 1
            self._frame_index = 0
            self._shape = None
            self._prev_gray = None
            self._t0 = None
            self._last_start = None
            self._fps = 0.0
            self._latency_ms = 0.0
            self._latest: list[dict] = []
            self._rows.clear()

    # --- per frame ----------------------------------------------------------------------------
    def process(self, frame: np.ndarray, timestamp: float | None = None, bgr: bool = False):
        """Detect (every N-th frame), classify, smooth and draw: returns (annotated frame, rows of this frame).

        `frame` is H×W×3 uint8, RGB (or BGR with `bgr=True`; the annotated frame keeps the input's order).
        `timestamp` is seconds into the stream; by default, the wall clock since the first frame.
        """
        start = time.perf_counter()
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if bgr else np.ascontiguousarray(frame)
        with self._lock:
            s = self._settings
            if rgb.shape != self._shape:  # new stream or resolution: old boxes no longer apply
                self._tracks, self._shape, self._need_detect = [], rgb.shape, True
            t = timestamp if timestamp is not None else start - (self._t0 if self._t0 is not None else start)
            if self._t0 is None:
                self._t0 = start
            gray, scale = self._small_gray(rgb, s) if s.follow_motion and s.detect_every > 1 else (None, 1.0)
            if self._need_detect or self._frame_index % int(s.detect_every) == 0:
                self._detect(rgb, s)
                self._need_detect = False
            elif gray is not None:
                self._follow(gray, scale)
            self._prev_gray = gray
            if self._tracks:
                self._classify(rgb, s)
            rows = self._rows_for(t)
            self._frame_index += 1
            self._tick(start)
            out = draw_faces(rgb.copy(), rows, fps=self._fps if s.show_fps else None)
            self._latest = rows
            self._rows.extend(rows)
            self._latency_ms = 0.9 * self._latency_ms + 0.1 * (time.perf_counter() - start) * 1000 \
                if self._frame_index > 1 else (time.perf_counter() - start) * 1000
        return (cv2.cvtColor(out, cv2.COLOR_RGB2BGR) if bgr else out), rows

    def process_av(self, frame):
        """streamlit-webrtc's `video_frame_callback`: an av.VideoFrame in, the annotated av.VideoFrame out."""
        import av

        out, _ = self.process(frame.to_ndarray(format="rgb24"))
        annotated = av.VideoFrame.from_ndarray(out, format="rgb24")
        annotated.pts = frame.pts
        if frame.time_base is not None:
            annotated.time_base = frame.time_base
        return annotated

    def draw(self, frame: np.ndarray) -> np.ndarray:
        """The latest faces drawn on another frame, without detecting or classifying (for skipped frames)."""
        with self._lock:
            rows = list(self._latest)
        return draw_faces(np.array(frame, copy=True), rows)

    def _detect(self, rgb: np.ndarray, s: VideoSettings) -> None:
        detector = fer_faces.get_detector("haar", scale_factor=float(s.haar_step)) if s.detector == "haar" \
            else fer_faces.get_detector(s.detector)
        found = fer_faces.detect_faces(rgb, detector=detector, min_size=int(s.min_face), max_side=int(s.detect_side))
        boxes = [tuple(int(v) for v in f.box) for f in found]  # detect_faces already dropped enclosing boxes
        pairs = match_boxes([tr.box for tr in self._tracks], boxes, s.match_similarity)
        seen_tracks, seen_boxes = {i for i, _ in pairs}, {j for _, j in pairs}
        for i, j in pairs:
            self._tracks[i].box, self._tracks[i].missed = boxes[j], 0
        for i, track in enumerate(self._tracks):
            if i not in seen_tracks:
                track.missed += 1
        self._tracks = [tr for tr in self._tracks if tr.missed <= s.keep_missed]
        for j, box in enumerate(boxes):
            if j not in seen_boxes:
                self._tracks.append(_Track(self._next_id, box))
                self._next_id += 1

    @staticmethod
    def _small_gray(rgb: np.ndarray, s: VideoSettings) -> tuple[np.ndarray, float]:
        h, w = rgb.shape[:2]
        scale = min(1.0, int(s.detect_side) / max(h, w))
        small = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) \
            if scale < 1.0 else rgb
        return cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), scale

    def _follow(self, gray: np.ndarray, scale: float) -> None:
        """Move every box with its pixels' optical flow since the previous frame (between detections)."""
        if self._prev_gray is None or self._prev_gray.shape != gray.shape:
            return
        H, W = self._shape[:2]
        for tr in self._tracks:
            shift = box_shift(self._prev_gray, gray, [v * scale for v in tr.box])
            if shift is not None:
                x, y, w, h = tr.box
                tr.box = (int(round(min(max(x + shift[0] / scale, 0), W - w))),
                          int(round(min(max(y + shift[1] / scale, 0), H - h))), w, h)

    def _classify(self, rgb: np.ndarray, s: VideoSettings) -> None:
        crops = fer_faces.crop_faces(rgb, [tr.box for tr in self._tracks], margin=float(s.margin))
        probs = np.asarray(self._classifier.predict(crops), dtype=np.float64)
        for track, p in zip(self._tracks, probs):
            track.probs = smooth(track.probs, p, float(s.smoothing))

    def _rows_for(self, t: float) -> list[dict]:
        labels = self.labels
        rows = []
        for tr in self._tracks:
            if tr.probs is None:
                continue
            k = int(np.argmax(tr.probs))
            x, y, w, h = tr.box
            row = {"time": round(float(t), 3), "frame": self._frame_index, "face": tr.id,
                   "x": x, "y": y, "w": w, "h": h, "label": labels[k], "confidence": round(float(tr.probs[k]), 4)}
            row.update({lab: round(float(p), 4) for lab, p in zip(labels, tr.probs)})
            rows.append(row)
        return rows

    def _tick(self, start: float) -> None:
        if self._last_start is not None and start > self._last_start:
            rate = 1.0 / (start - self._last_start)
            self._fps = rate if self._fps == 0 else 0.9 * self._fps + 0.1 * rate
        self._last_start = start

    # --- what the page reads ------------------------------------------------------------------
    def timeline(self) -> pd.DataFrame:
        """Every row emitted so far: time, frame, face, box, label, confidence, one column per class."""
        with self._lock:
            rows = list(self._rows)
        return timeline_frame(rows, self.labels)

    def latest(self) -> list[dict]:
        """Rows of the most recent frame (one per visible face)."""
        with self._lock:
            return list(self._latest)

    def stats(self) -> dict:
        """Frames processed, their size, frame rate (frames/s between calls) and processing time per frame (ms)."""
        with self._lock:
            size = f"{self._shape[1]}×{self._shape[0]}" if self._shape else "—"
            return {"frames": self._frame_index, "size": size, "fps": round(self._fps, 1),
                    "latency_ms": round(self._latency_ms, 1), "faces": len(self._latest), "rows": len(self._rows)}

    def status(self) -> str:
        """One line for the page, e.g. `Faces: 1 — happy 92%`."""
        with self._lock:
            rows, frames = list(self._latest), self._frame_index
        if frames == 0:
            return "Waiting for frames …"
        if not rows:
            return "Faces: 0 — no face in view"
        if len(rows) == 1:
            return f"Faces: 1 — {rows[0]['label']} {rows[0]['confidence']:.0%}"
        parts = ", ".join(f"#{r['face']} {r['label']} {r['confidence']:.0%}" for r in rows)
        return f"Faces: {len(rows)} — {parts}"


def warm_up(classifier, max_faces: int = 4) -> None:
    """Compile the classifier for batches of 1…`max_faces` faces, so a stream's first frames aren't slow."""
    size = classifier.preprocessing.input_size if hasattr(classifier, "preprocessing") else 48
    for n in range(1, max_faces + 1):
        classifier.predict(np.zeros((n, size, size), np.uint8))


# --- drawing ------------------------------------------------------------------------------------
def _rgb(hex_color: str) -> tuple[int, int, int]:
    h = hex_color.lstrip("#")
    return tuple(int(h[i:i + 2], 16) for i in (0, 2, 4))


_COLORS = {e: _rgb(c) for e, c in EMOTION_COLORS.items()}


def draw_faces(image: np.ndarray, rows, fps: float | None = None) -> np.ndarray:
    """Boxes coloured by emotion with `#id label NN%` tags (and an FPS counter) drawn in place on an RGB frame."""
    H, W = image.shape[:2]
    scale = max(0.45, min(H, W) / 800)
    thick = max(1, round(min(H, W) / 320))
    font = cv2.FONT_HERSHEY_SIMPLEX
    for r in rows:
        x, y, w, h = int(r["x"]), int(r["y"]), int(r["w"]), int(r["h"])
        color = _COLORS.get(r["label"], (255, 255, 0))
        cv2.rectangle(image, (x, y), (x + w, y + h), color, thick + 1)
        text = f"#{r['face']} {r['label']} {r['confidence']:.0%}"
        (tw, th), base = cv2.getTextSize(text, font, scale, thick)
        ty = y - 4 if y - th - base - 4 >= 0 else y + h + th + 4
        cv2.rectangle(image, (x, ty - th - 4), (x + tw + 6, ty + base), color, cv2.FILLED)
        cv2.putText(image, text, (x + 3, ty - 2), font, scale, (255, 255, 255), thick, cv2.LINE_AA)
    if fps is not None:
        text = f"{fps:4.1f} fps"
        (tw, th), base = cv2.getTextSize(text, font, scale, thick)
        cv2.rectangle(image, (0, 0), (tw + 10, th + base + 10), (0, 0, 0), cv2.FILLED)
        cv2.putText(image, text, (5, th + 5), font, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return image


# --- timelines ----------------------------------------------------------------------------------
def timeline_frame(rows, labels) -> pd.DataFrame:
    """Timeline rows as a DataFrame with a fixed column order (also when empty)."""
    prob_cols = [lab for lab in labels]
    df = pd.DataFrame(list(rows))
    for col in (*ROW_COLUMNS, *prob_cols):
        if col not in df.columns:
            df[col] = pd.Series(dtype="float64" if col not in ("label",) else "object")
    extra = [c for c in df.columns if c not in ROW_COLUMNS and c not in prob_cols]
    return df[[*ROW_COLUMNS, *prob_cols, *extra]].reset_index(drop=True)


def timeline_summary(timeline: pd.DataFrame, labels=None) -> pd.DataFrame:
    """Share of face-time per emotion: each row counts for the time until the next analysed frame.

    Gaps longer than 5× the typical frame gap (a paused stream) count as a typical gap. Returns one
    row per emotion (canonical order) with face_seconds (summed over faces), frames (face-frames) and
    share (0–1).
    """
    present = set(timeline["label"]) if timeline is not None and "label" in timeline else set()
    names = list(labels) if labels is not None else [e for e in EMOTIONS if e in present]
    if timeline is None or timeline.empty:
        return pd.DataFrame({"face_seconds": 0.0, "frames": 0, "share": 0.0},
                            index=pd.Index(names, name="emotion"))
    times = np.sort(timeline["time"].astype(float).unique())
    gaps = np.diff(times)
    typical = float(np.median(gaps)) if gaps.size else 0.0
    capped = np.where(gaps > 5 * typical, typical, gaps) if gaps.size else gaps
    duration = dict(zip(times, np.append(capped, typical)))
    df = pd.DataFrame({"label": timeline["label"].to_numpy(),
                       "seconds": timeline["time"].astype(float).map(duration).to_numpy()})
    grouped = df.groupby("label").agg(face_seconds=("seconds", "sum"), frames=("seconds", "size"))
    names = names + [lab for lab in grouped.index if lab not in names]
    out = grouped.reindex(names).fillna(0.0)
    out["frames"] = out["frames"].astype(int)
    weight = out["face_seconds"] if out["face_seconds"].sum() > 0 else out["frames"].astype(float)
    out["share"] = weight / weight.sum() if weight.sum() > 0 else 0.0
    out.index.name = "emotion"
    return out


def timeline_long(timeline: pd.DataFrame, labels=None) -> pd.DataFrame:
    """Per-class probabilities in long form (time, face, emotion, probability) for line charts."""
    labels = [lab for lab in (labels or EMOTIONS) if lab in timeline.columns]
    long = timeline.melt(id_vars=["time", "face"], value_vars=labels, var_name="emotion", value_name="probability")
    return long.sort_values(["face", "emotion", "time"]).reset_index(drop=True)


def timeline_csv(timeline: pd.DataFrame) -> bytes:
    """The timeline as UTF-8 CSV bytes (for downloads and `--csv`)."""
    return timeline.to_csv(index=False).encode("utf-8")


# --- video files --------------------------------------------------------------------------------
@dataclass
class VideoAnalysis:
    """Result of `analyze_video`: the timeline, the share of time per emotion and the annotated video."""

    timeline: pd.DataFrame
    summary: pd.DataFrame
    labels: tuple[str, ...]
    fps: float
    frames: int
    analyzed: int
    duration: float
    width: int
    height: int
    video: bytes | None = None

    def csv(self) -> bytes:
        return timeline_csv(self.timeline)


def open_video(source):
    """Open a video from bytes (kept in memory), a file-like object or a path; ValueError if it is not a video."""
    import av

    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ValueError("the uploaded file is empty (0 bytes)")
        target, name = io.BytesIO(bytes(source)), "the uploaded file"
    elif hasattr(source, "read"):
        target, name = source, str(getattr(source, "name", "the file"))
    else:
        path = Path(os.fspath(source))
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist or is not a file")
        target, name = str(path), path.name
    try:
        container = av.open(target, mode="r")
    except av.FFmpegError as err:
        raise ValueError(f"{name} is not a readable video ({getattr(err, 'strerror', None) or err}); "
                         f"expected one of: {', '.join(VIDEO_TYPES)}") from None
    fmt = container.format.name or ""
    if not container.streams.video:
        container.close()
        raise ValueError(f"{name} holds no video stream (format {fmt}); expected one of: {', '.join(VIDEO_TYPES)}")
    if fmt.endswith("_pipe") or fmt == "image2":
        container.close()
        raise ValueError(f"{name} is a still image ({fmt.replace('_pipe', '')}), not a video; "
                         "use the Image Prediction page for photos")
    return container


class Mp4Writer:
    """Browser-playable H.264 (yuv420p) MP4, written to a temporary file that `finish` reads back and deletes."""

    def __init__(self, fps: float, width: int, height: int, crf: int = 23):
        import av

        k = min(1.0, MAX_OUTPUT_SIDE / max(width, height))
        self.size = (int(width * k) // 2 * 2, int(height * k) // 2 * 2)  # yuv420p needs even sides
        self._dir = tempfile.TemporaryDirectory(prefix="fer_video_")
        self._path = os.path.join(self._dir.name, "annotated.mp4")
        self._container = av.open(self._path, mode="w", format="mp4", options={"movflags": "+faststart"})
        self._stream = self._container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        self._stream.width, self._stream.height = self.size
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"preset": "veryfast", "crf": str(crf)}

    def write(self, frame_rgb: np.ndarray) -> None:
        import av

        w, h = self.size
        if frame_rgb.shape[1] != w or frame_rgb.shape[0] != h:
            frame_rgb = cv2.resize(frame_rgb, (w, h), interpolation=cv2.INTER_AREA)
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_rgb), format="rgb24")):
            self._container.mux(packet)

    def finish(self) -> bytes:
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            return Path(self._path).read_bytes()
        finally:
            self._dir.cleanup()

    def abort(self) -> None:
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 — closing a half-written file may fail; we delete it anyway
            pass
        self._dir.cleanup()


def write_mp4(frames, fps: float = 15.0) -> bytes:
    """Encode RGB frames as browser-playable H.264 MP4 bytes."""
    writer = None
    try:
        for frame in frames:
            writer = writer or Mp4Writer(fps, frame.shape[1], frame.shape[0])
            writer.write(frame)
    except BaseException:
        if writer:
            writer.abort()
        raise
    if writer is None:
        raise ValueError("no frames to encode")
    return writer.finish()


def analyze_video(source, classifier, every_n: int = 5, detector: str = "haar", smoothing: float = 0.5,
                  annotate: bool = True, detect_side: int = 480, min_face: int | None = None,
                  max_frames: int | None = None, progress: ProgressFn | None = None) -> VideoAnalysis:
    """Emotions of every face on every `every_n`-th frame of a video (bytes, file-like or path).

    Returns the timeline, share of time per emotion and, with `annotate`, an H.264 MP4 of all frames
    with the latest faces drawn. `min_face` defaults to 1/16 of the shorter frame side (at least 24 px).
    Bytes are decoded in memory; only the output MP4 passes through a temporary file, deleted at once.
    """
    import av

    if int(every_n) < 1:
        raise ValueError("every_n must be 1 or more")
    container = open_video(source)
    writer = None
    frames = analyzed = 0
    width = height = 0
    last_t = 0.0
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate or stream.guessed_rate or 25.0)
        short_side = min(stream.codec_context.width or 480, stream.codec_context.height or 480)
        processor = FrameProcessor(classifier, detector=detector, detect_every=1, smoothing=smoothing,
                                   detect_side=detect_side, min_face=min_face or max(24, short_side // 16),
                                   haar_step=1.1, show_fps=False)
        total = int(stream.frames or 0)
        if not total and stream.duration and stream.time_base:
            total = int(round(float(stream.duration * stream.time_base) * fps))
        if not total and container.duration:
            total = int(round(container.duration / 1e6 * fps))
        if max_frames:
            total = min(total, max_frames) if total else max_frames
        step = max(1, total // 100)
        t0 = None
        for frame in container.decode(stream):
            if max_frames and frames >= max_frames:
                break
            rgb = frame.to_ndarray(format="rgb24")
            if frame.time is not None:
                t0 = frame.time if t0 is None else t0
                t = frame.time - t0
            else:
                t = frames / fps
            if frames % int(every_n) == 0:
                annotated, _ = processor.process(rgb, timestamp=t)
                analyzed += 1
            else:
                annotated = processor.draw(rgb) if annotate else None
            if annotate:
                writer = writer or Mp4Writer(fps, rgb.shape[1], rgb.shape[0])
                writer.write(annotated)
            height, width = rgb.shape[:2]
            frames += 1
            last_t = t
            if progress and frames % step == 0:
                progress(frames, max(total, frames), f"Analysed {frames:,} of ~{max(total, frames):,} frames")
    except av.FFmpegError as err:
        if writer:
            writer.abort()
        raise ValueError(f"the video could not be decoded after {frames} frames: {err}") from None
    except BaseException:
        if writer:
            writer.abort()
        raise
    finally:
        container.close()
    if frames == 0:
        if writer:
            writer.abort()
        raise ValueError("the video holds no decodable frames")
    video = writer.finish() if writer else None
    if progress:
        progress(frames, frames, f"Analysed {frames:,} frames")
    timeline = processor.timeline()
    return VideoAnalysis(timeline=timeline, summary=timeline_summary(timeline, processor.labels),
                         labels=processor.labels, fps=fps, frames=frames, analyzed=analyzed,
                         duration=last_t + 1.0 / fps, width=width, height=height, video=video)


# --- a sample clip of real faces ----------------------------------------------------------------
def _astronaut_head() -> np.ndarray:
    from skimage import data as skdata

    return np.ascontiguousarray(skdata.astronaut()[0:260, 90:350, :3])  # head and shoulders, 260×260


def sample_clip(n_frames: int = 45, size=(640, 480), faces=None, seed: int = 0) -> np.ndarray:
    """A clip of real faces gliding over a textured background (N×H×W×3 uint8), looping seamlessly.

    Default faces: scikit-image's astronaut photo (Eileen Collins, NASA, public domain) and its
    mirror image, so it needs no download. Used by the Video Analysis demo, benchmarks and tests.
    """
    W, H = size
    rng = np.random.default_rng(seed)
    if faces is None:
        head = _astronaut_head()
        faces = [head, head[:, ::-1]]
    faces = [np.repeat(f[..., None], 3, -1) if f.ndim == 2 else f[..., :3] for f in faces]
    side = int(min(H * 0.5, W / (len(faces) + 0.5)))
    tiles = [cv2.resize(np.asarray(f, np.uint8), (side, side), interpolation=cv2.INTER_AREA) for f in faces]
    ramp = np.linspace(50, 170, W, dtype=np.float32)[None, :, None]
    bg = np.clip(ramp + rng.normal(0, 6, (H, W, 1)), 0, 255).astype(np.uint8).repeat(3, axis=-1)
    slot = W / len(tiles)
    clip = np.empty((n_frames, H, W, 3), np.uint8)
    for i in range(n_frames):
        frame = bg.copy()
        for k, tile in enumerate(tiles):
            phase = 2 * np.pi * (i / n_frames + k / len(tiles))
            cx = slot * (k + 0.5) + 0.12 * slot * np.sin(phase)
            cy = H / 2 + 0.1 * H * np.cos(phase)
            x0 = int(np.clip(cx - side / 2, 0, W - side))
            y0 = int(np.clip(cy - side / 2, 0, H - side))
            frame[y0:y0 + side, x0:x0 + side] = tile
        clip[i] = frame
    return clip


# --- CLI ----------------------------------------------------------------------------------------
def _cmd_video(args) -> int:
    from . import registry
    from .predict import Classifier

    if args.out and Path(args.out).suffix.lower() != ".mp4":
        raise ValueError("--out must name an .mp4 file (the annotated video is H.264 MP4)")
    info = registry.get_model(args.model) if args.model else registry.default_model()
    if info is None:
        raise registry.RegistryError("no registered model; train one with `python -m fer_core train`")
    classifier = Classifier.from_registry(info)

    def progress(done, total, message):
        if sys.stderr.isatty():
            print(f"\r{message}", end="", file=sys.stderr, flush=True)

    result = analyze_video(args.video, classifier, every_n=args.every, detector=args.detector,
                           smoothing=args.smoothing, annotate=bool(args.out), progress=progress)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(f"{args.video}: {result.frames} frames ({result.duration:.1f} s at {result.fps:.1f} fps), "
          f"{result.analyzed} analysed with model {info.id}; {result.timeline['face'].nunique()} face(s), "
          f"{len(result.timeline)} face-frames")
    summary = result.summary.assign(share=lambda d: (d["share"] * 100).round(1).astype(str) + " %")
    print(summary.to_string())
    if args.csv:
        Path(args.csv).write_bytes(result.csv())
        print(f"timeline written to {args.csv}")
    if args.out:
        Path(args.out).write_bytes(result.video)
        print(f"annotated video written to {args.out}")
    return 0


def add_cli(subparsers) -> None:
    """`video`: emotions over time in a video file → summary, timeline CSV, annotated MP4."""
    p = subparsers.add_parser("video", help="emotions over time in a video file (timeline CSV, annotated mp4)")
    p.add_argument("video", help="video file (mp4, webm, mov, avi, mkv)")
    p.add_argument("--model", help="registered model id or folder (default: the registry's default model)")
    p.add_argument("--detector", choices=fer_faces.DETECTORS, default="haar")
    p.add_argument("--every", type=int, default=5, help="analyse every N-th frame (default 5)")
    p.add_argument("--smoothing", type=float, default=0.5, help="moving-average weight of the past, 0–<1")
    p.add_argument("--out", help="write the annotated video here (.mp4)")
    p.add_argument("--csv", help="write the per-face timeline here (.csv)")
    p.set_defaults(func=_cmd_video)


# --- WebRTC configuration -----------------------------------------------------------------------
def parse_ice_servers(spec) -> list[dict]:
    """ICE servers from JSON text or an already parsed list (e.g. from secrets.toml).

    Example: `[{"urls": ["stun:stun.example.org:3478"]}, {"urls": "turn:…", "username": …, "credential": …}]`.
    Empty or missing means none: browser and server then connect directly, which works on
    localhost and a LAN without any STUN/TURN server.
    """
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return []
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except ValueError as err:
            raise ValueError(f"ICE servers are not valid JSON: {err}") from None
    if isinstance(spec, dict) or hasattr(spec, "keys"):
        spec = dict(spec).get("iceServers", [dict(spec)])
    servers = [dict(s) for s in spec if hasattr(s, "keys")] if isinstance(spec, (list, tuple)) else None
    if servers is None or len(servers) != len(spec) or not all(s.get("urls") for s in servers):
        raise ValueError('ICE servers must be a list of objects with "urls", e.g. '
                         '[{"urls": ["stun:stun.example.org:3478"]}]')
    return servers


def prepare_webrtc_import() -> None:
    """Load aiortc's SRTP binding so that it works even when TensorFlow is already loaded.

    pylibsrtp links OpenSSL statically without hiding its symbols; loaded after TensorFlow (which
    exports BoringSSL's), its calls bind to those and the process segfaults in `srtp_init`.
    RTLD_DEEPBIND makes it use its own copies. Call before `import streamlit_webrtc`.
    """
    if "pylibsrtp" in sys.modules:
        return
    flags = sys.getdlopenflags()
    sys.setdlopenflags(flags | getattr(os, "RTLD_DEEPBIND", 0))
    try:
        import pylibsrtp  # noqa: F401
    except ImportError:
        pass  # no WebRTC stack installed: the webcam page reports it when importing streamlit_webrtc
    finally:
        sys.setdlopenflags(flags)
