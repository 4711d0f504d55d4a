"""Benchmark: face-detector precision and recall (and time per photo), before and after false-face filtering,
and the time of detection + alignment on a 640×480 photo against Haar.

    python -m bench.bench_faces [--detectors blazeface,haar] [--speed-rounds 30]

Photos, all bundled (no download):
- faces with boxes checked by eye: scikit-image's astronaut (as-is, upscaled 4× as in the tests,
  and darkened), the cameraman, and "group photos": real heads (astronaut, mirrored, cameraman)
  pasted at 60–200 px onto textured photos (brick, gravel, grass, coffee, the cat), as in
  `video.sample_clip`, the frames of which are included too;
- photos without a face: every colour/gray scikit-image sample that shows none (coins, coffee,
  the cat, rocket, text, page, …) and scikit-learn's china/flower photos.

A detection counts as correct when its IoU with an unmatched true face is ≥ 0.4. The baseline is
the previous pipeline (the plain cascade / MTCNN with only enclosing boxes dropped; BlazeFace without its
O-Net confirmation), run in the same process on the same photos.

Speed: Haar + O-Net (the former default), BlazeFace, and BlazeFace + the FER2013 crop of every face
(`framing.face_crops`), round after round on a one-face and a two-face 640×480 photo; ratios against Haar.
And a 12-megapixel phone photo (the astronaut upscaled to 4000×3000, JPEG): `read_image` against Pillow's decoder,
and BlazeFace with `faces.shrink` against the same detection after one fractional area resize to 1024 px.
"""
from __future__ import annotations

import argparse
import sys
import time
from types import SimpleNamespace

import cv2
import numpy as np

from fer_core.inference.faces import box_iou, detect_faces, drop_enclosing, get_detector  # noqa: E402
from fer_core.inference.framing import face_crops  # noqa: E402

IOU = 0.4
ASTRONAUT_FACE = (177, 67, 93, 93)
CAMERAMAN_FACE = (190, 118, 64, 70)  # by eye: brow to chin, ear to nose tip (a profile)
NO_FACE = ("coffee", "chelsea", "rocket", "hubble_deep_field", "coins", "horse", "motorcycle_left", "page",
           "text", "brick", "grass", "gravel", "retina", "moon", "immunohistochemistry", "cell", "logo",
           "colorwheel", "clock", "eagle", "microaneurysms", "shepp_logan_phantom")


def _rgb(image) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    if a.dtype != np.uint8:
        a = a.astype(np.float64)
        a = (255 * (a - a.min()) / max(np.ptp(a), 1e-9)).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    return np.ascontiguousarray(a[..., :3])


def _heads():
    """(head image, face box inside it) of real people: the astronaut, her mirror image, the cameraman."""
    from skimage import data as sk

    astro = _rgb(sk.astronaut())[0:260, 90:350]
    x, y, w, h = ASTRONAUT_FACE
    face = (x - 90, y, w, h)
    mirrored = (260 - face[0] - face[2], face[1], w, h)
    cam = _rgb(sk.camera())[60:260, 130:330]
    cx, cy, cw, ch = CAMERAMAN_FACE
    return [(astro, face), (astro[:, ::-1].copy(), mirrored), (cam, (cx - 130, cy - 60, cw, ch))]


def group_photos(n: int = 8, seed: int = 0):
    """Real heads pasted at random sizes and places onto textured real photos: (image, true boxes)."""
    from skimage import data as sk

    rng = np.random.default_rng(seed)
    backgrounds = [_rgb(getattr(sk, name)()) for name in ("brick", "gravel", "grass", "coffee", "chelsea")]
    heads = _heads()
    out = []
    for i in range(n):
        bg = cv2.resize(backgrounds[i % len(backgrounds)], (960, 640), interpolation=cv2.INTER_LINEAR)
        boxes, taken = [], []
        for _ in range(int(rng.integers(2, 6))):
            head, (fx, fy, fw, fh) = heads[int(rng.integers(len(heads)))]
            side = int(rng.integers(90, 280))  # head tile; the face inside is ~35 % of it (60–200 px)
            k = side / head.shape[0]
            for _try in range(30):
                x0, y0 = int(rng.integers(0, 960 - side)), int(rng.integers(0, 640 - side))
                if all(box_iou((x0, y0, side, side), t) == 0 for t in taken):
                    break
            else:
                continue
            tile = cv2.resize(head, (side, side), interpolation=cv2.INTER_AREA)
            bg[y0:y0 + side, x0:x0 + side] = np.clip(tile * rng.uniform(0.7, 1.15), 0, 255).astype(np.uint8)
            taken.append((x0, y0, side, side))
            boxes.append((x0 + round(fx * k), y0 + round(fy * k), round(fw * k), round(fh * k)))
        out.append((bg, boxes))
    return out


def evaluation_set():
    """[(name, RGB image, true face boxes)]."""
    from skimage import data as sk

    from fer_core.video.sample import sample_clip

    astro = _rgb(sk.astronaut())
    items = [("astronaut", astro, [ASTRONAUT_FACE]),
             ("astronaut ×4", cv2.resize(astro, (2048, 2048), interpolation=cv2.INTER_CUBIC),
              [tuple(4 * v for v in ASTRONAUT_FACE)]),
             ("astronaut, dark", (astro * 0.45).astype(np.uint8), [ASTRONAUT_FACE]),
             ("cameraman", _rgb(sk.camera()), [CAMERAMAN_FACE])]
    items += [(f"group photo {i + 1}", img, boxes) for i, (img, boxes) in enumerate(group_photos())]
    clip = sample_clip(45)
    items += [(f"sample_clip frame {i}", clip[i], _clip_boxes(i, 45)) for i in range(0, 45, 9)]
    for name in NO_FACE:
        try:
            items.append((name, _rgb(getattr(sk, name)()), []))
        except Exception:  # noqa: BLE001 — a sample missing from this scikit-image version
            continue
    try:
        from sklearn.datasets import load_sample_images

        for name, img in zip(("china", "flower"), load_sample_images().images):
            items.append((name, _rgb(img), []))
    except ImportError:
        pass
    return items


def _clip_boxes(i: int, n_frames: int, size=(640, 480)) -> list[tuple[int, int, int, int]]:
    """True face boxes in frame i of `sample_clip(n_frames)` (its layout, recomputed)."""
    W, H = size
    side = int(min(H * 0.5, W / 2.5))
    slot = W / 2
    k = side / 260
    fx, fy, fw, fh = ASTRONAUT_FACE[0] - 90, ASTRONAUT_FACE[1], ASTRONAUT_FACE[2], ASTRONAUT_FACE[3]
    boxes = []
    for j, x_face in enumerate((fx, 260 - fx - fw)):
        phase = 2 * np.pi * (i / n_frames + j / 2)
        cx = slot * (j + 0.5) + 0.12 * slot * np.sin(phase)
        cy = H / 2 + 0.1 * H * np.cos(phase)
        x0 = int(np.clip(cx - side / 2, 0, W - side))
        y0 = int(np.clip(cy - side / 2, 0, H - side))
        boxes.append((x0 + round(x_face * k), y0 + round(fy * k), round(fw * k), round(fh * k)))
    return boxes


def before(image, detector: str):
    """The previous pipeline: the unconfirmed cascade, or MTCNN asked for faces ≥ min_size directly
    (which mtcnn 1.0's pyramid bug turned into no faces at all); only enclosing boxes dropped."""
    if detector == "haar":
        det = get_detector("haar", confirm=False)
    elif detector == "blazeface":
        det = get_detector("blazeface", sure_score=0.0)
    else:
        mtcnn = get_detector("mtcnn")
        det = SimpleNamespace(name="mtcnn", window=None, detect=mtcnn.detect)
    return drop_enclosing(detect_faces(image, det, keep_overlapping=True))


def after(image, detector: str):
    return detect_faces(image, detector)


def score(items, detector: str) -> dict[str, dict]:
    """Precision, recall, counts and ms per photo of `before` and `after`, run in turn on each photo."""
    out = {fn.__name__: {"tp": 0, "fp": 0, "fn": 0, "s": 0.0, "false": []} for fn in (before, after)}
    for name, image, truth in items:
        for fn in (before, after):
            r = out[fn.__name__]
            t = time.perf_counter()
            found = fn(image, detector)
            r["s"] += time.perf_counter() - t
            unmatched = list(truth)
            for f in found:
                best = max(unmatched, key=lambda b: box_iou(f.box, b), default=None)
                if best is not None and box_iou(f.box, best) >= IOU:
                    r["tp"] += 1
                    unmatched.remove(best)
                else:
                    r["fp"] += 1
                    r["false"].append(name)
            r["fn"] += len(unmatched)
    for r in out.values():
        r.update(precision=r["tp"] / max(r["tp"] + r["fp"], 1), recall=r["tp"] / max(r["tp"] + r["fn"], 1),
                 ms=1000 * r["s"] / len(items))
    return out


def speed_photos() -> list[tuple[str, np.ndarray]]:
    """640×480 photos: the astronaut's head and shoulders on a gradient (one face), a sample_clip frame (two)."""
    from fer_core.video.sample import astronaut_head, sample_clip

    one = sample_clip(1, faces=[astronaut_head()])[0]
    return [("one face", one), ("two faces", sample_clip(1)[0])]


def speed(rounds: int) -> None:
    """ms per 640×480 photo of Haar, BlazeFace and BlazeFace + FER2013 crops, interleaved; ratios vs Haar."""
    def blaze_aligned(img):
        return face_crops(img, detect_faces(img, "blazeface"), "fer2013")

    ways = {"haar": lambda img: detect_faces(img, "haar"), "blazeface": lambda img: detect_faces(img, "blazeface"),
            "blazeface + fer2013 crop": blaze_aligned}
    for name, img in speed_photos():
        times = {k: [] for k in ways}
        for fn in ways.values():
            fn(img)  # warm-up
        for _ in range(rounds):
            for k, fn in ways.items():
                t = time.perf_counter()
                fn(img)
                times[k].append(time.perf_counter() - t)
        base = np.median(times["haar"])
        print(f"\n640×480, {name} ({len(detect_faces(img, 'blazeface'))} found by BlazeFace), median of {rounds}:")
        for k, ts in times.items():
            print(f"  {k:<26}{1000 * np.median(ts):>8.2f} ms   ×{np.median(ts) / base:.2f} of Haar")


def phone_photo_speed(rounds: int) -> None:
    """ms to decode and to detect faces in a 4000×3000 JPEG: `read_image` against Pillow's decoder, and
    `detect_faces` with `faces.shrink` against one `INTER_AREA` resize to 1024 px; each pair interleaved."""
    import io

    from PIL import Image
    from skimage import data as skdata

    from fer_core.inference import faces
    from fer_core.inference.images import decode_with_pillow, read_image

    big = cv2.resize(_rgb(skdata.astronaut()), (4000, 4000), interpolation=cv2.INTER_CUBIC)[:3000]
    buf = io.BytesIO()
    Image.fromarray(big).save(buf, "JPEG", quality=90)
    jpeg = buf.getvalue()

    def pillow(data):  # read_image before OpenCV's decoder took plain JPEGs
        return decode_with_pillow(Image.open(io.BytesIO(data)))

    def detect_with(resize):
        def run(image):
            faces.shrink, original = resize, faces.shrink
            try:
                return faces.detect_faces(image, "blazeface")
            finally:
                faces.shrink = original
        return run

    one_step = lambda image, size: cv2.resize(image, size, interpolation=cv2.INTER_AREA)  # noqa: E731
    pairs = {"decode": ({"Pillow (baseline)": pillow, "read_image": read_image}, jpeg),
             "detect": ({"one area resize (baseline)": detect_with(one_step),
                         "faces.shrink": detect_with(faces.shrink)}, big)}
    print(f"\n4000×3000 JPEG photo, median of {rounds}:")
    for task, (ways, arg) in pairs.items():
        times = {k: [] for k in ways}
        answers = {}
        for _ in range(rounds + 1):  # the first round warms up
            for k, fn in ways.items():
                t = time.perf_counter()
                answers[k] = fn(arg)
                times[k].append(time.perf_counter() - t)
        base = np.median(next(iter(times.values()))[1:])
        for k, ts in times.items():
            same = (np.array_equal(answers[k], next(iter(answers.values()))) if task == "decode"
                    else [f.box for f in answers[k]])
            print(f"  {task}: {k:<28}{1000 * np.median(ts[1:]):>8.1f} ms   ×{np.median(ts[1:]) / base:.2f}   {same}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--detectors", default="blazeface,haar", help="comma-separated; mtcnn needs TensorFlow")
    parser.add_argument("--speed-rounds", type=int, default=30, help="0 skips the 640×480 timing")
    args = parser.parse_args()
    if args.speed_rounds > 0:
        speed(args.speed_rounds)
        phone_photo_speed(max(5, args.speed_rounds // 3))
    items = evaluation_set()
    n_faces = sum(len(t) for _, _, t in items)
    print(f"{len(items)} photos, {n_faces} faces, {sum(not t for _, _, t in items)} photos without a face; "
          f"match: IoU ≥ {IOU}")
    for detector in args.detectors.split(","):
        for fn in (before, after):  # warm-up: load detectors, first-call costs
            fn(items[0][1], detector)
        rows = score(items, detector)
        print(f"\n{detector}: {'':<8}{'precision':>10}{'recall':>8}{'TP':>5}{'FP':>5}{'FN':>5}{'ms/photo':>10}")
        for label, r in rows.items():
            print(f"  {label:<14}{r['precision']:>10.3f}{r['recall']:>8.3f}{r['tp']:>5}{r['fp']:>5}{r['fn']:>5}"
                  f"{r['ms']:>10.1f}")
        b, a = rows["before"], rows["after"]
        print(f"  after/before: false faces {a['fp']}/{b['fp']}, missed faces {a['fn']}/{b['fn']}, "
              f"time ×{a['ms'] / max(b['ms'], 1e-9):.2f}")
        for label, r in rows.items():
            if r["false"]:
                print(f"  false faces {label}: " + ", ".join(sorted(set(r["false"]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
