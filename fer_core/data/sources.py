"""Where a dataset's files come from: a folder, a .zip (path or bytes) or a single .csv, seen as one list of
files with size and modification stamp (`Source`), read within the size limits of `fer_core.base.limits`,
and the fingerprint of that list that keys the decoded-dataset cache."""
from __future__ import annotations

import hashlib
import io
import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..base import limits
from .fer_dataset import SUPPORTED_LAYOUTS, DataError

log = logging.getLogger(__name__)

_FINGERPRINT_VERSION = "1"  # part of every fingerprint: bump only if the file identity rule changes


@dataclass
class Entry:
    path: str  # relative path with forward slashes
    size: int
    stamp: int  # mtime in ns, or zip CRC


class Source:
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

    def entries(self) -> list[Entry]:
        if self.zip is not None:
            return [Entry(i.filename, i.file_size, i.CRC) for i in self.zip.infolist()
                    if not i.is_dir() and not _is_junk(i.filename)]
        if self.only:
            st = (self.root / self.only).stat()
            return [Entry(self.only, st.st_size, st.st_mtime_ns)]
        out: list[Entry] = []
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


def _scan_dir(folder: Path | str, rel: str, out: list[Entry]) -> None:
    """Append every non-hidden file under `folder` (one os.scandir per folder, no os.walk)."""
    try:
        items = list(os.scandir(folder))
    except OSError as err:  # an unreadable folder is left out of the dataset, not fatal
        log.warning("skipping unreadable folder %s: %s", folder, err)
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
                out.append(Entry(path, st.st_size, st.st_mtime_ns))
        except OSError as err:  # e.g. a file deleted while listing, or a broken link
            log.warning("skipping %s: %s", item.path, err)
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


def fingerprint(entries: list[Entry], key: str = "") -> str:
    """A short hash of every file's path, size and modification stamp: changes when any file does."""
    h = hashlib.sha1(f"{_FINGERPRINT_VERSION}|{key}".encode())
    for e in sorted(entries, key=lambda e: e.path):
        h.update(f"{e.path}|{e.size}|{e.stamp}\n".encode())
    return h.hexdigest()[:16]
