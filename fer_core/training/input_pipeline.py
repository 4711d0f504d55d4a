"""The training input pipeline: once-decoded uint8 faces held in memory → shuffled, augmented, batched
model inputs with one-hot (or soft) targets and optional per-class sample weights.

On TensorFlow it is a parallel tf.data pipeline (`make_tf_dataset`); on JAX or PyTorch a NumPy twin
(`NumpyBatches`) feeds Keras instead, so training runs on a GPU machine without TensorFlow.
`make_input` picks the one the Keras backend can use.
"""
from __future__ import annotations

import math

import keras
import numpy as np

from ..models.preprocess import Preprocessing
from .augment import augment_batch, augment_face


def class_weights(labels: np.ndarray, num_classes: int, mode: str = "balanced") -> np.ndarray | None:
    """Per-class loss weights: `balanced` gives each class the same total weight (n / (k × count)), so
    a rare emotion counts as much as a common one; `none` returns None (every face weighs 1)."""
    if mode == "none":
        return None
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, len(labels) / (num_classes * np.maximum(counts, 1)), 0.0)
    return weights.astype(np.float32)


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
                    erase: float = 0.0, weights: np.ndarray | None = None, targets: np.ndarray | None = None,
                    teach=None):
    """A tf.data pipeline over in-memory uint8 faces (already `Preprocessing.prepare_uint8`-ed): shuffle,
    augment each face in parallel, batch, scale to the model's preprocessing, prefetch. Labels come
    out one-hot so label smoothing works, or as the given per-face `targets` rows (distillation); with
    per-class `weights`, each batch also carries sample weights. `teach` (per-batch distillation) maps
    each augmented batch to the teacher's distribution, which replaces the targets' second half."""
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

    def per_batch(x, target, *weight):
        if teach is not None:
            soft = tf.numpy_function(teach, [x], tf.float32, stateful=False)
            target = tf.concat([target[:, :num_classes], tf.ensure_shape(soft, [None, num_classes])], axis=1)
        return (_scale_tf(x, preprocessing), target, *weight)

    opts = tf.data.Options()
    opts.deterministic = True
    return (ds.map(per_face, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
            .map(per_batch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE).with_options(opts))


def _one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Label indices (any numeric dtype) as float32 one-hot rows."""
    return np.eye(num_classes, dtype=np.float32)[np.asarray(labels).astype(np.int64)]


class NumpyBatches(keras.utils.PyDataset):
    """The input pipeline for JAX/PyTorch backends (no TensorFlow): shuffled, `augment_batch`-ed,
    one-hot batches built in NumPy from the once-decoded uint8 faces."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, preprocessing: Preprocessing, num_classes: int,
                 batch_size: int = 64, augment: str = "none", shuffle: bool = False, seed: int = 0,
                 erase: float = 0.0, weights: np.ndarray | None = None, targets: np.ndarray | None = None,
                 teach=None):
        super().__init__()
        self.erase, self.weights, self.teach = erase, weights, teach
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
        targets = self.targets[rows]
        if self.teach is not None:  # per-batch distillation: the teacher's answer on these very views
            targets = np.concatenate([targets[:, :self.num_classes], self.teach(faces[..., None])], axis=1)
        batch = self.pre.to_input(faces), targets
        return batch if self.weights is None else (*batch, self.weights[self.labels[rows]])

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.order = self.rng.permutation(len(self.images))


def make_input(images: np.ndarray, labels: np.ndarray, preprocessing: Preprocessing, num_classes: int,
               batch_size: int = 64, augment: str = "none", shuffle: bool = False, seed: int = 0,
               erase: float = 0.0, weights: np.ndarray | None = None, targets: np.ndarray | None = None,
               teach=None):
    """The fastest input pipeline the Keras backend can use: tf.data on TensorFlow, NumPy batches elsewhere."""
    maker = make_tf_dataset if keras.backend.backend() == "tensorflow" else NumpyBatches
    return maker(images, labels, preprocessing, num_classes, batch_size, augment, shuffle, seed, erase, weights,
                 targets, teach)
