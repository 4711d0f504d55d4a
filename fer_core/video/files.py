"""Video files: read (from bytes in memory, a file-like object or a path), analyse, write.

`read_frames` decodes any video PyAV/FFmpeg reads into RGB frames with their times — uploads are
decoded from memory and never touch the disk; `analyze_video` runs the per-frame processor
(`fer_core.video.frame_processor`, the same as the live webcam) over every N-th frame and returns the
timeline, the share of time per emotion and an annotated H.264 MP4, encoded in memory too;
`write_mp4` encodes frames.
"""
from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from .frame_processor import FrameProcessor
from ..inference.faces import DEFAULT_CROP, DEFAULT_DETECTOR
from ..base.progress import ProgressFn
from .timeline import timeline_csv, timeline_summary

log = logging.getLogger(__name__)

VIDEO_TYPES: tuple[str, ...] = ("mp4", "webm", "mov", "avi", "mkv", "m4v")
MAX_OUTPUT_SIDE = 1280  # annotated videos are scaled down to this longer side (encode time, file size)


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
    """Browser-playable H.264 (yuv420p) MP4, encoded into memory: nothing is written to disk.

    The index (moov) follows the frames, as FFmpeg's `+faststart` needs a file to rewrite; browsers
    fetch it with a range request, which Streamlit's media server supports.
    """

    def __init__(self, fps: float, width: int, height: int, crf: int = 23):
        import av

        k = min(1.0, MAX_OUTPUT_SIDE / max(width, height))
        self.size = (int(width * k) // 2 * 2, int(height * k) // 2 * 2)  # yuv420p needs even sides
        self._buffer = io.BytesIO()
        self._container = av.open(self._buffer, mode="w", format="mp4")
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
        """Flush the encoder and return the MP4 file's bytes."""
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        return self._buffer.getvalue()

    def abort(self) -> None:
        """Drop a half-written video."""
        try:
            self._container.close()
        except Exception as err:  # noqa: BLE001 — closing a half-written video may fail; it is discarded anyway
            log.debug("closing an aborted video failed: %s: %s", type(err).__name__, err)
        self._buffer = io.BytesIO()


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


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame: its index in the stream, time in seconds from the first frame, and RGB pixels."""

    index: int
    time: float
    rgb: np.ndarray


@dataclass(frozen=True)
class VideoInfo:
    """What a video's header says: frame rate, frame size, (estimated, 0 when unknown) frame count and
    duration in seconds (0 when unknown)."""

    fps: float
    width: int
    height: int
    frames: int
    seconds: float = 0.0


@dataclass(frozen=True)
class VideoLimits:
    """The most a video may hold: pixels per frame, seconds and frames. Checked from the header before
    anything is decoded (`check_video`), and again on every decoded frame, since headers can lie.

    Defaults: 4K UHD frames (a 3840×2160 RGB frame is 25 MB) and 30 minutes (54,000 frames at 30 fps);
    the Video Analysis page, which keeps an annotated copy in memory, uses `PAGE_LIMITS`.
    """

    max_pixels: int = 3840 * 2160
    max_seconds: float = 30 * 60
    max_frames: int = 54_000

    def frame_problem(self, index: int, time_s: float, width: int, height: int) -> str | None:
        """Why decoding must stop at this frame (over a limit), or None."""
        if width * height > self.max_pixels:
            return (f"a frame is {width}×{height} = {width * height / 1e6:.1f} megapixels; the limit is "
                    f"{self.max_pixels / 1e6:.1f} MP")
        if index >= self.max_frames:
            return f"it holds more than {self.max_frames:,} frames, the limit"
        if time_s > self.max_seconds:
            return f"it runs longer than {self.max_seconds:g} s, the limit"
        return None


DEFAULT_LIMITS = VideoLimits()
PAGE_LIMITS = VideoLimits(max_pixels=1920 * 1080, max_seconds=5 * 60, max_frames=9_000)  # 5 min of Full HD


def check_video(info: VideoInfo, limits: VideoLimits | None = None, name: str = "the video") -> None:
    """ValueError naming the limit when the header declares a video over `limits` (default
    `DEFAULT_LIMITS`; nothing is decoded yet)."""
    limits = limits or DEFAULT_LIMITS
    problem = (limits.frame_problem(0, 0.0, info.width, info.height)
               or (info.frames > limits.max_frames and f"it declares {info.frames:,} frames; the limit is "
                                                      f"{limits.max_frames:,}")
               or (info.seconds > limits.max_seconds and f"it lasts {info.seconds:.0f} s; the limit is "
                                                         f"{limits.max_seconds:g} s"))
    if problem:
        raise ValueError(f"{name} is too large to analyse: {problem}. Trim or downscale it first.")


def video_info(container) -> VideoInfo:
    """Frame rate, size and frame count of an opened video's first video stream (count estimated from
    the duration when the header lacks it)."""
    stream = container.streams.video[0]
    fps = float(stream.average_rate or stream.guessed_rate or 25.0)
    total = int(stream.frames or 0)
    if not total and stream.duration and stream.time_base:
        total = int(round(float(stream.duration * stream.time_base) * fps))
    if not total and container.duration:
        total = int(round(container.duration / 1e6 * fps))
    seconds = (float(stream.duration * stream.time_base) if stream.duration and stream.time_base
               else (container.duration or 0) / 1e6)
    return VideoInfo(fps, int(stream.codec_context.width or 0), int(stream.codec_context.height or 0), total,
                     max(0.0, seconds))


def read_frames(source, every_n: int = 1, max_frames: int | None = None, limits: VideoLimits | None = None):
    """Decode a video (bytes, file-like or path) into `VideoFrame`s: every `every_n`-th frame of the
    first `max_frames`. Bytes are decoded in memory. ValueError when it is not a decodable video, or
    when it is over `limits` (refused from its header, or where decoding finds it over).

    >>> from fer_core.video.files import read_frames, write_mp4
    >>> from fer_core.video.sample import sample_clip
    >>> [f.index for f in read_frames(write_mp4(sample_clip(6)), every_n=2)]
    [0, 2, 4]
    """
    if int(every_n) < 1:
        raise ValueError("every_n must be 1 or more")
    container = open_video(source)
    try:
        info = video_info(container)
        limits = _within(limits, max_frames)
        check_video(info, limits, _name(source))
        for frame in _decode(container, info.fps, max_frames, limits):
            if frame.index % int(every_n) == 0:
                yield frame
    finally:
        container.close()


def _name(source) -> str:
    """How messages name a video source."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "the uploaded video"
    if hasattr(source, "read"):
        return str(getattr(source, "name", "the video"))
    return Path(os.fspath(source)).name


def _within(limits: VideoLimits | None, max_frames: int | None) -> VideoLimits:
    """`limits` (default `DEFAULT_LIMITS`) as they apply when the caller stops after `max_frames` itself:
    then a longer video is fine (only its first frames are decoded) and only each frame's size matters."""
    limits = limits or DEFAULT_LIMITS
    if not max_frames or max_frames > limits.max_frames:
        return limits
    return replace(limits, max_frames=1 << 62, max_seconds=float("inf"))


def _decode(container, fps: float, max_frames: int | None = None, limits: VideoLimits | None = None):
    """Every frame of an opened container's first video stream as `VideoFrame`s (times from 0); ValueError
    at the first frame over `limits`, before its pixels are converted."""
    import av

    limits = limits or DEFAULT_LIMITS
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    index, t0 = 0, None
    try:
        for frame in container.decode(stream):
            if max_frames and index >= max_frames:
                return
            if frame.time is not None:
                t0 = frame.time if t0 is None else t0
                t = frame.time - t0
            else:
                t = index / fps
            problem = limits.frame_problem(index, t, frame.width, frame.height)
            if problem:
                raise ValueError(f"the video is too large to analyse: {problem}. Trim or downscale it first.")
            yield VideoFrame(index, t, frame.to_ndarray(format="rgb24"))
            index += 1
    except av.FFmpegError as err:
        raise ValueError(f"the video could not be decoded after {index} frames: {err}") from None
    if index == 0:
        raise ValueError("the video holds no decodable frames")


def analyze_video(source, classifier, every_n: int = 5, detector: str = DEFAULT_DETECTOR, smoothing: float = 0.5,
                  annotate: bool = True, detect_side: int = 480, min_face: int | None = None,
                  max_frames: int | None = None, progress: ProgressFn | None = None,
                  limits: VideoLimits | None = None, crop: str = DEFAULT_CROP) -> VideoAnalysis:
    """Emotions of every face on every `every_n`-th frame of a video (bytes, file-like or path), each face
    detected and cut as in a photo (`detector`, `crop`).

    Returns the timeline, share of time per emotion and, with `annotate`, an H.264 MP4 of all frames
    with the latest faces drawn. `min_face` defaults to 1/16 of the shorter frame side (at least 24 px).
    Everything happens in memory: the video is decoded from the bytes given and the MP4 encoded into bytes.
    A video over `limits` is refused from its header, or where decoding finds it over (ValueError).
    """
    if int(every_n) < 1:
        raise ValueError("every_n must be 1 or more")
    container = open_video(source)
    writer = None
    frames = analyzed = 0
    width = height = 0
    last_t = 0.0
    try:
        info = video_info(container)
        limits = _within(limits, max_frames)
        check_video(info, limits, _name(source))
        fps, short_side = info.fps, min(info.width or 480, info.height or 480)
        processor = FrameProcessor(classifier, detector=detector, crop=crop, detect_every=1, smoothing=smoothing,
                                   detect_side=detect_side, min_face=min_face or max(24, short_side // 16),
                                   haar_step=1.1, show_fps=False)
        total = min(info.frames, max_frames) if max_frames and info.frames else (max_frames or info.frames)
        step = max(1, total // 100)
        for frame in _decode(container, fps, max_frames, limits):
            rgb = frame.rgb
            if frame.index % int(every_n) == 0:
                annotated, _ = processor.process(rgb, timestamp=frame.time)
                analyzed += 1
            else:
                annotated = processor.draw(rgb) if annotate else None
            if annotate:
                writer = writer or Mp4Writer(fps, rgb.shape[1], rgb.shape[0])
                writer.write(annotated)
            height, width = rgb.shape[:2]
            frames += 1
            last_t = frame.time
            if progress and frames % step == 0:
                progress(frames, max(total, frames), f"Analysed {frames:,} of ~{max(total, frames):,} frames")
    except BaseException:
        if writer:
            writer.abort()
        raise
    finally:
        container.close()
    video = writer.finish() if writer else None
    if progress:
        progress(frames, frames, f"Analysed {frames:,} frames")
    timeline = processor.timeline()
    return VideoAnalysis(timeline=timeline, summary=timeline_summary(timeline, processor.labels),
                         labels=processor.labels, fps=fps, frames=frames, analyzed=analyzed,
                         duration=last_t + 1.0 / fps, width=width, height=height, video=video)
