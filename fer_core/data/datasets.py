"""FER datasets from disk into one in-memory form.

Reads the Kaggle folder layout (`train|test/<emotion>/` with `Training_`, `PublicTest_`,
`PrivateTest_` file prefixes), the original `fer2013.csv`, split folders such as the 4-class
course layout (`train|validation|test/<emotion>/`), and a `.zip` of any of these. Everything
becomes a `FerDataset`: uint8 48×48 images, label indices, split names and source file names.
A decoded copy is cached on disk, keyed by a fingerprint of the files, so reloading is instant.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import struct
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image, ImageOps

from ..base import limits
from ..base.files import atomic_write
from ..base.labels import EMOTIONS, canonical_emotion, sort_emotions
from ..base.progress import ProgressFn

log = logging.getLogger(__name__)

IMAGE_SIZE = 48
MAX_IMAGE_PIXELS = 25_000_000  # per dataset image: faces are crops; 25 MP decodes to 75 MB of RGB at most
SPLITS: tuple[str, ...] = ("train", "validation", "test")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
SUPPORTED_LAYOUTS = (
    "Kaggle folders: train/<emotion>/ and test/<emotion>/ (Training_, PublicTest_, PrivateTest_ files)",
    "split folders: train|validation|test/<emotion>/ (e.g. the 4-class happy/neutral/sad/surprise layout)",
    "the original fer2013.csv with columns emotion,pixels,Usage",
    "a .zip file holding any of the above",
)
_FINGERPRINT_VERSION = "1"  # part of every fingerprint: bump only if the file identity rule changes
_CACHE_VERSION = "2"  # format of the decoded cache files

_SPLIT_FOLDERS = {
    "train": "train", "training": "train", "trainset": "train",
    "validation": "validation", "val": "validation", "valid": "validation", "dev": "validation",
    "publictest": "validation",
    "test": "test", "testing": "test", "testset": "test", "privatetest": "test",
}
_FILE_PREFIXES = {"training_": "train", "publictest_": "validation", "privatetest_": "test"}
_CSV_USAGE = {"training": "train", "publictest": "validation", "privatetest": "test"}


class DataError(ValueError):
    """A dataset could not be read; the message says why and what is supported."""


@dataclass(frozen=True)
class Problem:
    """A file that was skipped or altered while loading, and why."""

    file: str
    reason: str


@dataclass
class FerDataset:
    """Images (N×48×48 uint8), label indices into `classes`, split names and file names."""

    images: np.ndarray
    labels: np.ndarray
    splits: np.ndarray
    files: np.ndarray
    classes: tuple[str, ...]
    source: str = ""
    layout: str = ""
    fingerprint: str = ""
    problems: list[Problem] = field(default_factory=list)
    from_cache: bool = False
    # FER+ annotator votes per row (N×10 counts in `fer_core.data.votes.VOTE_ORDER`, zeros = no votes) and
    # where they came from; None until `fer_core.data.votes.attach_votes` finds a votes file
    votes: np.ndarray | None = None
    votes_info: dict | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def split_names(self) -> tuple[str, ...]:
        """Splits present, in train/validation/test order."""
        present = set(np.unique(self.splits).tolist())
        return tuple(s for s in SPLITS if s in present)

    def _take(self, mask: np.ndarray, **changes) -> "FerDataset":
        if self.votes is not None and "votes" not in changes:
            changes["votes"] = self.votes[mask]
        return replace(self, images=self.images[mask], labels=self.labels[mask],
                       splits=self.splits[mask], files=self.files[mask], **changes)

    def split(self, name: str) -> "FerDataset":
        """The rows of one split (`train`, `validation` or `test`)."""
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; use one of {', '.join(SPLITS)}")
        return self._take(self.splits == name)

    def subset(self, labels: Iterable[str]) -> "FerDataset":
        """Only the rows whose emotion is in `labels`, re-indexed to that label set."""
        wanted = sort_emotions(labels)
        missing = [e for e in wanted if e not in self.classes]
        if missing:
            raise DataError(f"this dataset has no {', '.join(missing)} images "
                            f"(it has {', '.join(self.classes)})")
        old_to_new = np.full(len(self.classes), -1, dtype=np.int16)
        for new, name in enumerate(wanted):
            old_to_new[self.classes.index(name)] = new
        mapped = old_to_new[self.labels]
        keep = mapped >= 0
        out = self._take(keep, classes=wanted)
        out.labels = mapped[keep]
        return out

    def label_names(self) -> np.ndarray:
        """The emotion name of every row."""
        return np.asarray(self.classes)[self.labels]

    def counts(self):
        """A DataFrame of image counts, one row per class, one column per split, plus total."""
        import pandas as pd

        table = pd.crosstab(pd.Categorical(self.label_names(), categories=self.classes),
                            pd.Categorical(self.splits, categories=self.split_names), dropna=False)
        table.index.name, table.columns.name = "emotion", "split"
        table.index, table.columns = list(table.index), list(table.columns)
        table["total"] = table.sum(axis=1)
        return table


def resolve_split(dataset: FerDataset, split: str) -> tuple[FerDataset, str]:
    """Rows for an evaluation split and a description of what they are.

    `test` means PrivateTest (or a test folder) where the data has it; data with only
    PublicTest in its test folder (as shipped here) falls back to PublicTest and says so.
    """
    if split == "test" and "test" not in dataset.split_names and "validation" in dataset.split_names:
        return dataset.split("validation"), "validation (PublicTest; this dataset has no PrivateTest/test images)"
    part = dataset.split(split)
    if len(part) == 0:
        raise DataError(f"the dataset has no {split} images (it has {', '.join(dataset.split_names) or 'none'})")
    return part, split


# ----------------------------------------------------------------------------- sources

@dataclass
class _Entry:
    path: str  # relative path with forward slashes
    size: int
    stamp: int  # mtime in ns, or zip CRC


class _Source:
    """A folder, a zip file or an in-memory zip, seen as a list of files."""

    def __init__(self, source):
        self.zip: zipfile.ZipFile | None = None
        self.root: Path | None = None
        self.only: str | None = None  # the one CSV file when the source is a .csv path
        self.budget = limits.ArchiveBudget()  # uncompressed bytes a zip may still spend
        if isinstance(source, (bytes, bytearray, io.IOBase)):
            data = source if isinstance(source, (bytes, bytearray)) else source.read()
            self.description = "uploaded zip"
            self.key = hashlib.sha1(data).hexdigest()
            self.zip = _open_zip(io.BytesIO(data), self.description)
            return
        path = Path(source).expanduser()
        self.description = str(path)
        if not path.exists():
            raise DataError(f"{path} does not exist")
        self.key = ""
        if path.is_dir():
            self.root = path
        elif path.suffix.lower() == ".zip":
            self.zip = _open_zip(path, str(path))
        elif path.suffix.lower() == ".csv":
            self.root = path.parent
            self.only = path.name
        else:
            raise DataError(f"{path} is neither a folder, a .zip nor a .csv. Supported: "
                            + "; ".join(SUPPORTED_LAYOUTS))

    def entries(self) -> list[_Entry]:
        if self.zip is not None:
            return [_Entry(i.filename, i.file_size, i.CRC) for i in self.zip.infolist()
                    if not i.is_dir() and not _is_junk(i.filename)]
        if self.only:
            st = (self.root / self.only).stat()
            return [_Entry(self.only, st.st_size, st.st_mtime_ns)]
        out: list[_Entry] = []
        _scan_dir(self.root, "", out)
        return out

    def read(self, path: str, limit: int | None = None) -> bytes:
        """A file's bytes; LimitError (naming the limit) for one over `limit` (default
        `limits.MAX_MEMBER_BYTES`) or past the archive's budget."""
        if self.zip is not None:
            info = self.zip.getinfo(path)
            problem = self.budget.admit(info, limit)
            if problem:
                raise limits.LimitError(problem)
            return limits.read_member(self.zip, info, limit)
        return limits.read_file(os.path.join(self.root, path), limit)

    def open(self, path: str, limit: int | None = None):
        """A binary stream of a file (a table read line by line); LimitError when it declares over `limit`
        (default `limits.MAX_TABLE_BYTES`)."""
        limit = limit or limits.MAX_TABLE_BYTES
        if self.zip is not None:
            info = self.zip.getinfo(path)
            problem = self.budget.admit(info, limit)
            if problem:
                raise limits.LimitError(problem)
            return self.zip.open(info)
        file = os.path.join(self.root, path)
        size = os.stat(file).st_size
        if size > limit:
            raise limits.LimitError(f"{limits.size_text(size)}, over the {limits.size_text(limit)} limit per table")
        return open(file, "rb")


def _scan_dir(folder: Path | str, rel: str, out: list[_Entry]) -> None:
    """Append every non-hidden file under `folder` (one os.scandir per folder, no os.walk)."""
    try:
        items = list(os.scandir(folder))
    except OSError:
        return
    for item in items:
        if item.name.startswith((".", "__MACOSX")):
            continue
        path = f"{rel}{item.name}"
        try:
            if item.is_dir():
                _scan_dir(item.path, path + "/", out)
            elif item.is_file():
                st = item.stat()
                out.append(_Entry(path, st.st_size, st.st_mtime_ns))
        except OSError:
            continue


def _open_zip(file, name: str) -> zipfile.ZipFile:
    try:
        return limits.open_zip(file, name)
    except limits.LimitError as err:
        raise DataError(str(err)) from None
    except (zipfile.BadZipFile, OSError) as err:
        raise DataError(f"{name} is not a readable zip file ({err})") from None


def _is_junk(path: str) -> bool:
    parts = path.split("/")
    return any(p.startswith((".", "__MACOSX")) for p in parts if p)


def fingerprint(entries: list[_Entry], key: str = "") -> str:
    """A short hash of every file's path, size and modification stamp: changes when any file does."""
    h = hashlib.sha1(f"{_FINGERPRINT_VERSION}|{key}".encode())
    for e in sorted(entries, key=lambda e: e.path):
        h.update(f"{e.path}|{e.size}|{e.stamp}\n".encode())
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------- loading

def default_cache_dir() -> Path:
    """Where decoded datasets are cached: $FER_CACHE_DIR, else ~/.cache/fer_core."""
    return Path(os.environ.get("FER_CACHE_DIR", Path.home() / ".cache" / "fer_core"))


def default_data_dir() -> Path | None:
    """$FER_DATA_DIR, else ../shared/datasets/fer2013 beside the repo when it exists."""
    env = os.environ.get("FER_DATA_DIR")
    if env:
        return Path(env).expanduser()
    shared = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "fer2013"
    return shared if shared.exists() else None


def check_data_root(source: str) -> Path:
    """A dataset path typed into the dashboard, as the path to read. With $FER_DATA_ROOT set, only paths
    inside that folder are accepted (relative ones are taken from it; `..` and symbolic links are resolved
    first), so a deployed dashboard cannot be pointed at the rest of the server's files. DataError otherwise."""
    path = Path(source).expanduser()
    root = os.environ.get("FER_DATA_ROOT")
    if not root:
        return path
    root_path = Path(root).expanduser().resolve()
    resolved = (root_path / path).resolve()  # an absolute `path` replaces the root here
    if resolved != root_path and root_path not in resolved.parents:
        raise DataError(f"{source} is outside the data folder this server allows ($FER_DATA_ROOT); "
                        "enter a dataset path inside it or upload a zip")
    return resolved


def load_dataset(source, *, progress: ProgressFn | None = None, cache: bool = True,
                 cache_dir: Path | None = None) -> FerDataset:
    """Load a dataset folder, .zip (path or bytes) or fer2013.csv, using the on-disk cache when valid."""
    src = _Source(source)
    if progress:
        progress(0, 1, f"listing {src.description}")
    entries = src.entries()
    fp = fingerprint(entries, src.key)
    cache_file = (cache_dir or default_cache_dir()) / "datasets" / f"{fp}.v{_CACHE_VERSION}.npz"
    if cache and cache_file.exists():
        try:
            ds = _read_cache(cache_file)
            ds.source = src.description
            if progress:
                progress(1, 1, f"loaded {len(ds):,} images from the cache")
            return ds
        except Exception as err:  # noqa: BLE001 — a damaged cache is rebuilt, never fatal
            log.warning("rebuilding the dataset: the cache %s is unreadable (%s: %s)",
                        cache_file, type(err).__name__, err)
    images = [e for e in entries if e.path.lower().endswith(IMAGE_EXTENSIONS)]
    labelled = _label_entries(images)
    if labelled:
        ds = _load_images(src, labelled, progress)
    else:
        csvs = [e for e in entries if e.path.lower().endswith(".csv")]
        if not csvs:
            raise DataError(_unrecognised(src.description, len(entries), len(images)))
        ds = _load_csv(src, sorted(csvs, key=lambda e: ("fer2013" not in e.path.lower(), e.path))[0], progress)
    ds.source, ds.fingerprint = src.description, fp
    if cache:
        _write_cache(cache_file, ds)
    return ds


def _unrecognised(where: str, n_files: int, n_images: int) -> str:
    what = "is empty" if n_files == 0 else (
        f"has {n_images} images but none inside an emotion folder" if n_images else "has no images and no fer2013.csv")
    return f"{where} {what}. Supported layouts: " + "; ".join(SUPPORTED_LAYOUTS) + "."


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


def _label_entries(images: list[_Entry]) -> list[tuple[_Entry, str, str]]:
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


def _decode_chunk(src: _Source, paths: list[str]) -> list[tuple[np.ndarray | None, str | None]]:
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


def _load_images(src: _Source, labelled: list[tuple[_Entry, str, str]], progress: ProgressFn | None) -> FerDataset:
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


def _load_csv(src: _Source, entry: _Entry, progress: ProgressFn | None) -> FerDataset:
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


_CSV_BLOCK = 4096  # rows parsed together (~33 MB of fer2013.csv text)


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


def _write_cache(path: Path, ds: FerDataset) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"classes": ds.classes, "layout": ds.layout, "fingerprint": ds.fingerprint,
                "problems": [[p.file, p.reason] for p in ds.problems]}
        atomic_write(path, lambda tmp: np.savez(tmp, images=ds.images, labels=ds.labels, splits=ds.splits,
                                                files=ds.files, meta=np.array(json.dumps(meta))))
    except OSError as err:  # a read-only home just means no cache
        log.debug("dataset not cached at %s: %s", path, err)


def _read_cache(path: Path) -> FerDataset:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        return FerDataset(z["images"], z["labels"], z["splits"], z["files"], tuple(meta["classes"]),
                          layout=meta["layout"], fingerprint=meta["fingerprint"],
                          problems=[Problem(*p) for p in meta["problems"]], from_cache=True)


def download_fer2013() -> Path:
    """Download FER2013 (Kaggle `msambare/fer2013`) with kagglehub; needs network and Kaggle access."""
    try:
        import kagglehub
    except ImportError:
        raise DataError("kagglehub is not installed: pip install kagglehub") from None
    try:
        return Path(kagglehub.dataset_download("msambare/fer2013"))
    except Exception as err:
        raise DataError(f"could not download FER2013 with kagglehub ({err})") from None


# ----------------------------------------------------------------------------- CLI

def add_cli(subparsers) -> None:
    """`data`: load a dataset and print its counts per class and split, and the files it skipped."""
    p = subparsers.add_parser("data", help="load a dataset and print its counts and problems")
    p.add_argument("--data", required=True, help="dataset folder, .zip or fer2013.csv")
    p.add_argument("--labels", help="all | 4class | comma list of emotions")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_data)


def _cmd_data(args) -> int:
    from ..base.progress import stderr_progress

    ds = load_dataset(args.data, progress=stderr_progress)
    if args.labels:
        from ..base.labels import parse_label_set
        ds = ds.subset(parse_label_set(args.labels))
    summary = {"source": ds.source, "layout": ds.layout, "fingerprint": ds.fingerprint, "n": len(ds),
               "classes": list(ds.classes), "splits": {s: int((ds.splits == s).sum()) for s in ds.split_names},
               "counts": ds.counts().to_dict(orient="index"), "problems": len(ds.problems)}
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"{ds.source}: {len(ds):,} images, layout {ds.layout}, fingerprint {ds.fingerprint}")
        print(ds.counts().to_string())
        for p in ds.problems[:20]:
            print(f"  skipped/altered {p.file}: {p.reason}")
        if len(ds.problems) > 20:
            print(f"  … {len(ds.problems) - 20} more problems")
    return 0
