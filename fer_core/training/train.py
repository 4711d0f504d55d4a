"""Training: dataset → tf.data pipeline → Keras fit → `models/<id>/` with a model card.

Images are decoded once (the data layer's cache), held in memory, shuffled and augmented per
face in a parallel tf.data pipeline (cheap TensorFlow ops: flip, zoom, shift, brightness, contrast);
on JAX or PyTorch backends a NumPy twin of the same pipeline feeds Keras instead, so training runs
on a GPU machine without TensorFlow. Every epoch writes a resumable
checkpoint under `runs/<id>/`; early stopping watches validation accuracy and the best epoch's
weights are what ships — or, with `swa`, the average of the last epochs' weights (stochastic weight
averaging) with BatchNorm statistics recomputed. The card records the exact command, config, history
and device.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shlex
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import keras
import numpy as np

from ..models import registry
from ..data.datasets import FerDataset, load_dataset
from .distill import align_labels, distillation_record, pack_targets, soften, teacher_probabilities
from .distill_loss import DistillationLoss
from .distill_loss import accuracy_metric as distill_accuracy
from ..base.labels import label_set_name, parse_label_set
from ..data.votes import LABEL_SOURCES, attach_votes, relabel, training_labels, training_targets
from ..models.preprocess import Preprocessing
from ..base.progress import stderr_progress
from ..base.runtime import device_description, distribution_strategy, needs_xla, set_precision

log = logging.getLogger(__name__)

AUGMENTATIONS = ("none", "light", "standard", "strong")
SCHEDULES = ("onecycle", "cosine", "constant")
CLASS_WEIGHTS = ("none", "balanced")
SWA_BATCHNORM = ("clean", "augmented")


@dataclass
class TrainConfig:
    """Everything that determines a training run; stored verbatim in the model card."""

    arch: str
    data: str
    labels: str = "all"
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    schedule: str = "onecycle"
    label_smoothing: float = 0.1
    augment: str = "standard"
    color: str = "grayscale"
    patience: int = 8
    seed: int = 42
    out: str = ""
    name: str = ""
    limit: int = 0  # use at most this many training images (0 = all); for quick experiments
    mixed_precision: str = "auto"  # auto | off | bfloat16 | float16
    init_from: str = ""  # a registered model whose matching layers initialise this one (fine-tuning)
    erase: float = 0.0  # random-erasing probability per face (a grey rectangle, 2–25 % of the face)
    exclude_leaks: bool = True  # drop training faces that duplicate a validation/test face (exact or near)
    exclude: str = ""  # a CSV with a `file` column (e.g. from `label-issues`): training files to leave out
    class_weight: str = "none"  # none | balanced: weigh each face by n / (classes × its class count)
    swa: int = 0  # ship the mean of the last N epochs' weights (stochastic weight averaging); 0 = best epoch
    swa_batchnorm: str = "clean"  # BatchNorm statistics of the SWA mean from clean or augmented training faces
    label_source: str = "fer2013"  # fer2013 | ferplus-majority | ferplus-soft (FER+ crowd votes, fer_core.data.votes)
    votes: str = ""  # the FER+ votes CSV ("" = ferplus_votes.csv or fer2013new.csv found beside the data)
    teacher: str = ""  # distillation: a registered model whose probabilities the network learns (training.distill)
    teacher_tta: str = ""  # the teacher's test-time augmentation ("" = its card's default)
    temperature: float = 2.0  # distillation temperature T (teacher and student softened as softmax(log p / T))
    alpha: float = 0.9  # distillation: weight of the teacher's term; 1 − alpha goes to the hard label
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"--augment must be one of {', '.join(AUGMENTATIONS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"--schedule must be one of {', '.join(SCHEDULES)}")
        if self.color not in ("grayscale", "rgb"):
            raise ValueError("--color must be grayscale or rgb")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("--epochs and --batch-size must be positive")
        if not 0.0 <= self.erase <= 1.0:
            raise ValueError("--erase must be a probability between 0 and 1")
        if self.class_weight not in CLASS_WEIGHTS:
            raise ValueError(f"--class-weight must be one of {', '.join(CLASS_WEIGHTS)}")
        if not 0 <= self.swa <= self.epochs:
            raise ValueError("--swa must be between 0 and --epochs (the number of last epochs to average)")
        if self.swa_batchnorm not in SWA_BATCHNORM:
            raise ValueError(f"--swa-batchnorm must be one of {', '.join(SWA_BATCHNORM)}")
        if self.label_source not in LABEL_SOURCES:
            raise ValueError(f"--label-source must be one of {', '.join(LABEL_SOURCES)}")
        if self.temperature <= 0 or not 0.0 <= self.alpha <= 1.0:
            raise ValueError("--temperature must be positive and --alpha between 0 and 1")


def class_weights(labels: np.ndarray, num_classes: int, mode: str = "balanced") -> np.ndarray | None:
    """Per-class loss weights: `balanced` gives each class the same total weight (n / (k × count)), so
    a rare emotion counts as much as a common one; `none` returns None (every face weighs 1)."""
    if mode == "none":
        return None
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, len(labels) / (num_classes * np.maximum(counts, 1)), 0.0)
    return weights.astype(np.float32)


# ----------------------------------------------------------------------------- input pipeline

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


def _scale_tf(x, pre: Preprocessing):
    """float 0–255 batch (N×H×W×1) → the model's input, as Preprocessing.apply does in NumPy."""
    import tensorflow as tf

    if pre.input_size != x.shape[1]:
        x = tf.image.resize(x, (pre.input_size, pre.input_size))
    if pre.channels == 3:
        x = tf.repeat(x, 3, axis=-1)
    if pre.scale == "unit":
        return x / 255.0
    if pre.scale == "symmetric":
        return x / 127.5 - 1.0
    return x


def make_tf_dataset(images: np.ndarray, labels: np.ndarray, preprocessing: Preprocessing, num_classes: int,
                    batch_size: int = 64, augment: str = "none", shuffle: bool = False, seed: int = 0,
                    erase: float = 0.0, weights: np.ndarray | None = None, targets: np.ndarray | None = None):
    """A tf.data pipeline over in-memory uint8 faces (already `Preprocessing.prepare_uint8`-ed): shuffle,
    augment each face in parallel, batch, scale to the model's preprocessing, prefetch. Labels come
    out one-hot so label smoothing works, or as the given per-face `targets` rows (distillation); with
    per-class `weights`, each batch also carries sample weights."""
    import tensorflow as tf

    targets = _one_hot(labels, num_classes) if targets is None else targets.astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int32), targets))
    if shuffle:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)

    def per_face(x, y, target):
        x = augment_face(tf.cast(x, tf.float32)[..., None], augment, erase)
        if weights is None:
            return x, target
        return x, target, tf.gather(tf.constant(weights), y)

    def per_batch(x, *target):
        return (_scale_tf(x, preprocessing), *target)

    opts = tf.data.Options()
    opts.deterministic = True
    return (ds.map(per_face, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
            .map(per_batch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE).with_options(opts))


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


def _one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Label indices (any numeric dtype) as float32 one-hot rows."""
    return np.eye(num_classes, dtype=np.float32)[np.asarray(labels).astype(np.int64)]


class NumpyBatches(keras.utils.PyDataset):
    """The input pipeline for JAX/PyTorch backends (no TensorFlow): shuffled, `augment_batch`-ed,
    one-hot batches built in NumPy from the once-decoded uint8 faces."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, preprocessing: Preprocessing, num_classes: int,
                 batch_size: int = 64, augment: str = "none", shuffle: bool = False, seed: int = 0,
                 erase: float = 0.0, weights: np.ndarray | None = None, targets: np.ndarray | None = None):
        super().__init__()
        self.erase, self.weights = erase, weights
        self.targets = _one_hot(labels, num_classes) if targets is None else targets.astype(np.float32)
        self.images, self.labels, self.pre = images, labels.astype(np.int64), preprocessing
        self.num_classes, self.batch_size, self.augment, self.shuffle = num_classes, batch_size, augment, shuffle
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(images)) if shuffle else np.arange(len(images))

    def __len__(self) -> int:
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, index: int):
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        faces = augment_batch(self.images[rows], self.augment, self.rng, self.erase)
        batch = self.pre.to_input(faces), self.targets[rows]
        return batch if self.weights is None else (*batch, self.weights[self.labels[rows]])

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.order = self.rng.permutation(len(self.images))


def make_input(images: np.ndarray, labels: np.ndarray, preprocessing: Preprocessing, num_classes: int,
               batch_size: int = 64, augment: str = "none", shuffle: bool = False, seed: int = 0,
               erase: float = 0.0, weights: np.ndarray | None = None, targets: np.ndarray | None = None):
    """The fastest input pipeline the Keras backend can use: tf.data on TensorFlow, NumPy batches elsewhere."""
    maker = make_tf_dataset if keras.backend.backend() == "tensorflow" else NumpyBatches
    return maker(images, labels, preprocessing, num_classes, batch_size, augment, shuffle, seed, erase, weights,
                 targets)


def split_for_training(dataset: FerDataset, seed: int, val_fraction: float = 0.1) -> tuple[FerDataset, FerDataset, str]:
    """Training rows and the validation rows early stopping watches (never test rows).

    Uses the dataset's validation split (PublicTest for FER2013); without one, holds out a
    stratified `val_fraction` of the training rows.
    """
    train = dataset.split("train")
    if len(train) == 0:
        raise ValueError("the dataset has no training images")
    if "validation" in dataset.split_names:
        return train, dataset.split("validation"), "validation"
    rng = np.random.default_rng(seed)
    val_mask = np.zeros(len(train), dtype=bool)
    for k in range(len(train.classes)):
        idx = np.flatnonzero(train.labels == k)
        take = rng.choice(idx, size=max(1, int(round(len(idx) * val_fraction))), replace=False) if len(idx) > 1 else []
        val_mask[take] = True
    return train._take(~val_mask), train._take(val_mask), f"{val_fraction:.0%} of train (no validation split)"


# ----------------------------------------------------------------------------- schedule & callbacks

def learning_rate_schedule(config: TrainConfig, steps_per_epoch: int):
    """One-cycle (warm-up then cosine decay), plain cosine, or a constant learning rate."""
    total = max(1, config.epochs * steps_per_epoch)
    if config.schedule == "constant":
        return config.learning_rate
    if config.schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(config.learning_rate, total, alpha=0.01)
    warmup = int(0.15 * total)
    return keras.optimizers.schedules.CosineDecay(config.learning_rate / 25, max(1, total - warmup), alpha=0.004,
                                                  warmup_target=config.learning_rate, warmup_steps=warmup)


def _checkpoint_callback(run_dir: Path, state: dict, patience: int, swa_after: int | None = None):
    """Save the full model (with optimizer) and the run state each epoch; keep the best weights; stop early;
    after epoch `swa_after`, fold each epoch's weights into the running SWA mean. Each file is written
    under a temporary name and then renamed, and a stop signal waits for the writing to end, so the
    files on disk always agree with each other."""
    class Checkpoint(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = {k: float(v) for k, v in (logs or {}).items()}
            lr = self.model.optimizer.learning_rate
            logs["lr"] = float(keras.ops.convert_to_numpy(lr))
            with _signals_deferred():
                for key, value in logs.items():
                    state["history"].setdefault(key, []).append(value)
                state["epochs_done"] = epoch + 1
                score = logs.get("val_accuracy", -logs.get("val_loss", 0.0))
                if score > state["best_score"]:
                    state["best_score"], state["best_epoch"], state["wait"] = score, epoch + 1, 0
                    _replace_atomically(run_dir / "best.weights.h5", self.model.save_weights)
                else:
                    state["wait"] += 1
                if swa_after is not None and epoch + 1 > swa_after:
                    _fold_into_average(run_dir, state, self.model, epoch + 1)
                state["elapsed_s"] = state["elapsed_before_s"] + time.time() - state["started"]
                _replace_atomically(run_dir / "checkpoint.keras", self.model.save)
                _replace_atomically(run_dir / "state.json",
                                    lambda path: path.write_text(json.dumps(state, indent=1)))
            if patience and state["wait"] >= patience:
                print(f"\nEarly stopping: no val_accuracy gain for {patience} epochs "
                      f"(best epoch {state['best_epoch']}).", flush=True)
                self.model.stop_training = True

    return Checkpoint()


# ----------------------------------------------------------------------------- stochastic weight averaging

SWA_FILE = "swa.npz"


def _fold_into_average(run_dir: Path, state: dict, model, epoch: int) -> None:
    """Add this epoch's trainable weights to the running mean in `runs/<id>/swa.npz` (kept on disk so
    `--resume` continues the average)."""
    current = [keras.ops.convert_to_numpy(v).astype(np.float32) for v in model.trainable_weights]
    done = state.setdefault("swa_epochs", [])
    if done:
        with np.load(run_dir / SWA_FILE) as old:
            mean = [old[f"w{i}"] for i in range(len(current))]
        current = [m + (c - m) / (len(done) + 1) for m, c in zip(mean, current)]
    def write(path):
        with open(path, "wb") as f:
            np.savez(f, **{f"w{i}": w for i, w in enumerate(current)})
    _replace_atomically(run_dir / SWA_FILE, write)
    done.append(epoch)


def recompute_batchnorm(model, inputs: np.ndarray, batch_size: int = 256) -> int:
    """Re-estimate every BatchNormalization layer's moving mean and variance as the plain average over
    `inputs` in training mode; averaged weights make the statistics gathered during training stale.
    Returns the number of layers updated."""
    layers = [layer for layer in _all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.moving_mean.assign(np.zeros(layer.moving_mean.shape, np.float32))
        layer.moving_variance.assign(np.ones(layer.moving_variance.shape, np.float32))
    try:
        for i, start in enumerate(range(0, len(inputs), batch_size)):
            for layer in layers:  # momentum i/(i+1) turns the moving average into a cumulative mean
                layer.momentum = i / (i + 1)
            model(inputs[start:start + batch_size], training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return len(layers)


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def apply_swa(model, run_dir: Path, state: dict, faces: np.ndarray, pre: Preprocessing,
              config: TrainConfig) -> dict | None:
    """Load the run's SWA mean into `model` and recompute its BatchNorm statistics on the training `faces`,
    as they are or augmented as training saw them (`config.swa_batchnorm`); returns what the card records,
    or None when the run never reached its SWA epochs.

    Clean faces match plain inference; augmented ones resemble multi-crop TTA's zoomed views, which can
    favour TTA (docs/models.md, "Stochastic weight averaging", has what it measured)."""
    epochs = state.get("swa_epochs") or []
    if not epochs:
        return None
    with np.load(run_dir / SWA_FILE) as saved:
        for i, variable in enumerate(model.trainable_weights):
            variable.assign(saved[f"w{i}"])
    augmented = config.swa_batchnorm == "augmented"
    if augmented:
        faces = augment_batch(faces, config.augment, np.random.default_rng(config.seed), config.erase)
    n_bn = recompute_batchnorm(model, pre.to_input(faces))
    which = f"augmented training faces ({config.augment}, erase {config.erase:g})" if augmented else "training faces"
    return {"epochs": list(epochs), "batchnorm_layers": n_bn, "batchnorm_images": int(len(faces)),
            "batchnorm_faces": config.swa_batchnorm,
            "note": f"shipped weights are the mean of epochs {epochs[0]}–{epochs[-1]} (stochastic weight "
                    f"averaging), BatchNorm statistics recomputed on the {which}, not the best epoch"}


# ----------------------------------------------------------------------------- train

def train(config: TrainConfig, *, resume: bool = False, finish: bool = False, command: str | None = None,
          runs_dir: Path | None = None, verbose: int | str = "auto") -> registry.ModelInfo:
    """Train `config.arch` on `config.data`, write `models/<id>/model.keras` + `card.json`, return its info.

    `resume` continues an interrupted run from its last checkpoint; `finish` trains no more and ships
    the best epoch an interrupted run reached (its card says where it stopped)."""
    from ..models.architectures import build, get_architecture

    full = load_dataset(config.data)
    if config.label_source != "fer2013" or config.votes:
        full = attach_votes(full, config.votes or None)
    # `all` means every emotion this dataset has (7 for FER2013, 4 for the course layout; FER+'s 8 with its votes)
    labels = training_labels(config.labels, config.label_source) or (
        full.classes if config.labels.strip().lower() in ("", "all") else parse_label_set(config.labels))
    arch = get_architecture(config.arch)
    channels = 3 if config.color == "rgb" or arch.preprocessing.channels == 3 else 1
    pre = replace(arch.preprocessing, channels=channels)
    out = Path(config.out) if config.out else registry.default_models_dir() / _default_id(config, labels)
    run_dir = (runs_dir or Path(os.environ.get("FER_RUNS_DIR", out.parent.parent / "runs"))) / out.name

    if config.label_source == "fer2013":
        data, label_record = (full.subset(labels) if tuple(labels) != full.classes else full), None
    else:  # every split relabelled by the crowd; faces without a usable FER+ label are left out
        data, label_record = relabel(full, labels, config.label_source)
    train_rows, val_rows, val_source = split_for_training(data, config.seed)
    train_rows, excluded = exclude_training_rows(train_rows, full, config)
    if config.limit:
        keep = np.random.default_rng(config.seed).permutation(len(train_rows))[:config.limit]
        train_rows = train_rows._take(np.sort(keep))
    keras.utils.set_random_seed(config.seed)
    policy = set_precision(config.mixed_precision)

    if finish:
        state = _finished_run(run_dir)
        print(f"Finishing {out.name}: stopped after epoch {state['epochs_done']} of {config.epochs}, "
              f"best epoch {state['best_epoch']}", flush=True)
    else:
        state = _fit(config, pre, labels, train_rows, val_rows, run_dir, resume, policy, verbose)
    wall = state.get("elapsed_s", 0.0)

    set_precision("off")  # the shipped twin computes in float32 and carries no optimizer state
    final = build(config.arch, len(labels), pre)
    final.load_weights(run_dir / "best.weights.h5")
    swa = apply_swa(final, run_dir, state, pre.prepare_uint8(train_rows.images), pre, config) if config.swa else None
    if swa:
        swa["val_accuracy"] = _accuracy(final, pre.apply(val_rows.images), val_rows.labels)
    card = {
        "id": out.name,
        "name": config.name or f"{config.arch} ({label_set_name(labels)})",
        "architecture": config.arch,
        "description": arch.description,
        "labels": list(labels),
        "preprocessing": pre.to_dict(),
        "params": int(final.count_params()),
        "file_size_bytes": None,  # filled in once the file is written
        "default": False,
        "dataset": {"source": str(config.data), "fingerprint": full.fingerprint, "layout": full.layout,
                    "split_sizes": {"train": len(train_rows), "validation": len(val_rows)},
                    "validation_source": val_source, "excluded_from_training": excluded,
                    "label_source": label_record or {"label_source": "fer2013"}},
        "training": {"command": command or _command_line(config), "config": asdict(config),
                     "history": state["history"], "best_epoch": state["best_epoch"],
                     "epochs_run": state["epochs_done"], "wall_time_s": round(wall, 1),
                     "device": " then ".join(state.get("devices") or [device_description()]),
                     "precision_policy": policy,
                     "initial_weights": initial_weights(config, arch),
                     "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")},
        "metrics": {},
    }
    if config.teacher:
        card["teacher"] = config.teacher
        card["training"]["distillation"] = distillation_record(config, state.get("teacher") or {})
    if config.swa:
        card["training"]["swa"] = swa or {"note": "the run stopped before its SWA epochs: the best epoch ships"}
    if _has_epochs_left(state, config):
        card["training"]["stopped"] = f"interrupted after epoch {state['epochs_done']} of {config.epochs}"
    if config.init_from:  # keep the parent's recipe so the whole chain of commands is on record
        card["training"]["init_from"] = registry.training_record(config.init_from)
    if (out / registry.CARD_FILE).exists():  # keep the default flag a maintainer set
        card["default"] = registry.read_card(out).get("default", False)

    def write_weights(path: Path) -> None:
        final.save(path)
        card["file_size_bytes"] = path.stat().st_size

    registry.save_model_files(out, card, write_weights)  # a crash never leaves new weights beside an old card
    registry.forget_predictions(out)
    return registry.ModelInfo(out.name, out, card)


def _fit(config: TrainConfig, pre: Preprocessing, labels, train_rows: FerDataset, val_rows: FerDataset,
         run_dir: Path, resume: bool, policy: str, verbose) -> dict:
    """Compile (or reload the last checkpoint of) the model and fit it, checkpointing every epoch; returns
    the run state. Ctrl-C or SIGTERM (a time limit) stops it: the epoch in flight is lost, the best epoch
    so far is kept, so an interrupted run still ships."""
    from ..models.architectures import build

    run_dir.mkdir(parents=True, exist_ok=True)
    steps = math.ceil(len(train_rows) / config.batch_size)
    faces = pre.prepare_uint8(train_rows.images)
    targets, val_targets, teacher = _distillation_targets(config, labels, faces, train_rows, val_rows, run_dir)
    if targets is None:  # FER+ soft labels: each face's vote distribution (None: one-hot labels)
        targets = training_targets(train_rows, labels, config.label_source)
    train_ds = make_input(faces, train_rows.labels, pre, len(labels), config.batch_size,
                          config.augment, shuffle=True, seed=config.seed, erase=config.erase,
                          weights=class_weights(train_rows.labels, len(labels), config.class_weight), targets=targets)
    val_ds = make_input(pre.prepare_uint8(val_rows.images), val_rows.labels, pre, len(labels), 256,
                        targets=val_targets)

    state_file = run_dir / "state.json"
    if resume and state_file.exists() and (run_dir / "checkpoint.keras").exists():
        state = json.loads(state_file.read_text())
        model = keras.models.load_model(run_dir / "checkpoint.keras")
        print(f"Resuming {run_dir.name} after epoch {state['epochs_done']}", flush=True)
    else:
        state = {"history": {}, "epochs_done": 0, "best_score": -math.inf, "best_epoch": 0, "wait": 0,
                 "elapsed_before_s": 0.0}
        loss, accuracy = _loss_and_metric(config, len(labels))
        strategy = distribution_strategy()
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            model = build(config.arch, len(labels), pre)
            if config.init_from:
                copied = initialise_from(model, config.init_from)
                print(f"Initialised {copied} layers from {config.init_from}", flush=True)
            model.compile(
                optimizer=keras.optimizers.AdamW(learning_rate_schedule(config, steps),
                                                 weight_decay=config.weight_decay),
                loss=loss, metrics=[accuracy])
    if teacher:
        state["teacher"] = teacher
    if needs_xla(policy):
        model.jit_compile = True
    state["elapsed_before_s"] = state.get("elapsed_s", state["elapsed_before_s"])
    state["started"] = time.time()

    device = device_description()
    if device not in state.setdefault("devices", []):
        state["devices"].append(device)
    if _has_epochs_left(state, config):
        try:
            with _stop_signals_interrupt():
                model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, initial_epoch=state["epochs_done"],
                          shuffle=False,  # the input pipeline shuffles every epoch itself (make_input(shuffle=True))
                          callbacks=[_checkpoint_callback(run_dir, state, config.patience,
                                                          config.epochs - config.swa if config.swa else None)],
                          verbose=verbose)
        except KeyboardInterrupt:
            if not state["epochs_done"]:
                raise ValueError("training was stopped before its first epoch ended; nothing to ship") from None
            print(f"\nStopped after epoch {state['epochs_done']} of {config.epochs}; shipping the best epoch "
                  f"({state['best_epoch']}).", flush=True)
    return state


def _loss_and_metric(config: TrainConfig, num_classes: int):
    """Label-smoothed cross-entropy and accuracy, or, when distilling, the mixed distillation loss and
    accuracy against the hard half of the packed targets."""
    if not config.teacher:
        return keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing), "accuracy"
    return (DistillationLoss(num_classes, config.temperature, config.alpha, config.label_smoothing),
            distill_accuracy())


def _distillation_targets(config: TrainConfig, labels, faces: np.ndarray, train_rows: FerDataset,
                          val_rows: FerDataset, run_dir: Path):
    """(train targets, validation targets, teacher record) for a distillation run; (None, None, None)
    otherwise. The teacher answers once per training face (cached in the run folder), its classes put
    in the student's order, renormalised and softened at the run's temperature."""
    if not config.teacher:
        return None, None, None
    print(f"Teacher {config.teacher}: classifying {len(faces):,} training faces (cached in the run folder)",
          flush=True)
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("float32")  # the teacher answers as it was evaluated, not in bf16
    try:
        probs, record = teacher_probabilities(config.teacher, faces, train_rows.files, run_dir,
                                              tta=config.teacher_tta or None, progress=stderr_progress)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    probs = probs[:, align_labels(record["labels"], labels)]
    probs /= np.maximum(probs.sum(axis=1, keepdims=True), 1e-12)
    record["agreement_with_labels"] = round(float((probs.argmax(1) == train_rows.labels).mean()), 4)
    soft = soften(probs, config.temperature)
    return (pack_targets(train_rows.labels, soft, len(labels)), pack_targets(val_rows.labels, None, len(labels)),
            record)


def _accuracy(model, inputs: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of `model` on prepared inputs (for the card's SWA record)."""
    probs = model.predict(inputs, batch_size=256, verbose=0)
    return round(float((probs.argmax(1) == labels).mean()), 4)


def _has_epochs_left(state: dict, config: TrainConfig) -> bool:
    """Whether the run would train on: epochs remain and early stopping has not ended it."""
    return state["epochs_done"] < config.epochs and state["wait"] < (config.patience or math.inf)


def _replace_atomically(path: Path, write) -> None:
    """`write(temporary path)` next to `path`, then rename it over `path`: a crash leaves the old file whole."""
    partial = path.with_name(f"partial.{path.name}")  # keeps the suffix Keras checks (.keras, .weights.h5)
    write(partial)
    os.replace(partial, path)


_STOP = {"deferring": False, "pending": False}  # a stop signal that arrived while a checkpoint was written


@contextlib.contextmanager
def _signals_deferred():
    """Hold a stop signal (see `_stop_signals_interrupt`) until the block ends, then act on it."""
    _STOP["deferring"] = True
    try:
        yield
    finally:
        _STOP["deferring"] = False
    if _STOP["pending"]:
        _STOP["pending"] = False
        raise KeyboardInterrupt


@contextlib.contextmanager
def _stop_signals_interrupt():
    """Let SIGTERM (a scheduler's time limit, `timeout`) and Ctrl-C stop training with KeyboardInterrupt,
    but never halfway through writing a checkpoint. Only the main thread may set signal handlers, so
    elsewhere (a Streamlit page) this changes nothing."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        if _STOP["deferring"]:
            _STOP["pending"] = True
        else:
            raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _STOP["pending"] = False


def _finished_run(run_dir: Path) -> dict:
    """The state of a run that was stopped for good (killed by a time limit, say), to ship its best epoch."""
    state_file = run_dir / "state.json"
    if not (state_file.exists() and (run_dir / "best.weights.h5").exists()):
        raise ValueError(f"nothing to finish: {run_dir} holds no state.json and best.weights.h5 of an earlier run")
    return json.loads(state_file.read_text())


def initial_weights(config: TrainConfig, arch) -> str:
    """What the run started from, for the card: a registered model's layers, or random weights (for a
    transfer-learning backbone that means no ImageNet weights, which cannot be downloaded here)."""
    if config.init_from:
        return f"layers of {config.init_from}"
    return "random (ImageNet weights not used: they cannot be downloaded here)" if arch.pretrainable else "random"


def exclude_training_rows(train_rows: FerDataset, full: FerDataset, config: TrainConfig) -> tuple[FerDataset, dict]:
    """Drop training faces that must not be learnt from, and say how many went and why.

    * leaks: exact or near duplicates (the quality scan's pHash threshold) of any validation or test
      face of the dataset, so the scores measured there stay honest (`exclude_leaks`);
    * listed: files named in the `exclude` CSV (its `file` column), e.g. likely label errors.
    """
    from ..data.quality import NEAR_DISTANCE, duplicated_in

    drop = np.zeros(len(train_rows), dtype=bool)
    excluded = {"duplicates_of_held_out": 0, "listed": 0}
    if config.exclude_leaks:
        held_out = full.images[full.splits != "train"]
        leaks = duplicated_in(train_rows.images, held_out)
        excluded["duplicates_of_held_out"] = int(leaks.sum())
        excluded["near_duplicate_max_bits"] = NEAR_DISTANCE
        drop |= leaks
    if config.exclude:
        listed = read_file_list(config.exclude)
        hit = np.isin(train_rows.files, listed)
        excluded["listed"] = int(hit.sum())
        excluded["list_file"] = str(config.exclude)
        drop |= hit
    if drop.all():
        raise ValueError("every training image was excluded; nothing is left to train on")
    return (train_rows._take(~drop) if drop.any() else train_rows), excluded


def read_file_list(path: str) -> np.ndarray:
    """The `file` column of a CSV (or, without a header named `file`, its first column)."""
    import pandas as pd

    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read the exclusion list {path}: {err}") from None
    column = "file" if "file" in table.columns else table.columns[0]
    return table[column].astype(str).to_numpy()


def initialise_from(model, model_id: str) -> int:
    """Copy weights from a registered model into every layer with the same name and shapes
    (all but a differently sized head); returns how many layers were copied."""
    source = registry.load_keras_model(registry.get_model(model_id))
    by_name = {layer.name: layer for layer in source.layers}
    copied = 0
    for layer in model.layers:
        twin = by_name.get(layer.name)
        if twin is None or not layer.weights:
            continue
        if [w.shape for w in twin.get_weights()] == [w.shape for w in layer.get_weights()]:
            layer.set_weights(twin.get_weights())
            copied += 1
    if copied == 0:
        raise ValueError(f"{model_id} shares no layers with this architecture; cannot initialise from it")
    return copied


def _default_id(config: TrainConfig, labels) -> str:
    crowd = "" if config.label_source == "fer2013" else "ferplus_"
    return f"{config.arch}_{crowd}{'7class' if len(labels) == 7 else label_set_name(labels).replace(',', '-')}"


def _command_line(config: TrainConfig) -> str:
    """The CLI command that reproduces a run started from Python."""
    return (f"python -m fer_core train --arch {config.arch} --data {shlex.quote(config.data)} "
            f"--labels {config.labels} --epochs {config.epochs} --augment {config.augment} --seed {config.seed}")


# ----------------------------------------------------------------------------- CLI

def add_cli(subparsers) -> None:
    """`train`, and `distill` (the same options plus the teacher's)."""
    p = subparsers.add_parser("train", help="train an architecture on a dataset and register it under models/")
    _add_training_arguments(p)
    p = subparsers.add_parser("distill", help="train a fast network on a registered teacher's probabilities")
    p.add_argument("--teacher", required=True, help="registered model whose answers the network learns, "
                                                    "e.g. fer_ensemble_7class")
    p.add_argument("--teacher-tta", default="", choices=("", "none", "flip", "tencrop"),
                   help="the teacher's test-time augmentation (default: its card's)")
    p.add_argument("--temperature", type=float, default=2.0, help="distillation temperature T (default 2)")
    p.add_argument("--alpha", type=float, default=0.9,
                   help="weight of the teacher's term; 1 − alpha goes to the hard label (default 0.9)")
    _add_training_arguments(p)


def _add_training_arguments(p) -> None:
    from ..models.architectures import ARCHITECTURES

    p.add_argument("--arch", required=True, choices=list(ARCHITECTURES))
    p.add_argument("--data", required=True, help="dataset folder, .zip or fer2013.csv")
    p.add_argument("--labels", default="all", help="all | 4class | comma list, e.g. happy,neutral,sad,surprise")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3, dest="learning_rate")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--schedule", choices=SCHEDULES, default="onecycle")
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--augment", choices=AUGMENTATIONS, default="standard")
    p.add_argument("--color", choices=("grayscale", "rgb"), default="grayscale")
    p.add_argument("--patience", type=int, default=8, help="early-stopping patience in epochs (0 = off)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--limit", type=int, default=0, help="train on at most N images (quick runs)")
    p.add_argument("--mixed-precision", choices=("auto", "off", "bfloat16", "float16"), default="auto")
    p.add_argument("--init-from", default="", help="registered model whose matching layers initialise this one")
    p.add_argument("--erase", type=float, default=0.0, help="random-erasing probability per face (0 = off)")
    p.add_argument("--keep-leaks", dest="exclude_leaks", action="store_false",
                   help="keep training faces that duplicate a validation/test face (dropped by default)")
    p.add_argument("--exclude", default="", help="CSV with a `file` column: training files to leave out")
    p.add_argument("--label-source", choices=LABEL_SOURCES, default="fer2013",
                   help="whose labels to learn: the dataset's own (fer2013), FER+'s crowd majority (faces without "
                        "one left out) or FER+'s vote distribution as soft targets (ferplus-soft); validation "
                        "uses the majority. With FER+ votes, --labels all means FER+'s 8 emotions (with contempt); "
                        "a 7-class set counts contempt votes as disgust")
    p.add_argument("--votes", default="", help="FER+ votes CSV (default: ferplus_votes.csv or fer2013new.csv "
                                               "beside the data)")
    p.add_argument("--class-weight", choices=CLASS_WEIGHTS, default="none",
                   help="balanced: weigh the loss so every emotion counts equally (for imbalanced label sets)")
    p.add_argument("--swa", type=int, default=0,
                   help="ship the mean of the last N epochs' weights (stochastic weight averaging, BatchNorm "
                        "statistics recomputed) instead of the best epoch; 0 = off")
    p.add_argument("--swa-batchnorm", choices=SWA_BATCHNORM, default="clean",
                   help="recompute the SWA mean's BatchNorm statistics on clean training faces (best for plain "
                        "inference) or augmented ones (can suit ten-crop TTA better)")
    p.add_argument("--name", default="", help="display name for the model card")
    p.add_argument("--out", default="", help="output folder (default models/<arch>_<labels>)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    p.add_argument("--finish", action="store_true",
                   help="train no more: ship the best epoch an interrupted run reached "
                        "(e.g. one killed by a time limit)")
    p.add_argument("--no-evaluate", action="store_true", help="skip evaluating on the validation split afterwards")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args) -> int:
    fields = {k: getattr(args, k) for k in TrainConfig.__dataclass_fields__ if hasattr(args, k) and k != "extra"}
    config = TrainConfig(**fields)
    command = "python -m fer_core " + " ".join(shlex.quote(a) for a in args.argv if a not in ("--resume", "--finish"))
    info = train(config, resume=args.resume, finish=args.finish, command=command)
    swa = info.card["training"].get("swa", {})
    shipped = (f"mean of epochs {swa['epochs'][0]}–{swa['epochs'][-1]} (SWA)" if swa.get("epochs")
               else f"best epoch {info.card['training']['best_epoch']}")
    print(f"saved {info.model_file} ({info.card['params']:,} params, {shipped})")
    if not args.no_evaluate:
        try:
            from ..evaluation.evaluate import evaluate_model, save_evaluation
        except ImportError as err:  # a partial install without the evaluation package: the model is saved
            log.warning("validation skipped: cannot import fer_core.evaluation (%s)", err)
            return 0
        result = evaluate_model(info, load_dataset(config.data), split="validation", votes=config.votes or None)
        save_evaluation(info, result)
        print(f"validation accuracy {result['accuracy']:.4f}, macro-F1 {result['macro_f1']:.4f} (n={result['n']})")
        crowd = result.get("ferplus") or {}
        if crowd.get("n"):
            print(f"against the FER+ majority: accuracy {crowd['accuracy']:.4f} (n={crowd['n']})")
    return 0
