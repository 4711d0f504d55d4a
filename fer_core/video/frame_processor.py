"""The per-frame processor behind the live webcam and video-file analysis: frames in, annotated frames
and per-face timeline rows out.

`FrameProcessor.process` is built for real time on a small CPU: faces are detected on a downscaled
copy every N-th frame (boxes follow the optical flow in between, `fer_core.video.tracking`), all faces are
classified in one batched call, and each face's probabilities are smoothed over frames (an
exponential moving average, faces matched between frames by box overlap) so labels don't flicker.
`draw_faces` is its overlay; the rows it collects are a timeline (`fer_core.video.timeline`).
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, fields, replace

import cv2
import numpy as np
import pandas as pd

from ..inference import faces as fer_faces
from ..base.labels import emotion_rgb
from .timeline import timeline_frame
from .tracking import Track, box_shift, match_boxes, smooth
from ..inference.face import Face
from ..inference.framing import check_crop, face_crops
from ..models.tta import tta_mode


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
    tta: test-time augmentation per face (none/flip/tencrop); None uses the model card's default. Live
        streams often want `none`: smoothing across frames already averages views, at 1/10 of ten-crop's cost.
    crop: how a face becomes the classifier's input (`faces.CROP_POLICIES`), as for photos.
    """

    detector: str = fer_faces.DEFAULT_DETECTOR
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
    tta: str | None = None
    crop: str = fer_faces.DEFAULT_CROP

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
        if self.tta is not None:
            tta_mode(self.tta)  # raises a one-line error for an unknown mode
        check_crop(self.crop)


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
            self._tracks: list[Track] = []
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
            self._tracks[i].landmarks = found[j].landmarks
        for i, track in enumerate(self._tracks):
            if i not in seen_tracks:
                track.missed += 1
        self._tracks = [tr for tr in self._tracks if tr.missed <= s.keep_missed]
        for j, box in enumerate(boxes):
            if j not in seen_boxes:
                self._tracks.append(Track(self._next_id, box, landmarks=found[j].landmarks))
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
                dx, dy = tr.box[0] - x, tr.box[1] - y
                if tr.landmarks:
                    tr.landmarks = {k: (p[0] + dx, p[1] + dy) for k, p in tr.landmarks.items()}

    def _classify(self, rgb: np.ndarray, s: VideoSettings) -> None:
        faces = [Face(tr.box, 1.0, tr.landmarks) for tr in self._tracks]
        crops = [c.pixels for c in face_crops(rgb, faces, s.crop, float(s.margin))]
        probs = np.asarray(self._classifier.predict(crops, tta=s.tta), dtype=np.float64)
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


# --- drawing ------------------------------------------------------------------------------------
def draw_faces(image: np.ndarray, rows, fps: float | None = None) -> np.ndarray:
    """Boxes coloured by emotion with `#id label NN%` tags (and an FPS counter) drawn in place on an RGB frame."""
    H, W = image.shape[:2]
    scale = max(0.45, min(H, W) / 800)
    thick = max(1, round(min(H, W) / 320))
    font = cv2.FONT_HERSHEY_SIMPLEX
    for r in rows:
        x, y, w, h = int(r["x"]), int(r["y"]), int(r["w"]), int(r["h"])
        color = emotion_rgb(r["label"], default=(255, 255, 0))
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
