"""Scoring one batch item: every face of an image, zip member or video (every N-th frame) as flat rows,
through the same photo pipeline as `predict` (`analyze_image`); `score_many` spreads items over threads.
"""
from __future__ import annotations

import io
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..inference.faces import DEFAULT_CROP, DEFAULT_DETECTOR, DEFAULT_MIN_SIZE, DETECTOR_CHOICES
from ..inference.framing import check_crop
from .batch_inputs import Item, read_item_bytes


@dataclass(frozen=True)
class ScoreOptions:
    """How to score: detector (`faces.DETECTORS`, or none = the whole image is one face), flip/ten-crop TTA
    (None = the model card's default), whole-image fallback, smallest face, every N-th video frame, crop policy."""

    detector: str = DEFAULT_DETECTOR
    tta: str | None = None
    whole_image: bool | None = None  # None: when the image looks like a face crop (framing.is_face_crop)
    min_size: int = DEFAULT_MIN_SIZE
    every_nth_frame: int = 10
    crop: str = DEFAULT_CROP

    def __post_init__(self):
        if self.detector not in DETECTOR_CHOICES:
            raise ValueError(f"unknown face detector {self.detector!r}; choose one of: {', '.join(DETECTOR_CHOICES)}")
        if int(self.min_size) < 1:
            raise ValueError("--min-size must be at least 1 pixel")
        if int(self.every_nth_frame) < 1:
            raise ValueError("--every-nth-frame must be 1 or more")
        check_crop(self.crop)


_local = threading.local()  # per thread: its own BlazeFace interpreters and Haar cascade
PER_THREAD = ("blazeface", "haar")  # cheap to build, and each holds a lock: one per thread detects in parallel


def detector_for(name: str):
    """The detector for this thread: BlazeFace or a Haar cascade of its own (each has its own lock, so threads
    detect in parallel), else the process-wide one (MTCNN, the whole-image `none`)."""
    from ..inference import faces

    if name in PER_THREAD:
        mine = _local.__dict__.setdefault("detectors", {})
        if name not in mine:
            mine[name] = faces.build_detector(name)
        return mine[name]
    return faces.get_detector(name)


def face_rows(file: str, analysis, frame=None, time_s=None) -> list[dict]:
    """One flat row per face of an `ImageAnalysis`: file, frame/time, box, score, label, probabilities."""
    rows = []
    for i, face in enumerate(analysis.faces, start=1):
        d = face.to_dict()
        x, y, w, h = d["box"]
        rows.append({"file": file, "frame": frame, "time": time_s, "face": i, "x": x, "y": y, "w": w, "h": h,
                     "detector_score": d["detector_score"], "whole_image": bool(analysis.whole_image),
                     "label": d["label"], "confidence": d["confidence"], "model": analysis.model_id,
                     **d["probabilities"]})
    return rows


def score_item(item: Item, classifier, options: ScoreOptions) -> tuple[list[dict], str | None]:
    """Rows of every face in one item, and an error text when it could not be (fully) read.

    A video that breaks off keeps the rows of the frames decoded before the break.
    """
    from ..inference.images import ImageError, read_image
    from ..inference.predict import analyze_image

    kw = dict(detector=detector_for(options.detector), tta=options.tta, min_size=int(options.min_size),
              crop=options.crop,
              whole_image_if_no_face=options.whole_image)
    try:
        if item.kind == "video":
            return _score_video(item, classifier, options, kw)
        data = io.BytesIO(read_item_bytes(item))
        data.name = Path(item.member or item.path).name  # named in read_image's errors
        analysis = analyze_image(read_image(data), classifier, **kw)
        return face_rows(item.file, analysis), None
    except (ImageError, ValueError, OSError, KeyError, zipfile.BadZipFile) as err:
        return [], str(err) or type(err).__name__


def _score_video(item: Item, classifier, options: ScoreOptions, kw: dict) -> tuple[list[dict], str | None]:
    from ..inference.predict import analyze_image
    from ..video.files import read_frames

    rows = []
    try:
        for frame in read_frames(item.path, every_n=int(options.every_nth_frame)):
            analysis = analyze_image(frame.rgb, classifier, **kw)
            rows += face_rows(item.file, analysis, frame.index, round(float(frame.time), 4))
    except ValueError as err:  # not a video, or decoding broke off: the frames before it are kept
        return rows, str(err)
    return rows, None


def score_many(items, classifier, options: ScoreOptions, workers: int) -> list[dict]:
    """`score_item` over items on `workers` threads: one {file, rows, error} result per item, in order."""
    def one(item):
        rows, error = score_item(item, classifier, options)
        return {"file": item.file, "rows": rows, "error": error}

    if workers <= 1 or len(items) <= 1:
        return [one(it) for it in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fer-batch") as pool:
        return list(pool.map(one, items))
