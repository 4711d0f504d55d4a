"""Stochastic weight averaging: ship the mean of the last epochs' weights instead of the best epoch.

Each averaged epoch is folded into a running mean kept on disk (`runs/<id>/swa.npz`, so `--resume`
continues it); at the end the mean is loaded and its BatchNorm statistics recomputed, since statistics
gathered during training do not fit averaged weights.
"""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from ..models.preprocess import Preprocessing
from .augment import augment_batch
from .config import TrainConfig
from .safe_stop import replace_atomically

SWA_FILE = "swa.npz"


def fold_into_average(run_dir: Path, state: dict, model, epoch: int) -> None:
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
    replace_atomically(run_dir / SWA_FILE, write)
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
