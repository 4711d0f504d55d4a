"""read_image: every bad input gets an ImageError with a clear message; EXIF and PIL modes are converted."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps
from skimage import data as skdata

from fer_core.inference import images
from fer_core.inference.images import (MAX_PIXELS, SAMPLES, ImageError, encode_png, read_image, sample_image,
                                         to_rgb)
from tests.hostile import png_header_only


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_reads_png_bytes_and_path_identically(tmp_path):
    rgb = skdata.astronaut()
    raw = encode(Image.fromarray(rgb), "PNG")
    (tmp_path / "a.png").write_bytes(raw)
    from_bytes, from_path = read_image(raw), read_image(tmp_path / "a.png")
    assert from_bytes.dtype == np.uint8 and from_bytes.shape == (512, 512, 3)
    np.testing.assert_array_equal(from_bytes, rgb)
    np.testing.assert_array_equal(from_path, rgb)


def test_zero_bytes():
    with pytest.raises(ImageError, match="empty"):
        read_image(b"")


def test_truncated_jpeg():
    raw = encode(Image.fromarray(skdata.astronaut()), "JPEG", quality=90)
    with pytest.raises(ImageError, match="truncated or corrupt"):
        read_image(raw[: len(raw) // 2])


def test_text_file_renamed_jpg(tmp_path):
    path = tmp_path / "holiday.jpg"
    path.write_text("this is a shopping list, not a photo\n")
    with pytest.raises(ImageError, match="holiday.jpg is not a recognised image"):
        read_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        read_image(tmp_path / "nope.png")


def test_100_megapixel_image_rejected_before_decoding():
    bomb = png_header_only(10_000, 10_000)
    with pytest.raises(ImageError, match=r"too large: 10000×10000 = 100 megapixels"):
        read_image(bomb)
    assert Image.MAX_IMAGE_PIXELS is not None  # PIL's own guard stays on
    assert MAX_PIXELS < 100_000_000


def test_real_large_image_rejected_by_limit():
    raw = encode(Image.new("L", (400, 300)), "PNG")
    with pytest.raises(ImageError, match="too large"):
        read_image(raw, max_pixels=100_000)
    assert read_image(raw).shape == (300, 400, 3)


def test_exif_orientation_is_honoured():
    img = np.zeros((20, 40, 3), np.uint8)  # wide: red left half, blue right half
    img[:, :20] = (255, 0, 0)
    img[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    out = read_image(encode(Image.fromarray(img), "JPEG", quality=95, exif=exif))
    assert out.shape == (40, 20, 3)  # now tall
    top, bottom = out[:15].mean(axis=(0, 1)), out[-15:].mean(axis=(0, 1))
    assert top[0] > 200 and top[2] < 60  # the red left half is on top after a clockwise turn
    assert bottom[2] > 200 and bottom[0] < 60


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_plain_jpegs_decode_to_pillows_pixels_in_every_exif_orientation(mode):
    photo = Image.fromarray(skdata.astronaut()[:120, :80]).convert(mode)  # not square: a turn changes the shape
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        raw = encode(photo, "JPEG", quality=90, exif=exif)
        pillow = Image.open(io.BytesIO(raw))
        ImageOps.exif_transpose(pillow, in_place=True)
        fast = images._decode_plain_jpeg(raw, Image.open(io.BytesIO(raw)))
        assert fast is not None, "a plain JPEG takes OpenCV's decoder"
        np.testing.assert_array_equal(fast, to_rgb(pillow), err_msg=f"orientation {orientation}")
        np.testing.assert_array_equal(read_image(raw), fast)
        appended = raw + b"motion photo data"  # no end marker last: Pillow decodes it, the same pixels
        assert images._decode_plain_jpeg(appended, Image.open(io.BytesIO(appended))) is None
        np.testing.assert_array_equal(read_image(appended), fast, err_msg=f"appended, {orientation}")


def test_rgba_composited_on_white():
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:4] = (255, 0, 0, 255)  # opaque red
    rgba[4:] = (0, 0, 0, 0)  # fully transparent
    out = read_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    np.testing.assert_array_equal(out[0, 0], (255, 0, 0))
    np.testing.assert_array_equal(out[7, 7], (255, 255, 255))


def test_la_and_palette_with_transparency():
    la = Image.fromarray(np.dstack([np.full((4, 4), 10, np.uint8), np.zeros((4, 4), np.uint8)]), "LA")
    np.testing.assert_array_equal(read_image(encode(la, "PNG"))[0, 0], (255, 255, 255))
    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    np.testing.assert_array_equal(read_image(encode(pal, "PNG"))[0, 0], (0, 200, 0))
    pal.info["transparency"] = 1
    np.testing.assert_array_equal(read_image(encode(pal, "PNG", transparency=1))[0, 0], (255, 255, 255))


def test_cmyk_jpeg():
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in CMYK
    out = read_image(encode(cmyk, "JPEG", quality=95))
    assert out.shape == (16, 16, 3)
    r, g, b = out.reshape(-1, 3).mean(axis=0)
    assert r > 200 and g < 60 and b < 60


def test_16_bit_gray_is_scaled_not_clipped():
    a = np.array([[0, 257 * 128, 65535, 1000]], dtype=np.uint16)
    out = read_image(encode(Image.fromarray(a), "PNG"))
    assert out.shape == (1, 4, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, :, 0], [0, 128, 255, 4])
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_gray_and_one_bit():
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    out = read_image(encode(Image.fromarray(gray, "L"), "PNG"))
    np.testing.assert_array_equal(out[..., 0], gray)
    np.testing.assert_array_equal(out[..., 2], gray)
    bits = Image.fromarray(np.eye(8, dtype=bool))
    assert bits.mode == "1"
    out = read_image(encode(bits, "PNG"))
    assert set(np.unique(out)) == {0, 255} and out[0, 0, 0] == 255 and out[0, 1, 0] == 0


def test_encode_png_round_trip_and_samples():
    rgb = (np.random.default_rng(0).random((5, 7, 3)) * 255).astype(np.uint8)
    np.testing.assert_array_equal(read_image(encode_png(rgb)), rgb)
    for title in SAMPLES:
        s = sample_image(title)
        assert s.dtype == np.uint8 and s.ndim == 3 and s.shape[2] == 3


def test_gigantic_header_rejected_too():
    with pytest.raises(ImageError, match=r"too large: 400 megapixels"):
        read_image(png_header_only(20_000, 20_000))
