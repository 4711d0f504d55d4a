"""Builders of small, realistic dataset fixtures shared by the tests.

Faces come from scikit-image's bundled data (no download): the 100 face crops of
`skimage.data.lfw_subset()` (different people, upscaled to 48×48) and the astronaut photo.
Writers lay the images out as each supported dataset layout: Kaggle folders, the 4-class
course folders, fer2013.csv, and zips of any of them.

    from tests.fixtures import make_face_images, write_kaggle_layout
"""
from __future__ import annotations

import functools
import io
import zipfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from fer_core.base.labels import EMOTIONS, FOUR_CLASS

SIZE = 48


@functools.lru_cache(maxsize=1)
def lfw_faces() -> np.ndarray:
    """The 100 distinct LFW face crops of scikit-image, as 48×48 uint8 (read-only)."""
    from skimage.data import lfw_subset

    faces = (lfw_subset()[:100] * 255).round().astype(np.uint8)
    out = np.stack([cv2.resize(f, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC) for f in faces])
    out.setflags(write=False)
    return out


def astronaut_face(size: int | None = None, rgb: bool = False) -> np.ndarray:
    """The face of skimage's astronaut photo (a real frontal face), grayscale or RGB, optionally resized."""
    from skimage.data import astronaut

    crop = astronaut()[20:240, 150:330]  # 220×180 region around Eileen Collins' face
    if not rgb:
        crop = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    return crop if size is None else cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def make_face_images(n: int, seed: int = 0, distinct: bool = False) -> np.ndarray:
    """`n` face images, N×48×48 uint8.

    The first 100 are distinct people (shuffled by `seed`); later ones are variants of them (shift,
    mirror, brightness/contrast, noise). With `distinct=True` no two images are near duplicates
    (n ≤ 100 then), as the quality tests need.
    """
    base = lfw_faces()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(base))
    if distinct:
        if n > len(base):
            raise ValueError(f"only {len(base)} distinct faces available")
        return base[order[:n]].copy()
    out = np.empty((n, SIZE, SIZE), dtype=np.uint8)
    for i in range(n):
        img = base[order[i % len(base)]].astype(np.float32)
        if i >= len(base):
            img = np.roll(img, tuple(rng.integers(-3, 4, size=2)), axis=(0, 1))
            if rng.random() < 0.5:
                img = img[:, ::-1]
            img = (img - 128) * rng.uniform(0.8, 1.2) + 128 + rng.uniform(-20, 20) + rng.normal(0, 4, img.shape)
        out[i] = np.clip(img, 0, 255).round().astype(np.uint8)
    return out


def encode(image: np.ndarray, fmt: str = "jpg") -> bytes:
    """Encode a uint8 image as JPEG/PNG/BMP bytes (JPEG at quality 95)."""
    buf = io.BytesIO()
    kind = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "bmp": "BMP"}[fmt.lower().lstrip(".")]
    Image.fromarray(image).save(buf, kind, **({"quality": 95} if kind == "JPEG" else {}))
    return buf.getvalue()


def _images_for(counts: dict, images, seed: int):
    total = sum(counts.values())
    return iter(make_face_images(total, seed) if images is None else images)


def write_kaggle_layout(root, counts: dict | None = None, *, images=None, seed: int = 0, ext: str = "jpg",
                        folder_names: dict | None = None) -> dict[tuple[str, str], list[str]]:
    """Kaggle FER2013 folders: train/<emotion>/Training_*.jpg, test/<emotion>/PublicTest_*/PrivateTest_*.

    `counts` maps emotion → (training, public test, private test) image counts (default: 3 emotions);
    `folder_names` renames folders (e.g. {"happy": "Happy", "test": "TEST"}). Returns
    {(emotion, split): [relative paths]} with split train/validation/test.
    """
    counts = counts or {"angry": (3, 2, 1), "happy": (4, 2, 2), "sad": (3, 1, 1)}
    names = folder_names or {}
    flat = {(e, k): n for e, ns in counts.items() for k, n in enumerate(ns)}
    pics = _images_for(flat, images, seed)
    written: dict[tuple[str, str], list[str]] = {}
    serial = 10000
    for emotion, (n_train, n_public, n_private) in counts.items():
        for folder, prefix, split, n in (("train", "Training", "train", n_train),
                                         ("test", "PublicTest", "validation", n_public),
                                         ("test", "PrivateTest", "test", n_private)):
            d = Path(root) / names.get(folder, folder) / names.get(emotion, emotion)
            d.mkdir(parents=True, exist_ok=True)
            for _ in range(n):
                serial += 7
                path = d / f"{prefix}_{serial}.{ext}"
                path.write_bytes(encode(next(pics), ext))
                written.setdefault((emotion, split), []).append(path.relative_to(root).as_posix())
    return written


def write_course_layout(root, counts: dict | None = None, *, images=None, seed: int = 0, ext: str = "png",
                        emotions=FOUR_CLASS, split_names=("train", "validation", "test")) -> dict:
    """4-class course folders: <train|validation|test>/<emotion>/<n>.png.

    `counts` maps split → images per emotion (default 3/2/2). Returns {(emotion, split): [relative paths]}.
    """
    counts = counts or {"train": 3, "validation": 2, "test": 2}
    canonical = {"train": "train", "validation": "validation", "test": "test"}
    pics = _images_for({(s, e): n for s, n in counts.items() for e in emotions}, images, seed)
    written: dict = {}
    for split, name in zip(("train", "validation", "test"), split_names):
        for emotion in emotions:
            d = Path(root) / name / emotion
            d.mkdir(parents=True, exist_ok=True)
            for i in range(counts.get(split, 0)):
                path = d / f"{emotion}_{i:03d}.{ext}"
                path.write_bytes(encode(next(pics), ext))
                written.setdefault((emotion, canonical[split]), []).append(path.relative_to(root).as_posix())
    return written


def write_fer_csv(path, counts: dict | None = None, *, images=None, seed: int = 0, usage_column: bool = True,
                  extra_rows: list[str] | None = None) -> dict[tuple[str, str], int]:
    """The original fer2013.csv (emotion,pixels,Usage; FER2013 codes 0–6).

    `counts` maps (emotion, usage) → rows, usage being Training/PublicTest/PrivateTest; `extra_rows`
    are raw lines appended as-is (for malformed-row tests). Returns {(emotion, split): rows}.
    """
    counts = counts or {("angry", "Training"): 3, ("happy", "Training"): 4, ("happy", "PublicTest"): 2,
                        ("sad", "PrivateTest"): 2, ("neutral", "PublicTest"): 1}
    pics = _images_for(counts, images, seed)
    usage_split = {"Training": "train", "PublicTest": "validation", "PrivateTest": "test"}
    lines = ["emotion,pixels,Usage" if usage_column else "emotion,pixels"]
    for (emotion, usage), n in counts.items():
        for _ in range(n):
            pixels = " ".join(map(str, next(pics).ravel().tolist()))
            lines.append(f"{EMOTIONS.index(emotion)},{pixels}" + (f",{usage}" if usage_column else ""))
    lines += extra_rows or []
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + "\n")
    return {(e, usage_split[u] if usage_column else "train"): n for (e, u), n in counts.items()}


def zip_folder(folder, zip_path=None, prefix: str = "") -> Path | bytes:
    """Zip every file under `folder` (names relative to it, under `prefix/` if given).

    Writes `zip_path` and returns it, or returns the zip's bytes when `zip_path` is None.
    """
    folder = Path(folder)
    buf = io.BytesIO() if zip_path is None else zip_path
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, (f"{prefix.strip('/')}/" if prefix else "") + p.relative_to(folder).as_posix())
    return buf.getvalue() if zip_path is None else Path(zip_path)


def grating_images(n: int, angle: float, seed: int = 0) -> np.ndarray:
    """`n` 48×48 sine gratings at `angle` degrees with random phase, period (5–8 px), contrast,
    brightness and noise: images of one class that look alike to a conv net but are never identical."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE].astype(np.float32)
    theta = np.deg2rad(angle)
    along = xx * np.cos(theta) + yy * np.sin(theta)
    out = np.empty((n, SIZE, SIZE), np.uint8)
    for i in range(n):
        wave = np.sin(2 * np.pi * along / rng.uniform(5, 8) + rng.uniform(0, 2 * np.pi))
        img = 128 + rng.uniform(-25, 25) + rng.uniform(40, 90) * wave + rng.normal(0, 12, wave.shape)
        out[i] = np.clip(img, 0, 255).round().astype(np.uint8)
    return out


def write_mislabelled_gratings(root, emotions=FOUR_CLASS, per_class: int = 60, moved: float = 0.05,
                               seed: int = 0, ext: str = "png") -> list[str]:
    """Split folders train/<emotion>/ of gratings, one orientation per emotion, with a known share
    `moved` of the images put in a wrong emotion's folder. Returns the moved files' relative paths."""
    rng = np.random.default_rng(seed)
    total = per_class * len(emotions)
    wrong = set(rng.choice(total, int(round(moved * total)), replace=False).tolist())
    moved_files = []
    for k, emotion in enumerate(emotions):
        for i, img in enumerate(grating_images(per_class, 180 * k / len(emotions), seed + k)):
            folder = emotion
            if k * per_class + i in wrong:
                folder = emotions[(k + 1 + rng.integers(len(emotions) - 1)) % len(emotions)]
            rel = f"train/{folder}/{emotion}_{i:03d}.{ext}"
            (Path(root) / rel).parent.mkdir(parents=True, exist_ok=True)
            (Path(root) / rel).write_bytes(encode(img, ext))
            if folder != emotion:
                moved_files.append(rel)
    return moved_files
