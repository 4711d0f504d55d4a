"""The distillation loss and metric, as Keras objects (registered, so a checkpoint reloads with them).

Targets come packed per face as [one-hot label | teacher distribution] (`fer_core.training.distill.pack_targets`).
"""
from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="fer_core")
class DistillationLoss(keras.losses.Loss):
    """(1 − alpha) · cross-entropy(label) + alpha · T² · KL(teacher_T ‖ student_T), on packed targets.

    The student outputs softmax probabilities; its distribution at temperature T is
    softmax(log p / T). T² keeps the soft term's gradients on the same scale as T changes."""

    def __init__(self, num_classes: int, temperature: float = 2.0, alpha: float = 0.9,
                 label_smoothing: float = 0.0, name: str = "distillation", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes, self.temperature, self.alpha = int(num_classes), float(temperature), float(alpha)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        ops, k = keras.ops, self.num_classes
        y_pred = ops.cast(y_pred, "float32")
        hard, soft = y_true[:, :k], y_true[:, k:]
        ce = keras.losses.categorical_crossentropy(hard, y_pred, label_smoothing=self.label_smoothing)
        log_student = ops.log_softmax(ops.log(ops.clip(y_pred, 1e-7, 1.0)) / self.temperature, axis=-1)
        kl = ops.sum(soft * (ops.log(ops.clip(soft, 1e-7, 1.0)) - log_student), axis=-1)
        return (1.0 - self.alpha) * ce + self.alpha * self.temperature ** 2 * kl

    def get_config(self):
        return {"name": self.name, "num_classes": self.num_classes, "temperature": self.temperature,
                "alpha": self.alpha, "label_smoothing": self.label_smoothing}


@keras.saving.register_keras_serializable(package="fer_core")
def label_accuracy(y_true, y_pred):
    """Top-1 accuracy against the hard label of packed targets (its first K columns)."""
    k = keras.ops.shape(y_pred)[-1]
    return keras.ops.cast(keras.ops.argmax(y_true[:, :k], -1) == keras.ops.argmax(y_pred, -1), "float32")


def accuracy_metric():
    """`label_accuracy` logged as `accuracy` / `val_accuracy`, the names checkpoints and early stopping watch."""
    return keras.metrics.MeanMetricWrapper(label_accuracy, name="accuracy")
