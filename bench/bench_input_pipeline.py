"""Training-input throughput: our tf.data pipeline against the seed studies' ImageDataGenerator.

The seeds fed Keras with `ImageDataGenerator(rescale=1/255, <augmentation>).flow_from_directory(
train_dir, target_size=(48, 48), color_mode="grayscale", class_mode="categorical")`: every epoch
re-reads and re-decodes every JPEG and augments it image by image in Python/SciPy. Keras 3 dropped
`keras.preprocessing.image.ImageDataGenerator`, but TF 2.21 / Keras 3.15 still ship it as
`tf.keras.preprocessing.image.ImageDataGenerator` (keras.src.legacy.preprocessing.image), so the
baseline here is that real class, not a re-implementation.

Ours (`fer_core.training.input_pipeline.make_tf_dataset`) holds the once-decoded uint8 faces in memory, augments each
face with cheap TensorFlow ops in a parallel tf.data map, then batches, scales and prefetches.

Both pipelines get comparable augmentation (horizontal flip, ±10 % shift, up to 12 % zoom: our
`standard` level, which also jitters brightness and contrast) and feed the same compiled model in the same process.
Measured:
  1. input only — images/s each pipeline produces (after warm-up);
  2. training — images/s of `model.fit` for a fixed number of steps fed by each pipeline.
Rounds alternate between the two; the medians are reported as images per wall-clock second and as
process CPU milliseconds per image (robust when other jobs share the cores), with ratios ours / seed.

    python -m bench.bench_input_pipeline [--data DIR] [--arch baseline_cnn] [--batches 40] [--rounds 3]

Uses the FER2013 train folder at $FER_DATA_DIR or ../shared/datasets/fer2013 when present, else a
generated folder of random JPEG faces (numbers then only show pipeline overhead, not accuracy).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fer_core.data.datasets import default_data_dir, load_dataset  # noqa: E402
from fer_core.base.labels import EMOTIONS  # noqa: E402

# the seed generator's closest equivalent of fer_core.training.augment.augment_face(level="standard"):
# flip, ±5 px shift (0.1 of 48), zoom up to 12 %
SEED_AUGMENTATION = dict(horizontal_flip=True, width_shift_range=0.1, height_shift_range=0.1,
                         zoom_range=0.12, fill_mode="nearest")


def generated_folder(root: Path, per_class: int = 200) -> Path:
    """A Kaggle-style train/<emotion>/Training_*.jpg folder of random faces."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for emotion in EMOTIONS:
        folder = root / "train" / emotion
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8)).save(folder / f"Training_{i}.jpg")
    return root


def seed_pipeline(train_dir: Path, batch_size: int):
    """The seeds' flow_from_directory generator (one-hot labels, grayscale 48×48, 0–1 pixels)."""
    import tensorflow as tf

    gen = tf.keras.preprocessing.image.ImageDataGenerator(rescale=1 / 255, **SEED_AUGMENTATION)
    return gen.flow_from_directory(str(train_dir), target_size=(48, 48), color_mode="grayscale",
                                   class_mode="categorical", batch_size=batch_size, shuffle=True, seed=0)


def our_pipeline(images, labels, num_classes: int, batch_size: int):
    """fer_core's training pipeline over in-memory faces, repeated so fit can take any number of steps."""
    from fer_core.models.preprocess import Preprocessing
    from fer_core.training.input_pipeline import make_tf_dataset

    return make_tf_dataset(images, labels, Preprocessing(), num_classes, batch_size=batch_size,
                           augment="standard", shuffle=True, seed=0).repeat()


def _timed(work, images: int) -> tuple[float, float]:
    """(images per wall-clock second, process CPU milliseconds per image) of `work()`.

    CPU time counts every thread of this process, so it stays meaningful when other jobs share the cores.
    """
    w0, c0 = time.perf_counter(), time.process_time()
    work()
    return images / (time.perf_counter() - w0), 1000 * (time.process_time() - c0) / images


def input_rate(batches, n: int, batch_size: int) -> tuple[float, float]:
    """Throughput of drawing n (x, y) batches from a pipeline."""
    it = iter(batches)
    next(it)  # warm-up: the first batch pays for start-up

    def draw():
        for _ in range(n):
            np.asarray(next(it)[0])

    return _timed(draw, n * batch_size)


def fit_rate(model, data, n: int, batch_size: int) -> tuple[float, float]:
    """Throughput of `model.fit` for n steps fed by a pipeline."""
    return _timed(lambda: model.fit(data, steps_per_epoch=n, epochs=1, verbose=0, shuffle=False), n * batch_size)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="FER2013 folder with train/<emotion>/ (default: $FER_DATA_DIR or shared)")
    parser.add_argument("--arch", default="baseline_cnn", help="fer_core architecture to train (default baseline_cnn)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=40, help="batches per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    from fer_core.models.architectures import build

    data = Path(args.data) if args.data else default_data_dir()
    tmp = None
    if data is None or not (data / "train").is_dir():
        tmp = tempfile.TemporaryDirectory()
        data = generated_folder(Path(tmp.name))
        print(f"FER2013 not found; using {7 * 200} generated JPEGs in {data}")
    t0 = time.perf_counter()
    train = load_dataset(data).split("train")
    load_s = time.perf_counter() - t0
    classes = len(train.classes)
    print(f"data: {data}/train, {len(train):,} images, {classes} classes; fer_core load (decoded cache) {load_s:.1f} s")
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {args.arch}, batch {args.batch_size}, "
          f"{args.batches} batches x {args.rounds} rounds, augmentation {SEED_AUGMENTATION}")

    ours = our_pipeline(train.images, train.labels, classes, args.batch_size)
    seed = seed_pipeline(data / "train", args.batch_size)
    model = build(args.arch, classes)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(ours, steps_per_epoch=3, epochs=1, verbose=0, shuffle=False)  # compile the train step once
    model.fit(seed, steps_per_epoch=3, epochs=1, verbose=0, shuffle=False)

    rates = {k: [] for k in ("input ours", "input seed", "fit ours", "fit seed")}
    for r in range(args.rounds):
        rates["input ours"].append(input_rate(ours, args.batches, args.batch_size))
        rates["input seed"].append(input_rate(seed, args.batches, args.batch_size))
        rates["fit ours"].append(fit_rate(model, ours, args.batches, args.batch_size))
        rates["fit seed"].append(fit_rate(model, seed, args.batches, args.batch_size))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1][0]:,.0f} img/s ({v[-1][1]:.2f} CPU ms/img)"
                                             for k, v in rates.items()), flush=True)
    print(f"\nmedian of {args.rounds} rounds   {'tf.data (ours)':>16}{'ImageDataGenerator':>20}{'ours/seed':>11}")
    for what, label in (("input", "input only"), ("fit", f"training {args.arch}")):
        ours_r, seed_r = (statistics.median(x[0] for x in rates[f"{what} {k}"]) for k in ("ours", "seed"))
        ours_c, seed_c = (statistics.median(x[1] for x in rates[f"{what} {k}"]) for k in ("ours", "seed"))
        print(f"{label + ', img/s':29}{ours_r:>16,.0f}{seed_r:>20,.0f}{ours_r / seed_r:>10.1f}x")
        print(f"{label + ', CPU ms/img':29}{ours_c:>16.2f}{seed_c:>20.2f}{ours_c / seed_c:>10.2f}x")
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
