"""The model registry: every `models/<id>/` folder with a `model.keras` and a `card.json`.

A card is the single source of truth about a model: its label set, preprocessing, how it was
trained (command, config, history) and what it scored on which split. Pages and the CLI read
cards; evaluation writes its results back into them.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .labels import label_set_name
from .preprocess import Preprocessing

MODEL_FILE = "model.keras"
CARD_FILE = "card.json"


class RegistryError(LookupError):
    """A model id that is not registered, or a model folder that is incomplete."""


def default_models_dir() -> Path:
    """$FER_MODELS_DIR, else the repo's `models/` folder."""
    env = os.environ.get("FER_MODELS_DIR")
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[1] / "models"


@dataclass
class ModelInfo:
    """A registered model: its id, folder and card."""

    id: str
    path: Path
    card: dict

    @property
    def model_file(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.card["labels"])

    @property
    def label_set(self) -> str:
        return label_set_name(self.labels)

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_dict(self.card.get("preprocessing", {}))

    @property
    def name(self) -> str:
        return self.card.get("name", self.id)

    def metrics(self, split: str) -> dict | None:
        """Saved evaluation results on `split` (`validation` or `test`), or None."""
        return self.card.get("metrics", {}).get(split)

    def is_default(self) -> bool:
        return bool(self.card.get("default"))


def read_card(folder: Path) -> dict:
    with open(Path(folder) / CARD_FILE, encoding="utf-8") as fh:
        return json.load(fh)


def write_card(folder: Path, card: dict) -> None:
    """Write a card atomically, so a crash never leaves half a card."""
    folder = Path(folder)
    tmp = folder / (CARD_FILE + ".tmp")
    tmp.write_text(json.dumps(card, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, folder / CARD_FILE)


def list_models(models_dir: Path | None = None) -> list[ModelInfo]:
    """Every complete model folder under `models_dir`, sorted by label set then id."""
    root = Path(models_dir) if models_dir else default_models_dir()
    found = []
    if root.is_dir():
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            if (folder / MODEL_FILE).exists() and (folder / CARD_FILE).exists():
                try:
                    found.append(ModelInfo(folder.name, folder, read_card(folder)))
                except (OSError, ValueError):
                    continue  # an unreadable card is skipped, not fatal
    return sorted(found, key=lambda m: (len(m.labels) != 7, m.label_set, not m.is_default(), m.id))


def get_model(model_id: str, models_dir: Path | None = None) -> ModelInfo:
    """The registered model `model_id` (an id under models/, or a path to a model folder)."""
    as_path = Path(model_id)
    if (as_path / CARD_FILE).exists() and (as_path / MODEL_FILE).exists():
        return ModelInfo(as_path.resolve().name, as_path.resolve(), read_card(as_path))
    models = list_models(models_dir)
    for info in models:
        if info.id == model_id:
            return info
    known = ", ".join(m.id for m in models) or "none (train one with `python -m fer_core train`)"
    raise RegistryError(f"no model {model_id!r}; registered models: {known}")


def default_model(labels=None, models_dir: Path | None = None) -> ModelInfo | None:
    """The model marked default for a label set (any label set when None), else the first one."""
    models = [m for m in list_models(models_dir) if labels is None or m.labels == tuple(labels)]
    return next((m for m in models if m.is_default()), models[0] if models else None)


def load_keras_model(info: ModelInfo):
    """The Keras model of a registered model, loaded for inference (no optimizer state)."""
    import keras

    return keras.models.load_model(info.model_file, compile=False)


def save_metrics(info: ModelInfo, split: str, metrics: dict) -> None:
    """Store evaluation results for `split` in the model's card (re-reading it first)."""
    card = read_card(info.path)
    card.setdefault("metrics", {})[split] = metrics
    write_card(info.path, card)
    info.card = card


def set_default(model_id: str, models_dir: Path | None = None) -> ModelInfo:
    """Make `model_id` the default model of its label set (and no other model of that set)."""
    chosen = get_model(model_id, models_dir)
    for info in list_models(models_dir):
        if info.labels == chosen.labels and info.is_default() != (info.id == chosen.id):
            card = read_card(info.path)
            card["default"] = info.id == chosen.id
            write_card(info.path, card)
    return get_model(model_id, models_dir)
