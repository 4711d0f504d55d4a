"""Reading user photos safely: any common file → an upright RGB uint8 array, or a clear `ImageError`.

Decoding honours EXIF orientation (phone photos), converts every PIL mode (RGBA, palette, CMYK,
16-bit, grayscale, 1-bit) to RGB, and refuses decompression bombs before decoding their pixels.
Works on bytes in memory, so uploads never touch the disk.
"""
from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 90_000_000  # ~ PIL's own decompression-bomb threshold (89.5 MP); 100 MP photos are refused


class ImageError(ValueError):
    """A file that is not a readable image, or one too large to decode safely."""


def read_image(source, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode image bytes (or a file path) into an upright RGB uint8 H×W×3 array."""
    data, name = _read_bytes(source)
    if len(data) == 0:
        raise ImageError(f"{name} is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own check below is stricter
            img = Image.open(io.BytesIO(data))
        w, h = img.size
        if w * h > max_pixels:
            raise ImageError(f"{name} is too large: {w}×{h} = {w * h / 1e6:.0f} megapixels "
                             f"(the limit is {max_pixels / 1e6:.0f} MP); downscale it first")
        fast = _decode_plain_jpeg(data, img)
        return fast if fast is not None else decode_with_pillow(img)
    except ImageError:
        raise
    except Image.DecompressionBombError as err:  # over twice PIL's limit: refused while reading the header
        pixels = re.search(r"\((\d+) pixels\)", str(err))
        size = f"{int(pixels.group(1)) / 1e6:.0f} megapixels" if pixels else "over PIL's decompression-bomb limit"
        raise ImageError(f"{name} is too large: {size} (the limit is {max_pixels / 1e6:.0f} MP); "
                         "downscale it first") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not a recognised image (expected JPEG, PNG, WebP, BMP, GIF or TIFF)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageError(f"{name} is truncated or corrupt and could not be decoded: {err}") from None


def decode_with_pillow(img: Image.Image) -> np.ndarray:
    """An opened image's pixels decoded by Pillow, upright (EXIF orientation) and RGB: every file
    `_decode_plain_jpeg` leaves alone."""
    img.load()
    ImageOps.exif_transpose(img, in_place=True)  # upright; no copy of a photo already upright
    return to_rgb(img)


def _decode_plain_jpeg(data: bytes, img: Image.Image) -> np.ndarray | None:
    """An 8-bit colour or gray JPEG decoded by OpenCV: the same libjpeg-turbo pixels as Pillow's, in 0.55 of its
    time on a 12 MP photo (docs/face_framing.md), then turned upright as `ImageOps.exif_transpose` turns it. None for
    anything else, which Pillow decodes: other modes (CMYK …), a file that does not end with the JPEG end marker
    (truncated, or with data appended), a decode that fails or disagrees with the header's size."""
    if img.format != "JPEG" or img.mode not in ("RGB", "L") or not data.endswith(b"\xff\xd9"):
        return None
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None or bgr.shape[1::-1] != img.size:
        return None
    return np.ascontiguousarray(_upright(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), img.getexif().get(0x0112, 1)))


def _upright(rgb: np.ndarray, orientation) -> np.ndarray:
    """The pixels as EXIF orientation 1–8 says to display them (`ImageOps.exif_transpose`'s eight cases)."""
    turns = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
             5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1),
             7: lambda a: a[::-1, ::-1].transpose(1, 0, 2), 8: lambda a: np.rot90(a, 1)}
    return turns[orientation](rgb) if orientation in turns else rgb


def to_rgb(img: Image.Image) -> np.ndarray:
    """A PIL image of any mode → RGB uint8: transparency composited on white, 16-bit scaled to 8-bit."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _gray_to_rgb(_high_depth_to_uint8(np.asarray(img), mode))
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode == "PA":
        img = img.convert("RGBA")
    elif mode in ("RGBa", "La"):
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    if img.mode != "RGB":
        img = img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV …
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


def encode_png(image_rgb: np.ndarray) -> bytes:
    """PNG bytes of an RGB uint8 array (for downloads and saved overlays)."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image_rgb, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


SAMPLES: dict[str, str] = {
    "Astronaut (Eileen Collins, NASA, public domain)": "astronaut",
    "Cameraman (grayscale; a face Haar misses, MTCNN finds)": "camera",
    "LFW face crop (25×25, already cropped: classify the whole image)": "lfw_subset",
    "Coffee cup (no face)": "coffee",
}


def sample_image(title: str) -> np.ndarray:
    """A bundled sample photo (shipped with scikit-image, no download) as RGB uint8."""
    from skimage import data as skdata

    name = SAMPLES[title]
    if name == "lfw_subset":  # 200 25×25 float crops; the first 100 are faces
        return _gray_to_rgb(np.round(skdata.lfw_subset()[0] * 255).astype(np.uint8))
    return _gray_to_rgb(getattr(skdata, name)())


def _read_bytes(source) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "the image"
    if hasattr(source, "read"):
        return source.read(), str(getattr(source, "name", "the image"))
    path = Path(os.fspath(source))
    if not path.is_file():
        raise ImageError(f"{path} does not exist or is not a file")
    return path.read_bytes(), path.name


def _high_depth_to_uint8(a: np.ndarray, mode: str) -> np.ndarray:
    """16-bit gray maps 0–65535 to 0–255; 32-bit int or float data is stretched over its own range."""
    a = a.astype(np.float64)
    if mode.startswith("I;16") or (mode == "I" and a.size and a.min() >= 0 and a.max() <= 65535
                                   and a.max() > 255):
        return np.clip(np.round(a / 257.0), 0, 255).astype(np.uint8)
    if mode == "F" and a.size and a.min() >= 0 and a.max() <= 1.0:
        return np.clip(np.round(a * 255.0), 0, 255).astype(np.uint8)
    if mode == "I" and a.size and a.min() >= 0 and a.max() <= 255:
        return a.astype(np.uint8)
    a = np.nan_to_num(a)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 1.0)
    return np.zeros(a.shape, np.uint8) if hi <= lo else np.round((a - lo) / (hi - lo) * 255).astype(np.uint8)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    gray = np.asarray(gray)
    if gray.ndim == 3:
        return np.ascontiguousarray(gray[..., :3].astype(np.uint8))
    return np.ascontiguousarray(np.repeat(gray.astype(np.uint8)[..., None], 3, axis=-1))
