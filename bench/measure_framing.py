"""Measure FER2013's face framing as BlazeFace sees it: where the eyes sit in the 48×48 frame.

    python -m bench.measure_framing [--data ../shared/datasets/fer2013] [--n 3000] [--upscale 192] [--seed 0]

Samples `--n` training faces (all classes, at random), upscales each to `--upscale` px (bicubic; BlazeFace
needs more than 48 px), runs the default BlazeFace detector and records, relative to the frame's side: the
distance between the eye keypoints, the eye midpoint (x, y), the eye line's roll, and the detector box. Prints
medians, quartiles and the share of faces found. `fer_core.inference.framing` keeps the medians
(`FER2013_EYE_DISTANCE`, `FER2013_EYES_AT`); docs/face_framing.md records a run.
"""
from __future__ import annotations

import argparse
import math
import random
import sys
from pathlib import Path

import cv2
import numpy as np

from fer_core.inference.faces import detect_faces
from fer_core.inference.framing import eye_points
from fer_core.inference.images import read_image


def measure(files, upscale: int) -> dict[str, np.ndarray]:
    """Per found face (the largest one of each image): eye distance, eye midpoint x and y, roll (degrees), box
    x, y, w, h, all but the roll relative to the image side; and the share of images with a face."""
    rows, found = [], 0
    for f in files:
        img = cv2.resize(read_image(f), (upscale, upscale), interpolation=cv2.INTER_CUBIC)
        faces = detect_faces(img, "blazeface", min_size=upscale // 8)
        eyes = eye_points(faces[0]) if faces else None
        if eyes is None:
            continue
        found += 1
        left, right = eyes
        mid = (left + right) / 2
        x, y, w, h = faces[0].box
        roll = math.degrees(math.atan2(right[1] - left[1], right[0] - left[0]))
        rows.append([np.linalg.norm(right - left) / upscale, mid[0] / upscale, mid[1] / upscale, roll,
                     x / upscale, y / upscale, w / upscale, h / upscale])
    names = ("eye_distance", "eyes_x", "eyes_y", "roll_deg", "box_x", "box_y", "box_w", "box_h")
    table = np.array(rows, np.float64).reshape(-1, len(names))
    return {"found": found / max(len(files), 1), "n": len(files), **{k: table[:, i] for i, k in enumerate(names)}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/datasets/fer2013", help="FER2013 in the Kaggle folder layout")
    parser.add_argument("--n", type=int, default=3000, help="training faces to sample")
    parser.add_argument("--upscale", type=int, default=192, help="side the 48×48 faces are upscaled to")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    files = sorted(Path(args.data, "train").glob("*/*.jpg"))
    if not files:
        print(f"error: no FER2013 training faces under {Path(args.data, 'train')}", file=sys.stderr)
        return 2
    files = random.Random(args.seed).sample(files, min(args.n, len(files)))
    m = measure(files, args.upscale)
    print(f"{m['n']} FER2013 training faces at {args.upscale} px; a face with eyes found in {m['found']:.1%}")
    print(f"{'':<14}{'median':>8}{'q25':>8}{'q75':>8}{'q05':>8}{'q95':>8}   (fractions of the frame side)")
    for k, v in m.items():
        if isinstance(v, np.ndarray):
            q = np.percentile(v, [50, 25, 75, 5, 95])
            print(f"{k:<14}" + "".join(f"{x:>8.3f}" for x in q))
    return 0


if __name__ == "__main__":
    sys.exit(main())
