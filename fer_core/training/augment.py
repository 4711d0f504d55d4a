"""Per-face augmentation for training, in two twins: TensorFlow ops for the tf.data pipeline
(`augment_face`, `erase_face`) and NumPy for Keras backends without TensorFlow (`augment_batch`,
`erase_batch`): flip, zoom-in, shift, brightness and contrast jitter, and random erasing, at the same
strengths in both.
"""
from __future__ import annotations

import numpy as np

_AUGMENT_STRENGTH = {  # (max shift in px, zoom-in up to ×, brightness ±, contrast ±)
    "light": (3, 1.05, 0.05, 0.1),
    "standard": (5, 1.12, 0.1, 0.2),
    "strong": (7, 1.2, 0.15, 0.3),
}


_ERASE_AREA = (0.02, 0.25)  # random erasing: rectangle area as a share of the face (Zhong et al., 2020)


def erase_face(x, probability: float):
    """Random erasing in TensorFlow ops: with `probability`, paint one random rectangle (2–25 % of the
    face, aspect 1:3 to 3:1) mid-grey, so the net cannot lean on any single facial region."""
    import tensorflow as tf

    if probability <= 0:
        return x
    size = x.shape[0]
    area = tf.random.uniform([], *_ERASE_AREA) * size * size
    aspect = tf.exp(tf.random.uniform([], -1.1, 1.1))
    h = tf.clip_by_value(tf.cast(tf.sqrt(area * aspect), tf.int32), 1, size)
    w = tf.clip_by_value(tf.cast(tf.sqrt(area / aspect), tf.int32), 1, size)
    top = tf.random.uniform([], 0, size - h + 1, dtype=tf.int32)
    left = tf.random.uniform([], 0, size - w + 1, dtype=tf.int32)
    rows, cols = tf.range(size)[:, None], tf.range(size)[None, :]
    box = (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)
    box &= tf.random.uniform([]) < probability
    return tf.where(box[..., None], 127.5, x)


def augment_face(x, level: str, erase: float = 0.0):
    """Cheap per-image augmentation in TensorFlow ops: flip, zoom-in, random shift (a crop), brightness
    and contrast jitter, then optional random erasing. x is one float face in 0–255 (H×W×1); the output
    keeps its shape."""
    import tensorflow as tf

    if level == "none":
        return erase_face(x, erase)
    shift, zoom, bright, contrast = _AUGMENT_STRENGTH[level]
    size = x.shape[0]
    x = tf.image.random_flip_left_right(x)
    scaled = tf.cast(tf.round(size * tf.random.uniform([], 1.0, zoom)), tf.int32)
    x = tf.image.resize(x, (scaled, scaled))
    x = tf.pad(x, [[shift, shift], [shift, shift], [0, 0]], mode="SYMMETRIC")
    x = tf.image.random_crop(x, (size, size, 1))
    mean = tf.reduce_mean(x)
    x = (x - mean) * tf.random.uniform([], 1 - contrast, 1 + contrast) + mean
    x = x + tf.random.uniform([], -bright, bright) * 255.0
    return erase_face(tf.clip_by_value(x, 0.0, 255.0), erase)


def erase_batch(x: np.ndarray, probability: float, rng: np.random.Generator) -> np.ndarray:
    """NumPy twin of `erase_face` for an N×H×W float batch (in place)."""
    n, size = len(x), x.shape[1]
    for i in np.flatnonzero(rng.random(n) < probability):
        area = rng.uniform(*_ERASE_AREA) * size * size
        aspect = np.exp(rng.uniform(-1.1, 1.1))
        h = int(np.clip(np.sqrt(area * aspect), 1, size))
        w = int(np.clip(np.sqrt(area / aspect), 1, size))
        top, left = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
        x[i, top:top + h, left:left + w] = 127.5
    return x


def augment_batch(faces: np.ndarray, level: str, rng: np.random.Generator, erase: float = 0.0) -> np.ndarray:
    """NumPy twin of `augment_face` for a whole N×H×W batch in 0–255: the same flip, zoom-in, shift,
    contrast and brightness jitter at the same strengths, for Keras backends without TensorFlow."""
    x = faces.astype(np.float32)
    if level == "none":
        return erase_batch(x, erase, rng) if erase > 0 else x
    max_shift, zoom, bright, contrast = _AUGMENT_STRENGTH[level]
    n, size = len(x), x.shape[1]
    x = np.where((rng.random(n) < 0.5)[:, None, None], x[:, :, ::-1], x)
    scale, centre = rng.uniform(1.0, zoom, (n, 1)), (size - 1) / 2
    for axis in (1, 2):  # zoom + shift is separable: resample rows, then columns (bilinear, mirrored edges)
        src = centre + (np.arange(size)[None, :] - centre) / scale + rng.uniform(-max_shift, max_shift, (n, 1))
        src = np.abs(src)
        src = np.where(src > size - 1, 2 * (size - 1) - src, src).clip(0, size - 1)
        lo = np.minimum(np.floor(src).astype(np.intp), size - 2)
        frac = (src - lo).astype(np.float32)
        shape = (n, size, 1) if axis == 1 else (n, 1, size)
        lo, frac = lo.reshape(shape), frac.reshape(shape)
        x = (np.take_along_axis(x, np.broadcast_to(lo, x.shape), axis) * (1 - frac)
             + np.take_along_axis(x, np.broadcast_to(lo + 1, x.shape), axis) * frac)
    mean = x.mean(axis=(1, 2), keepdims=True)
    x = (x - mean) * rng.uniform(1 - contrast, 1 + contrast, (n, 1, 1)).astype(np.float32) + mean
    x = x + rng.uniform(-bright * 255.0, bright * 255.0, (n, 1, 1)).astype(np.float32)
    x = np.clip(x, 0.0, 255.0, out=x)
    return erase_batch(x, erase, rng) if erase > 0 else x
