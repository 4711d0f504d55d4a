"""The image-folder layouts, in a folder or a zip: Kaggle's `train|test/<emotion>/` with `Training_`,
`PublicTest_`, `PrivateTest_` file prefixes, and split folders such as `train|validation|test/<emotion>/`.
Which split and emotion each file belongs to, and decoding every image to 48×48 grayscale (OpenCV where the
file is complete, strict PIL otherwise), with the files that could not be read listed as problems."""
from __future__ import annotations

import io
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..base import limits
from ..base.labels import canonical_emotion, sort_emotions
from ..base.progress import ProgressFn
from .fer_dataset import IMAGE_SIZE, DataError, FerDataset, Problem
from .sources import Entry, Source

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MAX_IMAGE_PIXELS = 25_000_000  # per dataset image: faces are crops; 25 MP decodes to 75 MB of RGB at most
_SPLIT_FOLDERS = {
    "train": "train", "training": "train", "trainset": "train",
    "validation": "validation", "val": "validation", "valid": "validation", "dev": "validation",
    "publictest": "validation",
    "test": "test", "testing": "test", "testset": "test", "privatetest": "test",
}
_FILE_PREFIXES = {"training_": "train", "publictest_": "validation", "privatetest_": "test"}


def _classify_path(path: str) -> tuple[str, str | None, str | None] | None:
    """(emotion, split named by the folder, split named by the file prefix) of `…/<split>/<emotion>/<file>`.

    None when the file does not sit in an emotion folder.
    """
    parts = [p for p in path.split("/") if p]
    if len(parts) < 2:
        return None
    emotion = canonical_emotion(parts[-2])
    if emotion is None:
        return None
    name = parts[-1].lower()
    by_prefix = next((split for prefix, split in _FILE_PREFIXES.items() if name.startswith(prefix)), None)
    folder = parts[-3].lower().replace("-", "").replace("_", "").replace(" ", "") if len(parts) >= 3 else ""
    return emotion, _SPLIT_FOLDERS.get(folder), by_prefix


def label_entries(images: list[Entry]) -> list[tuple[Entry, str, str]]:
    """(entry, emotion, split) for every image inside an emotion folder, sorted by path.

    An explicit validation folder means the folders define the splits; otherwise (the Kaggle
    train/test layout) the Training_/PublicTest_/PrivateTest_ prefixes do.
    """
    found = [(e, _classify_path(e.path)) for e in images]
    found = [(e, c) for e, c in found if c is not None]
    folders_rule = any(c[1] == "validation" for _, c in found)
    out = []
    for e, (emotion, by_folder, by_prefix) in found:
        split = by_folder if folders_rule else (by_prefix or by_folder)
        out.append((e, emotion, split or "train"))
    out.sort(key=lambda t: t[0].path)
    return out


# File endings of complete images; anything else takes the slower, stricter PIL path.
_JPEG_START, _JPEG_END = b"\xff\xd8", b"\xff\xd9"
_PNG_START, _PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"


def _decode(data: bytes) -> tuple[np.ndarray | None, str | None]:
    """Decode one image to 48×48 grayscale; (None, reason) when it cannot be read.

    Complete JPEGs/PNGs (end marker present) go through OpenCV, ~5× faster than PIL; files without
    their end marker (truncated) and other formats go through PIL, which rejects truncated data.
    """
    import cv2  # here, not at the top: `python -m fer_core --help`/`models` and Home never decode images

    if not data:
        return None, "empty file (0 bytes)"
    too_large = _too_many_pixels(data)
    if too_large:
        return None, too_large
    gray = None
    if (data.startswith(_JPEG_START) and data.endswith(_JPEG_END)) or (
            data.startswith(_PNG_START) and data.endswith(_PNG_END)):
        gray = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if gray is None:
        gray, issue = _decode_pil(data)
        if gray is None:
            return None, issue
    if gray.shape != (IMAGE_SIZE, IMAGE_SIZE):
        h, w = gray.shape
        method = cv2.INTER_AREA if min(h, w) > IMAGE_SIZE else cv2.INTER_LINEAR
        gray = cv2.resize(gray, (IMAGE_SIZE, IMAGE_SIZE), interpolation=method)
        return gray, f"resized from {w}×{h}"
    return gray, None


def _too_many_pixels(data: bytes) -> str | None:
    """Why an image must not be decoded (its header declares over MAX_IMAGE_PIXELS), else None.

    JPEG and PNG sizes are read from their headers here (a few microseconds: FER2013's 36,000 faces
    are all checked); other formats are checked by PIL before it decodes (`_decode_pil`).
    """
    size = _jpeg_size(data) if data.startswith(_JPEG_START) else (
        struct.unpack(">II", data[16:24]) if data.startswith(_PNG_START) and len(data) >= 24 else None)
    if size and size[0] * size[1] > MAX_IMAGE_PIXELS:
        w, h = size
        return f"image too large: {w}×{h} = {w * h / 1e6:.0f} megapixels (the limit is {MAX_IMAGE_PIXELS / 1e6:.0f} MP)"
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame segment, or None when none is found."""
    at = 2
    while at + 9 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:  # markers without a length
            at += 1 if marker == 0xFF else 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[at + 5:at + 9])
            return w, h
        at += 2 + struct.unpack(">H", data[at + 2:at + 4])[0]
    return None


def _decode_pil(data: bytes) -> tuple[np.ndarray | None, str | None]:
    """Strict PIL decode to grayscale (raises on truncated data); (None, reason) on failure."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_IMAGE_PIXELS:
                return None, (f"image too large: {im.width}×{im.height} = {im.width * im.height / 1e6:.0f} megapixels "
                              f"(the limit is {MAX_IMAGE_PIXELS / 1e6:.0f} MP)")
            im.load()
            return np.asarray(ImageOps.exif_transpose(im).convert("L"), dtype=np.uint8), None
    except Image.DecompressionBombError:
        return None, "image too large"
    except Exception as err:  # PIL raises many types for corrupt data
        if "truncated" in str(err):
            return None, "truncated image"
        return None, f"unreadable ({type(err).__name__}: {err})".replace("\n", " ")[:160]


def _decode_chunk(src: Source, paths: list[str]) -> list[tuple[np.ndarray | None, str | None]]:
    out = []
    for path in paths:
        try:
            data = src.read(path)
        except limits.LimitError as err:  # over a size limit: refused before (or while) reading it
            out.append((None, str(err)))
            continue
        except Exception as err:  # OSError from disks; BadZipFile / zlib.error from damaged zip members
            out.append((None, f"unreadable ({type(err).__name__}: {err})"[:160]))
            continue
        out.append(_decode(data))
    return out


def load_images(src: Source, labelled: list[tuple[Entry, str, str]], progress: ProgressFn | None) -> FerDataset:
    total = len(labelled)
    paths = [e.path for e, _, _ in labelled]
    images = np.zeros((total, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    ok = np.zeros(total, dtype=bool)
    problems: list[Problem] = []
    chunk = 1024
    starts = range(0, total, chunk)
    # Folders: two threads overlap file reads with decoding (OpenCV releases the GIL). Zips: one
    # thread, as ZipFile is not thread-safe.
    workers = 1 if src.zip is not None else 2
    with ThreadPoolExecutor(workers) as pool:
        for start, results in zip(starts, pool.map(lambda s: _decode_chunk(src, paths[s:s + chunk]), starts)):
            for i, (img, issue) in enumerate(results, start):
                if img is not None:
                    images[i], ok[i] = img, True
                if issue:
                    problems.append(Problem(paths[i], issue))
            if progress:
                done = min(start + chunk, total)
                progress(done, total, f"decoded {done:,} of {total:,} images")
    if not ok.any():
        raise DataError(f"none of the {total:,} images in {src.description} could be read "
                        f"(first problem: {problems[0].file}: {problems[0].reason})")
    emotions = np.array([emotion for _, emotion, _ in labelled])[ok]
    classes = sort_emotions(set(emotions.tolist()))
    index = {c: k for k, c in enumerate(classes)}
    labels = np.array([index[e] for e in emotions.tolist()], dtype=np.int16)
    splits = np.array([split for _, _, split in labelled])[ok]
    files = np.array(paths)[ok]
    prefixed = any(Path(f).name.lower().startswith(tuple(_FILE_PREFIXES)) for f in files[:5000])
    layout = "kaggle-folders" if prefixed else "split-folders"
    if src.zip is not None:
        layout += " (zip)"
    return FerDataset(images[ok], labels, splits, files, classes, layout=layout, problems=problems)
