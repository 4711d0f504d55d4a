"""Training: dataset → tf.data pipeline → Keras fit → `models/<id>/` with a model card.

`train` is the whole run, in steps that each have their module: which faces to learn from
(`training.selection`), the input pipeline and its augmentation (`training.input_pipeline`,
`training.augment`), the fit loop with its resumable checkpoints and safe stop (`training.fit`,
`training.safe_stop`), stochastic weight averaging (`training.swa`) and the card (`training.card`).
The best epoch's weights are what ships — or, with `swa`, the average of the last epochs' weights.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np

from ..base.labels import label_set_name, parse_label_set
from ..base.runtime import set_precision
from ..data.datasets import load_dataset
from ..data.votes import attach_votes, relabel, training_labels
from ..models import registry
from .card import training_card
from .config import TrainConfig
from .fit import finished_run, fit_run
from .selection import exclude_training_rows, split_for_training
from .swa import apply_swa


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

    train_rows, val_rows, dataset_record = _training_rows(config, full, labels)
    keras.utils.set_random_seed(config.seed)
    policy = set_precision(config.mixed_precision)
    if finish:
        state = finished_run(run_dir)
        print(f"Finishing {out.name}: stopped after epoch {state['epochs_done']} of {config.epochs}, "
              f"best epoch {state['best_epoch']}", flush=True)
    else:
        state = fit_run(config, pre, labels, train_rows, val_rows, run_dir, resume, policy, verbose)

    set_precision("off")  # the shipped twin computes in float32 and carries no optimizer state
    final = build(config.arch, len(labels), pre)
    final.load_weights(run_dir / "best.weights.h5")
    swa = apply_swa(final, run_dir, state, pre.prepare_uint8(train_rows.images), pre, config) if config.swa else None
    if swa:
        swa["val_accuracy"] = _accuracy(final, pre.apply(val_rows.images), val_rows.labels)
    card = training_card(config, model_id=out.name, arch=arch, labels=labels, pre=pre, model=final,
                         dataset=dataset_record, state=state, policy=policy, command=command, swa=swa)
    if (out / registry.CARD_FILE).exists():  # keep the default flag a maintainer set
        card["default"] = registry.read_card(out).get("default", False)

    def write_weights(path: Path) -> None:
        final.save(path)
        card["file_size_bytes"] = path.stat().st_size

    registry.save_model_files(out, card, write_weights)  # a crash never leaves new weights beside an old card
    registry.forget_predictions(out)
    return registry.ModelInfo(out.name, out, card)


def _training_rows(config: TrainConfig, full, labels):
    """(training rows, validation rows, the card's dataset record): `full` narrowed to `labels` (or relabelled
    by the FER+ crowd), split, cleaned of excluded faces and cut to `config.limit`."""
    if config.label_source == "fer2013":
        data, label_record = (full.subset(labels) if tuple(labels) != full.classes else full), None
    else:  # every split relabelled by the crowd; faces without a usable FER+ label are left out
        data, label_record = relabel(full, labels, config.label_source)
    train_rows, val_rows, val_source = split_for_training(data, config.seed)
    train_rows, excluded = exclude_training_rows(train_rows, full, config)
    if config.limit:
        keep = np.random.default_rng(config.seed).permutation(len(train_rows))[:config.limit]
        train_rows = train_rows._take(np.sort(keep))
    record = {"source": str(config.data), "fingerprint": full.fingerprint, "layout": full.layout,
              "split_sizes": {"train": len(train_rows), "validation": len(val_rows)},
              "validation_source": val_source, "excluded_from_training": excluded,
              "label_source": label_record or {"label_source": "fer2013"}}
    return train_rows, val_rows, record


def _accuracy(model, inputs: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of `model` on prepared inputs (for the card's SWA record)."""
    probs = model.predict(inputs, batch_size=256, verbose=0)
    return round(float((probs.argmax(1) == labels).mean()), 4)


def _default_id(config: TrainConfig, labels) -> str:
    crowd = "" if config.label_source == "fer2013" else "ferplus_"
    return f"{config.arch}_{crowd}{'7class' if len(labels) == 7 else label_set_name(labels).replace(',', '-')}"
