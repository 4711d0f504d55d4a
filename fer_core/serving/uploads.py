"""Reading the photos of an API request, in memory: raw body or multipart fields, refused early when over
the byte, image-count or pixel limits (413), not an image upload (415, 422) or malformed (400).
"""
from __future__ import annotations

import io
import logging
import warnings
from typing import Protocol

from .api_error import ApiError

log = logging.getLogger(__name__)


class UploadLimits(Protocol):
    """The limits `read_upload` enforces (`serve.ServeConfig` has them; this module does not import serve)."""

    max_bytes: int
    max_images: int


async def read_upload(request, config: UploadLimits) -> tuple[list[tuple[str, bytes]], dict]:
    """The photos of a request, [(name, bytes)], and its multipart text fields; never touches the disk.

    Refuses bodies over `max_bytes` (413) while reading, not after.
    """
    limit = config.max_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the request is {_size(int(declared))}; the limit is {_size(limit)}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the request is over the {_size(limit)} limit")
        chunks.append(chunk)
    body = b"".join(chunks)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        images, fields = await _parse_multipart(request.headers, body, limit)
    elif ctype in ("", "application/octet-stream") or ctype.startswith("image/"):
        images, fields = ([("upload", body)] if body else []), {}
    else:
        raise ApiError(415, f"unsupported content type {ctype!r}: send the photo as multipart/form-data "
                            "field 'image' or as the raw body (image/jpeg, image/png, …)")
    if not images:
        raise ApiError(422, "no image: send the photo as multipart field 'image' "
                            "(curl -F image=@photo.jpg) or as the raw request body")
    if len(images) > config.max_images:
        raise ApiError(413, f"{len(images)} images in one request; the limit is {config.max_images}")
    return images, fields


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 1024:.0f} KB"


async def _parse_multipart(headers, body: bytes, limit: int) -> tuple[list[tuple[str, bytes]], dict]:
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def stream():
        yield body

    parser = MultiPartParser(headers, stream(), max_files=64, max_fields=64, max_part_size=64 * 1024)
    parser.spool_max_size = limit + 1  # files stay in memory: the body is already within the limit
    try:
        form = await parser.parse()
    except MultiPartException as err:
        raise ApiError(400, f"malformed multipart body: {err}") from None
    images, fields = [], {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            if key != "image":
                raise ApiError(422, f"unexpected file field {key!r}: send photos in the field 'image'")
            data = await value.read()
            await value.close()
            if not data:
                raise ApiError(422, f"the uploaded image {value.filename or ''!r} is empty (0 bytes)")
            images.append((value.filename or "upload", data))
        elif key == "image":
            raise ApiError(422, "field 'image' holds text, not a file: use curl -F image=@photo.jpg (with the @)")
        else:
            fields[key] = value
    return images, fields


def check_pixels(name: str, data: bytes, max_pixels: int) -> None:
    """413 for an image over `max_pixels`, read from its header before any pixel is decoded."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            w, h = Image.open(io.BytesIO(data)).size
    except Image.DecompressionBombError:
        raise ApiError(413, f"{name} is too large to decode (over PIL's decompression-bomb limit)") from None
    except Exception as err:  # noqa: BLE001 — not an image: read_image says so with a clear message
        log.debug("%s: no image size to check (%s: %s)", name, type(err).__name__, err)
        return
    if w * h > max_pixels:
        raise ApiError(413, f"{name} is {w}×{h} = {w * h / 1e6:.0f} megapixels; the limit is "
                            f"{max_pixels / 1e6:.0f} MP: downscale it first")
