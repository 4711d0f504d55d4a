"""The original `fer2013.csv` layout (emotion code, 2304 space-separated pixels, Usage), read as a stream a
block of rows at a time so memory holds the decoded faces plus one block of text; bad rows are listed as
problems by their row number."""
from __future__ import annotations

import warnings
import zipfile

import numpy as np

from ..base import limits
from ..base.labels import EMOTIONS, sort_emotions
from ..base.progress import ProgressFn
from .fer_dataset import IMAGE_SIZE, SUPPORTED_LAYOUTS, DataError, FerDataset, Problem
from .sources import Entry, Source

_CSV_USAGE = {"training": "train", "publictest": "validation", "privatetest": "test"}
_CSV_BLOCK = 4096  # rows parsed together (~33 MB of fer2013.csv text)


def load_csv(src: Source, entry: Entry, progress: ProgressFn | None) -> FerDataset:
    """Rows of fer2013.csv (emotion code, 2304 space-separated pixels, Usage) as a dataset.

    Read as a stream, a block of rows at a time, so memory holds the decoded faces plus one block of
    text; a row over `limits.MAX_ROW_BYTES` is listed by its row number without being held.
    """
    if progress:
        progress(0, 1, f"reading {entry.path}")
    name = entry.path
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    problems: list[Problem] = []
    try:
        with src.open(name) as fh:
            header, block = None, []
            for number, line, length in limits.iter_lines(fh):
                if line is None:
                    problems.append(Problem(f"{name}:row {number}", f"row of {limits.size_text(length)}, over the "
                                            f"{limits.size_text(limits.MAX_ROW_BYTES)} limit per row"))
                elif header is None:
                    header = _csv_header(line, name)
                elif line.strip():
                    block.append((number, line))
                if len(block) >= _CSV_BLOCK:
                    parts.append(_csv_block(block, header, name, problems))
                    block = []
            if block:
                parts.append(_csv_block(block, header, name, problems))
    except limits.LimitError as err:
        raise DataError(f"{name}: {err}") from None
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(f"{name} could not be read ({err})") from None
    if header is None:
        raise DataError(f"{name} is empty. Supported layouts: " + "; ".join(SUPPORTED_LAYOUTS) + ".")
    images, codes, splits, files = (np.concatenate([p[k] for p in parts]) if parts else np.zeros(0)
                                    for k in range(4))
    problems.sort(key=lambda p: int(p.file.rsplit(" ", 1)[1]))
    if len(codes) == 0:
        raise DataError(f"{name} has no valid rows"
                        + (f" ({problems[0].file}: {problems[0].reason})" if problems else ""))
    codes = codes.astype(int)
    classes = sort_emotions(EMOTIONS[c] for c in np.unique(codes))
    index = np.full(len(EMOTIONS), -1, dtype=np.int16)
    for k, c in enumerate(classes):
        index[EMOTIONS.index(c)] = k
    if progress:
        progress(1, 1, f"read {len(codes):,} images from {name}")
    return FerDataset(images.astype(np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE), index[codes], splits.astype(str),
                      files.astype(str), classes, layout="fer2013-csv" + (" (zip)" if src.zip is not None else ""),
                      problems=problems)


def _csv_header(line: bytes, name: str) -> dict[str, int]:
    """Column positions of emotion, pixels and (optional) usage; DataError when the first two are missing."""
    import csv

    fields = next(csv.reader([line.decode("utf-8-sig", errors="replace")]), [])
    columns = {f.strip().lower(): k for k, f in enumerate(fields)}
    if not {"emotion", "pixels"} <= set(columns):
        raise DataError(f"{name} lacks the columns emotion,pixels. Supported layouts: "
                        + "; ".join(SUPPORTED_LAYOUTS) + ".")
    return columns


def _csv_block(block: list[tuple[int, bytes]], header: dict[str, int], name: str, problems: list[Problem]):
    """(pixels N×2304, emotion codes, splits, file names) of a block's valid rows; the others go to `problems`."""
    rows = [_csv_fields(line) for _, line in block]
    numbers = [number for number, _ in block]

    def cell(fields, column):
        k = header.get(column)
        return fields[k].strip() if k is not None and k < len(fields) else ""

    images, pixel_issue = _parse_pixels(np.array([cell(f, "pixels") for f in rows], dtype=object))
    codes = np.array([_emotion_code(cell(f, "emotion")) for f in rows], dtype=np.int16)
    usage = [cell(f, "usage") if "usage" in header else "Training" for f in rows]
    splits = np.array([_CSV_USAGE.get("".join(u.lower().replace("_", "").replace("-", "").split()), "")
                       for u in usage], dtype=object)
    reasons = np.where(pixel_issue != "", pixel_issue, np.where(codes < 0, "unknown emotion code",
                                                                np.where(splits == "", "unknown Usage", "")))
    problems += [Problem(f"{name}:row {numbers[r]}", str(reasons[r])) for r in np.flatnonzero(reasons != "")]
    ok = reasons == ""
    files = np.array([f"{name}:row {n}" for n in numbers], dtype=object)
    return images.reshape(len(rows), -1)[ok], codes[ok], splits[ok], files[ok]


def _csv_fields(line: bytes) -> list[str]:
    """One line's fields (a quote left open ends with the line, so rows keep their numbers)."""
    import csv

    try:
        return next(csv.reader([line.decode("utf-8", errors="replace")]), [])
    except csv.Error:
        return []


def _emotion_code(text: str) -> int:
    """FER2013's emotion code 0–6 from its text, or -1 when it is not one."""
    try:
        value = float(text)
    except ValueError:
        return -1
    return int(value) if value.is_integer() and 0 <= value < len(EMOTIONS) else -1


def _parse_pixels(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parse pixel strings into N×48×48 uint8 plus a per-row problem ('' when fine).

    One vectorised parse of all rows; only when that fails are rows parsed one by one to find the bad ones.
    """
    n, size = len(pixels), IMAGE_SIZE * IMAGE_SIZE
    issues = np.full(n, "", dtype=object)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            flat = np.fromstring(" ".join(pixels), dtype=np.int64, sep=" ") if n else np.zeros(0, np.int64)
        except ValueError:  # non-numeric text somewhere
            flat = np.zeros(0, np.int64)
        if flat.size == n * size and (n == 0 or (flat.min() >= 0 and flat.max() <= 255)):
            return flat.astype(np.uint8).reshape(n, IMAGE_SIZE, IMAGE_SIZE), issues
        images = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
        for r, text in enumerate(pixels):
            tokens = text.split()
            if len(tokens) != size:
                issues[r] = f"wrong pixel count ({len(tokens)}, expected {size})"
                continue
            try:
                values = np.array(tokens, dtype=np.int64)
            except ValueError:
                issues[r] = "non-numeric pixel values"
                continue
            if values.min() < 0 or values.max() > 255:
                issues[r] = "pixel values outside 0–255"
                continue
            images[r] = values.reshape(IMAGE_SIZE, IMAGE_SIZE)
    return images, issues
