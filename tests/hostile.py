"""Generators of hostile files for the hostile-input tests: zip bombs, archives that lie about their
sizes or hold thousands of entries, images whose headers declare gigapixels, absurd CSV rows, and a
measure of the memory a call allocates. Everything is built in memory in a fraction of a second.
"""
from __future__ import annotations

import io
import struct
import tracemalloc
import zipfile
import zlib

MiB = 1 << 20


def png_header_only(width: int, height: int) -> bytes:
    """A PNG declaring width×height pixels with one tiny IDAT: a decompression bomb's header."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def zip_bomb(inflated: int, name: str = "train/happy/Training_1.jpg", extra: dict[str, bytes] | None = None) -> bytes:
    """A zip whose member `name` inflates to `inflated` zero bytes (deflate at level 9: about 1,000:1),
    after the members of `extra`."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for member, data in (extra or {}).items():
            zf.writestr(member, data)
        with zf.open(name, "w", force_zip64=inflated >= 1 << 31) as fh:
            chunk = bytes(MiB)
            for _ in range(inflated // MiB):
                fh.write(chunk)
    return buf.getvalue()


def lying_zip(inflated: int, declared: int, name: str = "train/happy/Training_2.jpg",
              extra: dict[str, bytes] | None = None) -> bytes:
    """A zip bomb whose headers (local and central) declare `declared` bytes for a member that really
    inflates to `inflated`: a reader that trusts the declaration reads far more than it expects."""
    data = bytearray(zip_bomb(inflated, name, extra))
    size = struct.pack("<L", inflated)
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # uncompressed size in each header
        at = data.find(sig)
        while at >= 0:
            if data[at + offset:at + offset + 4] == size:
                data[at + offset:at + offset + 4] = struct.pack("<L", declared)
            at = data.find(sig, at + 4)
    return bytes(data)


def many_entries_zip(n: int, data: bytes = b"", prefix: str = "train/happy/Training_") -> bytes:
    """A zip of `n` stored entries holding `data` each (empty by default)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for i in range(n):
            zf.writestr(f"{prefix}{i}.jpg", data)
    return buf.getvalue()


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A valid PNG (8-bit gray, all black) declaring `width`×`height`: its pixel rows deflate ~1,000:1,
    so a 30,000² one (900 MB decoded) is about 0.9 MB."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = zlib.compressobj(9)
    row = bytes(width + 1)
    body = b"".join(rows.compress(row) for _ in range(height)) + rows.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def png_header_bomb(width: int = 60000, height: int = 60000) -> bytes:
    """A PNG that declares `width`×`height` but holds one compressed row (a header-only bomb)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(width + 1))) + chunk(b"IEND", b""))


def jpeg_with_size(jpeg: bytes, width: int, height: int) -> bytes:
    """A real JPEG whose start-of-frame segment is rewritten to declare `width`×`height` (a JPEG
    decoder allocates the declared frame before it finds the data missing)."""
    data = bytearray(jpeg)
    at = 2
    while at < len(data):
        marker, length = data[at + 1], struct.unpack(">H", data[at + 2:at + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            data[at + 5:at + 9] = struct.pack(">HH", height, width)
            return bytes(data)
        at += 2 + length
    raise ValueError("no start-of-frame segment")


def peak_allocated(fn, *args, **kwargs):
    """(result, peak bytes Python and NumPy allocated during the call), measured with tracemalloc."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        result = fn(*args, **kwargs)
    finally:
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
    return result, peak
