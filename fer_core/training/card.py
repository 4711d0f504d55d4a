"""The model card of a freshly trained model: what it is, what it learnt from, and exactly how (the command,
config, history, device, precision, starting weights, and the distillation, SWA and stop records).
"""
from __future__ import annotations

import shlex
from dataclasses import asdict
from datetime import datetime, timezone

from ..base.labels import label_set_name
from ..base.runtime import device_description
from ..models import registry
from .config import TrainConfig
from .distill import distillation_record
from .fit import has_epochs_left


def training_card(config: TrainConfig, *, model_id: str, arch, labels, pre, model, dataset: dict, state: dict,
                  policy: str, command: str | None, swa: dict | None) -> dict:
    """The card of `model` trained by `config` (`file_size_bytes` is filled in once the file is written).

    `dataset` is the card's dataset record; `state` the run state of the fit loop; `swa` what stochastic
    weight averaging did (None when off or never reached)."""
    card = {
        "id": model_id,
        "name": config.name or f"{config.arch} ({label_set_name(labels)})",
        "architecture": config.arch,
        "description": arch.description,
        "labels": list(labels),
        "preprocessing": pre.to_dict(),
        "params": int(model.count_params()),
        "file_size_bytes": None,
        "default": False,
        "dataset": dataset,
        "training": {"command": command or command_line(config), "config": asdict(config),
                     "history": state["history"], "best_epoch": state["best_epoch"],
                     "epochs_run": state["epochs_done"], "wall_time_s": round(state.get("elapsed_s", 0.0), 1),
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
    if has_epochs_left(state, config):
        card["training"]["stopped"] = f"interrupted after epoch {state['epochs_done']} of {config.epochs}"
    if config.init_from:  # keep the parent's recipe so the whole chain of commands is on record
        card["training"]["init_from"] = registry.training_record(config.init_from)
    return card


def initial_weights(config: TrainConfig, arch) -> str:
    """What the run started from, for the card: a registered model's layers, or random weights (for a
    transfer-learning backbone that means no ImageNet weights, which cannot be downloaded here)."""
    if config.init_from:
        return f"layers of {config.init_from}"
    return "random (ImageNet weights not used: they cannot be downloaded here)" if arch.pretrainable else "random"


def command_line(config: TrainConfig) -> str:
    """The CLI command that reproduces a run started from Python."""
    return (f"python -m fer_core train --arch {config.arch} --data {shlex.quote(config.data)} "
            f"--labels {config.labels} --epochs {config.epochs} --augment {config.augment} --seed {config.seed}")
