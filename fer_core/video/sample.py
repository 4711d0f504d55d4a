"""Real faces without any download, for demos, benchmarks and tests: scikit-image's astronaut photo
(Eileen Collins, NASA, public domain) as a moving clip (`sample_clip`) or a group photo (`group_photo`)."""
from __future__ import annotations

import cv2
import numpy as np


def astronaut_head() -> np.ndarray:
    """Head and shoulders from scikit-image's astronaut photo (260×260 RGB): a real face with no download."""
    from skimage import data as skdata

    return np.ascontiguousarray(skdata.astronaut()[0:260, 90:350, :3])  # head and shoulders, 260×260


def sample_clip(n_frames: int = 45, size=(640, 480), faces=None, seed: int = 0) -> np.ndarray:
    """A clip of real faces gliding over a textured background (N×H×W×3 uint8), looping seamlessly.

    Default faces: scikit-image's astronaut photo (Eileen Collins, NASA, public domain) and its
    mirror image, so it needs no download. Used by the Video Analysis demo, benchmarks and tests.
    """
    W, H = size
    rng = np.random.default_rng(seed)
    if faces is None:
        head = astronaut_head()
        faces = [head, head[:, ::-1]]
    faces = [np.repeat(f[..., None], 3, -1) if f.ndim == 2 else f[..., :3] for f in faces]
    side = int(min(H * 0.5, W / (len(faces) + 0.5)))
    tiles = [cv2.resize(np.asarray(f, np.uint8), (side, side), interpolation=cv2.INTER_AREA) for f in faces]
    ramp = np.linspace(50, 170, W, dtype=np.float32)[None, :, None]
    bg = np.clip(ramp + rng.normal(0, 6, (H, W, 1)), 0, 255).astype(np.uint8).repeat(3, axis=-1)
    slot = W / len(tiles)
    clip = np.empty((n_frames, H, W, 3), np.uint8)
    for i in range(n_frames):
        frame = bg.copy()
        for k, tile in enumerate(tiles):
            phase = 2 * np.pi * (i / n_frames + k / len(tiles))
            cx = slot * (k + 0.5) + 0.12 * slot * np.sin(phase)
            cy = H / 2 + 0.1 * H * np.cos(phase)
            x0 = int(np.clip(cx - side / 2, 0, W - side))
            y0 = int(np.clip(cy - side / 2, 0, H - side))
            frame[y0:y0 + side, x0:x0 + side] = tile
        clip[i] = frame
    return clip


def group_photo(n_faces: int = 6, size=(1600, 560)) -> np.ndarray:
    """One H×W×3 photo of `n_faces` real faces in a row (the astronaut's head, alternately mirrored)."""
    head = astronaut_head()
    return sample_clip(1, size=size, faces=[head[:, ::-1] if i % 2 else head for i in range(n_faces)])[0]
