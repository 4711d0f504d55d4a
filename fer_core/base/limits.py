"""What one untrusted file may cost: bounded reads of archives, files and table rows.

Uploads and paths typed by a user reach the dataset loader, `batch` and the pages. A zip member that
inflates to gigabytes, an archive of a million empty entries or a CSV line of a gigabyte must be
refused by what it declares, before it is read, and read through a bounded stream, since declarations
can lie. Every refusal is a `LimitError` whose message names the file and the limit.

The limits, and why:

- `MAX_MEMBER_BYTES` (20 MiB) per image file or zip member: a face crop is kilobytes and a 40 MP
  phone JPEG about 15 MB; it equals the REST API's per-request limit.
- `MAX_TABLE_BYTES` (1 GiB) per CSV: the original fer2013.csv is 301 MB.
- `MAX_ARCHIVE_BYTES` (2 GiB) uncompressed per archive: FER2013 as Kaggle's zip of JPEGs is 60 MB,
  as fer2013.csv 301 MB; members past the budget are skipped and listed.
- `MAX_ARCHIVE_ENTRIES` (100,000) and `MAX_CENTRAL_DIRECTORY` (32 MiB): FER2013 has 35,887 files;
  Python's zipfile keeps ~0.6 KB per entry, so the listing stays under ~60 MB. Both are read from the
  archive's end record before zipfile parses anything.
- `MAX_RATIO` (100×) for members over 1 MiB: images barely compress (JPEG, PNG ≈ 1×, CSV text ≈ 3×);
  a member packed 100× or more is a bomb. Small files may compress more (a blank bitmap does).
- `MAX_ROW_BYTES` (64 KiB) per CSV line: a fer2013.csv row is ~8 KB (2,304 pixels of up to 4 chars).
"""
from __future__ import annotations

import struct
import zipfile
from pathlib import Path

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
MAX_MEMBER_BYTES = 20 * MiB
MAX_TABLE_BYTES = 1 * GiB
MAX_ARCHIVE_BYTES = 2 * GiB
MAX_ARCHIVE_ENTRIES = 100_000
MAX_CENTRAL_DIRECTORY = 32 * MiB
MAX_RATIO = 100
RATIO_FLOOR = 1 * MiB  # the ratio check applies to members declaring more than this
MAX_ROW_BYTES = 64 * KiB
_CHUNK = 1 * MiB


class LimitError(ValueError):
    """A file, archive member or row refused because it would exceed a size limit."""


def size_text(n: int) -> str:
    """A byte count for messages: 4.0 GiB, 20 MiB, 512 B."""
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} B"


# --- archives -------------------------------------------------------------------------------------
_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")


def check_zip_directory(fh, name: str) -> None:
    """Refuse an archive whose end record declares more than `MAX_ARCHIVE_ENTRIES` entries or a
    central directory over `MAX_CENTRAL_DIRECTORY`, before zipfile reads that directory into memory.

    An archive without a readable end record passes: zipfile then reports it as not a zip.
    """
    fh.seek(0, 2)
    size = fh.tell()
    tail_start = max(0, size - (_EOCD.size + 65535))
    fh.seek(tail_start)
    tail = fh.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _EOCD.size:
        return
    _, _, _, _, entries, cd_size, _, _ = _EOCD.unpack_from(tail, at)
    if entries == 0xFFFF or cd_size == 0xFFFFFFFF:  # zip64: the real counts sit in the zip64 record
        entries, cd_size = _zip64_counts(fh, tail_start + at, entries, cd_size)
    if entries > MAX_ARCHIVE_ENTRIES:
        raise LimitError(f"{name} holds {entries:,} entries; the limit is {MAX_ARCHIVE_ENTRIES:,} per archive")
    if cd_size > MAX_CENTRAL_DIRECTORY:
        raise LimitError(f"{name} has a {size_text(cd_size)} file list; the limit is "
                         f"{size_text(MAX_CENTRAL_DIRECTORY)}")


def _zip64_counts(fh, eocd_at: int, entries: int, cd_size: int) -> tuple[int, int]:
    if eocd_at < _ZIP64_LOCATOR.size:
        return entries, cd_size
    fh.seek(eocd_at - _ZIP64_LOCATOR.size)
    sig, _, record_at, _ = _ZIP64_LOCATOR.unpack(fh.read(_ZIP64_LOCATOR.size))
    if sig != b"PK\x06\x07":
        return entries, cd_size
    fh.seek(record_at)
    raw = fh.read(_ZIP64_EOCD.size)
    if len(raw) < _ZIP64_EOCD.size or raw[:4] != b"PK\x06\x06":
        return entries, cd_size
    fields = _ZIP64_EOCD.unpack(raw)
    return fields[7], fields[8]


def open_zip(file, name: str) -> zipfile.ZipFile:
    """`zipfile.ZipFile(file)` after `check_zip_directory`; `file` is a path or a seekable binary file.

    Raises LimitError for an oversized listing; zipfile's own errors (BadZipFile, OSError) pass through.
    """
    if isinstance(file, (str, Path)):
        with open(file, "rb") as fh:
            check_zip_directory(fh, name)
    else:
        check_zip_directory(file, name)
        file.seek(0)
    return zipfile.ZipFile(file)


def member_problem(info: zipfile.ZipInfo, limit: int | None = None) -> str | None:
    """Why a zip member must not be read (declared size over `limit`, default `MAX_MEMBER_BYTES`, or a
    bomb's compression ratio), or None when it may be read through `read_member`."""
    limit = limit or MAX_MEMBER_BYTES
    size, packed = info.file_size, max(info.compress_size, 1)
    if size > limit:
        return f"{size_text(size)} uncompressed, over the {size_text(limit)} limit per file"
    if size > RATIO_FLOOR and size / packed >= MAX_RATIO:
        return (f"compressed {size / packed:,.0f}× ({size_text(packed)} → {size_text(size)}), "
                f"over the {MAX_RATIO}× limit: a zip bomb")
    return None


class ArchiveBudget:
    """The uncompressed bytes an archive may still spend, shared by every member read from it."""

    def __init__(self, total: int | None = None):
        self.total = self.left = total or MAX_ARCHIVE_BYTES

    def admit(self, info: zipfile.ZipInfo, limit: int | None = None) -> str | None:
        """Reserve a member's declared size; the reason it is refused instead, or None."""
        problem = member_problem(info, limit)
        if problem is None and info.file_size > self.left:
            problem = f"skipped: the archive's {size_text(self.total)} uncompressed budget is used up"
        if problem is None:
            self.left -= info.file_size
        return problem


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo | str, limit: int | None = None) -> bytes:
    """A member's bytes, read through a stream that stops past `limit` whatever the header declares.

    LimitError messages give the reason and limit, not the name: callers list them beside the file."""
    info = info if isinstance(info, zipfile.ZipInfo) else zf.getinfo(info)
    limit = limit or MAX_MEMBER_BYTES
    problem = member_problem(info, limit)
    if problem:
        raise LimitError(problem)
    with zf.open(info) as fh:  # asks for no more than declared: zlib then inflates no more than that
        return _bounded(fh, limit, info.file_size)


def read_file(path, limit: int | None = None) -> bytes:
    """A file's bytes, refused (LimitError) when it holds more than `limit` (default `MAX_MEMBER_BYTES`);
    at most limit + 1 bytes are read, whatever the file grew to since its size was checked."""
    path, limit = Path(path), limit or MAX_MEMBER_BYTES
    size = path.stat().st_size
    if size > limit:
        raise LimitError(f"{size_text(size)}, over the {size_text(limit)} limit per file")
    with open(path, "rb") as fh:
        return _bounded(fh, limit, size)


def _bounded(fh, limit: int, declared: int) -> bytes:
    """At most min(declared, limit) + 1 bytes of `fh`; LimitError when it holds more than `limit`."""
    data = fh.read(min(declared, limit) + 1)
    if len(data) > limit:
        raise LimitError(f"more than {size_text(limit)} when read (more than declared), over the limit per file")
    return data


# --- table rows -------------------------------------------------------------------------------------
def iter_lines(fh, max_row: int | None = None, max_total: int | None = None):
    """(line number from 1, line bytes or None, length) for each line of a binary stream.

    A line over `max_row` bytes is skipped without being held in memory (None, with its length), so
    one absurd row costs at most `max_row` bytes; reading stops with LimitError past `max_total`
    (defaults `MAX_ROW_BYTES`, `MAX_TABLE_BYTES`).
    """
    max_row, max_total = max_row or MAX_ROW_BYTES, max_total or MAX_TABLE_BYTES
    number = total = 0
    while True:
        line = fh.readline(max_row + 1)
        if not line:
            return
        number += 1
        length = len(line)
        if length > max_row and not line.endswith(b"\n"):
            while True:  # drain the rest of the oversized line in bounded chunks
                rest = fh.readline(_CHUNK)
                length += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
            line = None
        total += length
        if total > max_total:
            raise LimitError(f"more than {size_text(max_total)} of table data, over the limit per table")
        yield number, line, length
