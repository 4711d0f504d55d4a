"""Per-face augmentation for training, in two twins: TensorFlow ops for the tf.data pipeline
(`augment_face`, `erase_face`) and NumPy for Keras backends without TensorFlow (`augment_batch`,
`erase_batch`): flip, zoom-in, shift, brightness and contrast jitter, and random erasing, at the same
strengths in both.

The `photo` level prepares a network for faces cut out of real photos rather than FER2013's own crops:
a face detector's framing noise (scale ±15 %, shift ±10 %, rotation ±15°), low resolution (downscaled
and back up), blur and JPEG artefacts, on top of flip and brightness/contrast jitter.
"""
from __future__ import annotations

import numpy as np

_AUGMENT_STRENGTH = {  # (max shift in px, zoom-in up to ×, brightness ±, contrast ±)
    "light": (3, 1.05, 0.05, 0.1),
    "standard": (5, 1.12, 0.1, 0.2),
    "strong": (7, 1.2, 0.15, 0.3),
}


# The `photo` level: (scale ±, shift ± as a share of the side, rotation ± degrees, brightness ±, contrast ±),
# then each with its probability: downscale to 18–40 px and back, Gaussian blur (σ 0.3–1.0), JPEG at quality 30–90.
PHOTO_FRAMING = (0.15, 0.10, 15.0, 0.15, 0.3)
PHOTO_DEGRADE = {"downscale": 0.25, "blur": 0.15, "jpeg": 0.3}
_DOWNSCALE_SIDE = (18, 40)
_BLUR_SIGMA = (0.3, 1.0)
_JPEG_QUALITY = (30, 90)


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
    if level == "photo":
        return erase_face(photo_face(x), erase)
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
    if level == "photo":
        x = photo_batch(x, rng)
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


def _framing_matrix(size: int, scale, shift_x, shift_y, degrees, flip):
    """The output→input pixel map (2×3) of a zoom by `scale`, a rotation and a shift about the face's centre,
    optionally mirrored: what a detector's slightly different box does to a face (`photo_face` builds the same
    entries in TensorFlow ops)."""
    c = (size - 1) / 2
    a = np.deg2rad(degrees)
    cos, sin = np.cos(a) / scale, np.sin(a) / scale
    fx = -1.0 if flip else 1.0
    return np.array([[fx * cos, -sin, c - fx * cos * c + sin * c + shift_x],
                      [fx * sin, cos, c - fx * sin * c - cos * c + shift_y]], np.float32)


def photo_face(x):
    """The `photo` level in TensorFlow ops for one float face (H×W×1, 0–255): flip and detector framing
    noise in one projective warp (mirrored edges), then downscale, blur and JPEG each with its probability,
    then brightness and contrast jitter."""
    import tensorflow as tf

    size = x.shape[0]
    scale_j, shift_j, deg, bright, contrast = PHOTO_FRAMING
    c = (size - 1) / 2.0
    scale = tf.random.uniform([], 1 - scale_j, 1 + scale_j)
    angle = tf.random.uniform([], -deg, deg) * (3.141592653589793 / 180.0)
    tx, ty = (tf.random.uniform([], -shift_j, shift_j) * size for _ in range(2))
    fx = tf.where(tf.random.uniform([]) < 0.5, -1.0, 1.0)
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    matrix = tf.stack([fx * cos, -sin, c - fx * cos * c + sin * c + tx,
                       fx * sin, cos, c - fx * sin * c - cos * c + ty, 0.0, 0.0])
    x = tf.raw_ops.ImageProjectiveTransformV3(
        images=x[None], transforms=matrix[None], output_shape=[size, size], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="REFLECT")[0]
    x.set_shape((size, size, 1))

    def downscale(face):
        side = tf.random.uniform([], *_DOWNSCALE_SIDE, dtype=tf.int32)
        small = tf.image.resize(face, (side, side), method="area")
        return tf.image.resize(small, (size, size), method="bilinear")

    def blur(face):
        sigma = tf.random.uniform([], *_BLUR_SIGMA)
        taps = tf.exp(-0.5 * (tf.range(-3.0, 4.0) / sigma) ** 2)
        taps /= tf.reduce_sum(taps)
        padded = tf.pad(face[None], [[0, 0], [3, 3], [3, 3], [0, 0]], mode="SYMMETRIC")
        rows = tf.nn.conv2d(padded, tf.reshape(taps, (7, 1, 1, 1)), 1, "VALID")
        return tf.nn.conv2d(rows, tf.reshape(taps, (1, 7, 1, 1)), 1, "VALID")[0]

    def jpeg(face):
        quality = tf.random.uniform([], *_JPEG_QUALITY, dtype=tf.int32)
        coded = tf.image.adjust_jpeg_quality(tf.cast(tf.clip_by_value(face, 0, 255), tf.uint8), quality)
        return tf.cast(coded, tf.float32)

    for name, degrade in (("downscale", downscale), ("blur", blur), ("jpeg", jpeg)):
        x = tf.cond(tf.random.uniform([]) < PHOTO_DEGRADE[name], lambda f=degrade: f(x), lambda: x)
        x.set_shape((size, size, 1))
    mean = tf.reduce_mean(x)
    x = (x - mean) * tf.random.uniform([], 1 - contrast, 1 + contrast) + mean
    x = x + tf.random.uniform([], -bright, bright) * 255.0
    return tf.clip_by_value(x, 0.0, 255.0)


def photo_batch(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """NumPy (OpenCV) twin of `photo_face` for an N×H×W float batch in 0–255."""
    import cv2

    scale_j, shift_j, deg, bright, contrast = PHOTO_FRAMING
    n, size = len(x), x.shape[1]
    out = np.empty_like(x, dtype=np.float32)
    for i in range(n):
        m = _framing_matrix(size, rng.uniform(1 - scale_j, 1 + scale_j), *(rng.uniform(-shift_j, shift_j, 2) * size),
                            rng.uniform(-deg, deg), rng.random() < 0.5)
        face = cv2.warpAffine(x[i].astype(np.float32), m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REFLECT_101)
        if rng.random() < PHOTO_DEGRADE["downscale"]:
            side = int(rng.integers(_DOWNSCALE_SIDE[0], _DOWNSCALE_SIDE[1]))
            face = cv2.resize(cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA), (size, size),
                              interpolation=cv2.INTER_LINEAR)
        if rng.random() < PHOTO_DEGRADE["blur"]:
            face = cv2.GaussianBlur(face, (7, 7), rng.uniform(*_BLUR_SIGMA), borderType=cv2.BORDER_REFLECT)
        if rng.random() < PHOTO_DEGRADE["jpeg"]:
            quality = int(rng.integers(*_JPEG_QUALITY))
            _, coded = cv2.imencode(".jpg", np.clip(face, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality])
            face = cv2.imdecode(coded, cv2.IMREAD_GRAYSCALE).astype(np.float32)
        out[i] = face
    mean = out.mean(axis=(1, 2), keepdims=True)
    out = (out - mean) * rng.uniform(1 - contrast, 1 + contrast, (n, 1, 1)).astype(np.float32) + mean
    out += rng.uniform(-bright * 255.0, bright * 255.0, (n, 1, 1)).astype(np.float32)
    return np.clip(out, 0.0, 255.0, out=out)
