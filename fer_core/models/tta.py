"""Test-time augmentation (TTA): the views of a face a classifier averages its probabilities over.

`none` classifies the face as is; `flip` adds its mirror image; `tencrop` takes the four corner and the
centre crops (11/12 of the side, like the shifts and zooms training saw), resized back, each also
mirrored — the published FER2013 recipe. A model's card may name its default (`inference.tta`).
"""
from __future__ import annotations

import numpy as np

TTA_MODES: tuple[str, ...] = ("none", "flip", "tencrop")  # test-time augmentation: views averaged per face
TENCROP_SHARE = 11 / 12  # ten-crop: corner and centre crops of 44 px from a 48-px face


def tta_mode(value) -> str:
    """Normalise a TTA request: False/None/"none" → "none", True/"flip" → "flip", "tencrop"."""
    if value is None or value is False:
        return "none"
    if value is True:
        return "flip"
    mode = str(value).strip().lower().replace("-", "").replace("_", "")
    mode = {"off": "none", "10crop": "tencrop", "on": "flip"}.get(mode, mode)
    if mode not in TTA_MODES:
        raise ValueError(f"unknown test-time augmentation {value!r}; choose one of: {', '.join(TTA_MODES)}")
    return mode


def _resize_matrix(src: int, dst: int) -> np.ndarray:
    """Bilinear resampling as a dst×src matrix (align-corners=False, as cv2.INTER_LINEAR)."""
    pos = np.clip((np.arange(dst) + 0.5) * src / dst - 0.5, 0, src - 1)
    lo = np.minimum(np.floor(pos).astype(int), src - 2) if src > 1 else np.zeros(dst, int)
    frac = pos - lo
    m = np.zeros((dst, src), np.float32)
    m[np.arange(dst), lo] = 1 - frac
    if src > 1:
        m[np.arange(dst), lo + 1] += frac
    return m


def tta_views(x: np.ndarray, mode: str) -> np.ndarray:
    """The views a TTA mode averages, stacked view-major: (V·N)×S×S×C for a preprocessed N×S×S×C batch.

    flip: the face and its mirror. tencrop: the four corner and the centre crops (11/12 of the side,
    like the random shifts and zooms training saw), resized back to S, each with its mirror.
    """
    if mode == "none":
        return x
    if mode == "flip":
        return np.concatenate([x, x[:, :, ::-1, :]])
    size = x.shape[1]
    crop = int(round(size * TENCROP_SHARE))
    resize = _resize_matrix(crop, size)
    views = []
    for top, left in ((0, 0), (0, size - crop), (size - crop, 0), (size - crop, size - crop),
                      ((size - crop) // 2, (size - crop) // 2)):
        patch = x[:, top:top + crop, left:left + crop, :]
        view = np.einsum("ij,njkc,lk->nilc", resize, patch, resize, optimize=True).astype(np.float32)
        views += [view, view[:, :, ::-1, :]]
    return np.concatenate(views)


def add_tta_argument(parser) -> None:
    """`--tta none|flip|tencrop`; without it, the model card's default inference."""
    parser.add_argument("--tta", default=None, type=tta_mode, metavar="{none,flip,tencrop}",
                        help="test-time augmentation: none, flip (face + mirror) or tencrop (ten views); "
                             "default: the model card's own inference")
