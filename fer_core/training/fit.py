"""The fit loop of a training run: compile (or reload the last checkpoint), fit with a learning-rate schedule,
checkpoint every epoch (resumable), stop early, and survive Ctrl-C or SIGTERM with the best epoch kept.
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path

import keras

from ..base.runtime import device_description, distribution_strategy, needs_xla
from ..data.fer_dataset import FerDataset
from ..data.votes import training_targets
from ..models import registry
from ..models.preprocess import Preprocessing
from .config import TrainConfig
from .distill import distillation_targets
from .distill_loss import DistillationLoss
from .distill_loss import accuracy_metric as distill_accuracy
from .input_pipeline import class_weights, make_input
from .safe_stop import replace_atomically, signals_deferred, stop_signals_interrupt
from .swa import fold_into_average


def fit_run(config: TrainConfig, pre: Preprocessing, labels, train_rows: FerDataset, val_rows: FerDataset,
            run_dir: Path, resume: bool, policy: str, verbose) -> dict:
    """Compile (or reload the last checkpoint of) the model and fit it, checkpointing every epoch; returns
    the run state. Ctrl-C or SIGTERM (a time limit) stops it: the epoch in flight is lost, the best epoch
    so far is kept, so an interrupted run still ships."""
    run_dir.mkdir(parents=True, exist_ok=True)
    train_ds, val_ds, teacher = _inputs(config, pre, labels, train_rows, val_rows, run_dir)
    state_file = run_dir / "state.json"
    if resume and state_file.exists() and (run_dir / "checkpoint.keras").exists():
        state = json.loads(state_file.read_text())
        model = keras.models.load_model(run_dir / "checkpoint.keras")
        print(f"Resuming {run_dir.name} after epoch {state['epochs_done']}", flush=True)
    else:
        state = {"history": {}, "epochs_done": 0, "best_score": -math.inf, "best_epoch": 0, "wait": 0,
                 "elapsed_before_s": 0.0}
        model = _new_model(config, pre, len(labels), steps_per_epoch=math.ceil(len(train_rows) / config.batch_size))
    if teacher:
        state["teacher"] = teacher
    if needs_xla(policy):
        model.jit_compile = True
    state["elapsed_before_s"] = state.get("elapsed_s", state["elapsed_before_s"])
    state["started"] = time.time()

    device = device_description()
    if device not in state.setdefault("devices", []):
        state["devices"].append(device)
    if has_epochs_left(state, config):
        try:
            with stop_signals_interrupt():
                model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, initial_epoch=state["epochs_done"],
                          shuffle=False,  # the input pipeline shuffles every epoch itself (make_input(shuffle=True))
                          callbacks=[checkpoint_callback(run_dir, state, config.patience,
                                                         config.epochs - config.swa if config.swa else None)],
                          verbose=verbose)
        except KeyboardInterrupt:
            if not state["epochs_done"]:
                raise ValueError("training was stopped before its first epoch ended; nothing to ship") from None
            print(f"\nStopped after epoch {state['epochs_done']} of {config.epochs}; shipping the best epoch "
                  f"({state['best_epoch']}).", flush=True)
    return state


def _inputs(config: TrainConfig, pre: Preprocessing, labels, train_rows: FerDataset, val_rows: FerDataset,
            run_dir: Path):
    """(training input, validation input, teacher record or None): shuffled, augmented, class-weighted
    training batches with one-hot, FER+ vote or teacher targets, and plain validation batches."""
    faces = pre.prepare_uint8(train_rows.images)
    targets, val_targets, teacher, teach = distillation_targets(config, labels, faces, train_rows, val_rows, run_dir,
                                                                pre)
    if targets is None:  # FER+ soft labels: each face's vote distribution (None: one-hot labels)
        targets = training_targets(train_rows, labels, config.label_source)
    train_ds = make_input(faces, train_rows.labels, pre, len(labels), config.batch_size,
                          config.augment, shuffle=True, seed=config.seed, erase=config.erase,
                          weights=class_weights(train_rows.labels, len(labels), config.class_weight), targets=targets,
                          teach=teach)
    val_ds = make_input(pre.prepare_uint8(val_rows.images), val_rows.labels, pre, len(labels), 256,
                        targets=val_targets)
    return train_ds, val_ds, teacher


def _new_model(config: TrainConfig, pre: Preprocessing, num_classes: int, steps_per_epoch: int):
    """The architecture built (across devices when there are several), optionally initialised from a
    registered model, and compiled with AdamW on the run's learning-rate schedule."""
    from ..models.architectures import build

    loss, accuracy = _loss_and_metric(config, num_classes)
    strategy = distribution_strategy()
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = build(config.arch, num_classes, pre)
        if config.init_from:
            copied = initialise_from(model, config.init_from)
            print(f"Initialised {copied} layers from {config.init_from}", flush=True)
        model.compile(optimizer=keras.optimizers.AdamW(learning_rate_schedule(config, steps_per_epoch),
                                                       weight_decay=config.weight_decay),
                      loss=loss, metrics=[accuracy])
    return model


def _loss_and_metric(config: TrainConfig, num_classes: int):
    """Label-smoothed cross-entropy and accuracy, or, when distilling, the mixed distillation loss and
    accuracy against the hard half of the packed targets."""
    if not config.teacher:
        return keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing), "accuracy"
    return (DistillationLoss(num_classes, config.temperature, config.alpha, config.label_smoothing),
            distill_accuracy())


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


def checkpoint_callback(run_dir: Path, state: dict, patience: int, swa_after: int | None = None):
    """Save the full model (with optimizer) and the run state each epoch; keep the best weights; stop early;
    after epoch `swa_after`, fold each epoch's weights into the running SWA mean. Each file is written
    under a temporary name and then renamed, and a stop signal waits for the writing to end, so the
    files on disk always agree with each other."""
    class Checkpoint(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = {k: float(v) for k, v in (logs or {}).items()}
            lr = self.model.optimizer.learning_rate
            logs["lr"] = float(keras.ops.convert_to_numpy(lr))
            with signals_deferred():
                for key, value in logs.items():
                    state["history"].setdefault(key, []).append(value)
                state["epochs_done"] = epoch + 1
                score = logs.get("val_accuracy", -logs.get("val_loss", 0.0))
                if score > state["best_score"]:
                    state["best_score"], state["best_epoch"], state["wait"] = score, epoch + 1, 0
                    replace_atomically(run_dir / "best.weights.h5", self.model.save_weights)
                else:
                    state["wait"] += 1
                if swa_after is not None and epoch + 1 > swa_after:
                    fold_into_average(run_dir, state, self.model, epoch + 1)
                state["elapsed_s"] = state["elapsed_before_s"] + time.time() - state["started"]
                replace_atomically(run_dir / "checkpoint.keras", self.model.save)
                replace_atomically(run_dir / "state.json",
                                    lambda path: path.write_text(json.dumps(state, indent=1)))
            if patience and state["wait"] >= patience:
                print(f"\nEarly stopping: no val_accuracy gain for {patience} epochs "
                      f"(best epoch {state['best_epoch']}).", flush=True)
                self.model.stop_training = True

    return Checkpoint()


def has_epochs_left(state: dict, config: TrainConfig) -> bool:
    """Whether the run would train on: epochs remain and early stopping has not ended it."""
    return state["epochs_done"] < config.epochs and state["wait"] < (config.patience or math.inf)


def finished_run(run_dir: Path) -> dict:
    """The state of a run that was stopped for good (killed by a time limit, say), to ship its best epoch."""
    state_file = run_dir / "state.json"
    if not (state_file.exists() and (run_dir / "best.weights.h5").exists()):
        raise ValueError(f"nothing to finish: {run_dir} holds no state.json and best.weights.h5 of an earlier run")
    return json.loads(state_file.read_text())


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
