"""What a batch run scores: images, zip members and videos found under files and folders (`expand_inputs`),
and the bytes of one image read through bounded streams (`read_item_bytes`, `fer_core.base.limits`).
"""
from __future__ import annotations

import os
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..base.limits import ArchiveBudget, LimitError, open_zip, read_file, read_member
from ..video.files import VIDEO_TYPES

IMAGE_TYPES: tuple[str, ...] = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff")


@dataclass(frozen=True)
class Item:
    """One thing to score: an image file, an image inside a zip (`member`), or a video file.

    `file` is how results name it (the path as given, `archive.zip!inner/path.jpg` for zip members);
    `path` is the absolute file to open.
    """

    file: str
    path: str
    kind: str  # image | zip | video
    member: str = ""


def _ext(path) -> str:
    return Path(path).suffix.lower().lstrip(".")


def expand_inputs(inputs) -> tuple[list[Item], list[tuple[str, str]]]:
    """Images, zip members and videos under `inputs` (files or folders, recursively, sorted), and
    (file, reason) for inputs that could not be listed (missing, unreadable zip)."""
    items, problems = [], []
    for raw in inputs:
        path = Path(os.fspath(raw))
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not any(
                part.startswith(".") for part in p.relative_to(path).parts))
            files = [p for p in files if _ext(p) in (*IMAGE_TYPES, *VIDEO_TYPES, "zip")]
        elif path.is_file():
            files = [path]
        else:
            problems.append((str(path), "does not exist"))
            continue
        for f in files:
            kind = "zip" if _ext(f) == "zip" else "video" if _ext(f) in VIDEO_TYPES else "image"
            if kind != "zip":
                items.append(Item(str(f), str(f.resolve()), kind))
                continue
            try:
                members, refused = _zip_members(f)
            except LimitError as err:
                problems.append((str(f), str(err)))
                continue
            except (zipfile.BadZipFile, OSError) as err:
                problems.append((str(f), f"not a readable zip: {err}"))
                continue
            items += [Item(f"{f}!{n}", str(f.resolve()), "zip", n) for n in members]
            problems += [(f"{f}!{n}", reason) for n, reason in refused]
    return items, problems


def _zip_members(path: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """The image members of a zip (sorted) and (member, reason) for those refused by their declared size,
    compression ratio or the archive's uncompressed budget (`fer_core.base.limits`), before anything is read."""
    budget = ArchiveBudget()
    members, refused = [], []
    with open_zip(path, str(path)) as zf:
        infos = sorted((i for i in zf.infolist() if not i.is_dir() and _ext(i.filename) in IMAGE_TYPES
                        and not any(p.startswith(".") or p == "__MACOSX" for p in i.filename.split("/"))),
                       key=lambda i: i.filename)
    for info in infos:
        reason = budget.admit(info)
        if reason:
            refused.append((info.filename, reason))
        else:
            members.append(info.filename)
    return members, refused


_open_zips = threading.local()  # per thread: .zips = {archive path: open ZipFile}


def read_item_bytes(item: Item) -> bytes:
    """An image's bytes, read through a bounded stream (`fer_core.base.limits`): LimitError past the limit."""
    if item.kind != "zip":
        return read_file(item.path)
    cache = _open_zips.__dict__.setdefault("zips", {})
    if item.path not in cache:  # one open ZipFile per thread and archive (its central directory read once)
        cache[item.path] = open_zip(item.path, item.path)
    return read_member(cache[item.path], item.member)
