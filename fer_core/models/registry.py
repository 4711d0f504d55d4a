"""The model registry: every `models/<id>/` folder with a `model.keras` and a `card.json`.

A card is the single source of truth about a model: its label set, preprocessing, how it was
trained (command, config, history) and what it scored on which split. Pages and the CLI read
cards; evaluation writes its results back into them.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ..base.files import atomic_write, write_temp
from ..base.labels import label_set_name
from .eval_datasets import dataset_name, dataset_selector, evaluation_key, migrated_card, same_dataset, split_rows
from .preprocess import Preprocessing

log = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
CARD_FILE = "card.json"
MODEL_FILES = {"keras": MODEL_FILE, "litert": "model.tflite", "onnx": "model.onnx"}  # card `format` → file
ENSEMBLE_FILE = "ensemble.json"  # an ensemble's members by id and content hash (fer_core.models.ensemble)
PREDICTIONS_DIR = "eval"  # per-image predictions saved by `evaluate`, under each model's folder
LOCK_FILE = ".card.lock"  # held while a card is read-modified-written (`card_lock`)
COMMIT_FILE = ".commit.json"  # names the temp weights and card of a `save_model_files` being finished


class RegistryError(LookupError):
    """A model id that is not registered, or a model folder that is incomplete."""


def default_models_dir() -> Path:
    """$FER_MODELS_DIR, else the repo's `models/` folder."""
    env = os.environ.get("FER_MODELS_DIR")
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[2] / "models"


@dataclass
class ModelInfo:
    """A registered model: its id, folder and card."""

    id: str
    path: Path
    card: dict

    @property
    def format(self) -> str:
        """`keras` (a trained model), or `litert` / `onnx` for an edge export (see fer_core.training.export)."""
        return str(self.card.get("format", "keras"))

    @property
    def model_file(self) -> Path:
        """The file that is the model: its weights, or an ensemble's `ensemble.json` naming its members' files."""
        ensemble = self.card.get("ensemble")
        if self.format == "keras" and isinstance(ensemble, dict) and ensemble.get("file") == ENSEMBLE_FILE:
            return self.path / ENSEMBLE_FILE
        return self.path / MODEL_FILES.get(self.format, MODEL_FILE)

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

    @property
    def evaluations(self) -> dict[str, dict]:
        """Every saved evaluation, keyed `<dataset key>/<split>`; an old card's `metrics` (keyed by split
        alone) is read as evaluations on the dataset its results recorded."""
        return migrated_card(self.card).get("evaluations", {})

    def home_dataset(self) -> dict:
        """The dataset `metrics(split)` means by default: the one the model was trained on (matched by
        name), else the one it was first evaluated on."""
        trained = self.card.get("dataset") or {}
        if trained.get("source") or trained.get("name"):
            selector = {"id": trained.get("id"), "name": dataset_name(trained)}
            if any(same_dataset(e.get("dataset") or {}, selector) for e in self.evaluations.values()):
                return selector
        first = next(iter(self.evaluations.values()), None)  # card order: a re-evaluation keeps its slot
        return dataset_selector((first.get("dataset") or {}) if first else trained)

    def metrics(self, split: str, dataset: dict | None = None) -> dict | None:
        """Saved evaluation results on `split` (`validation` or `test`) of `dataset` (a selector from
        `dataset_selector`; default the home dataset), the newest when several match, or None."""
        dataset = dataset if dataset is not None else self.home_dataset()
        found = [e for e in self.evaluations.values()
                 if e.get("split") == split and same_dataset(e.get("dataset") or {}, dataset)]
        return max(found, key=lambda e: str(e.get("evaluated_at") or "")) if found else None

    def is_default(self) -> bool:
        return bool(self.card.get("default"))


def read_card(folder: Path) -> dict:
    """A model folder's card, after finishing a `save_model_files` that a crash interrupted."""
    if (Path(folder) / COMMIT_FILE).exists():
        with card_lock(folder):
            _finish_commit(Path(folder))
    with open(Path(folder) / CARD_FILE, encoding="utf-8") as fh:
        return json.load(fh)


def write_card(folder: Path, card: dict) -> None:
    """Write a card atomically through a temp file of its own, so a crash never leaves half a card and
    concurrent writers never share a temp name. Read-modify-write callers use `update_card`."""
    atomic_write(Path(folder) / CARD_FILE, _card_json(card), mode=_CARD_MODE, fsync=True)


def card_lock(folder: Path, timeout: float = 120):
    """An inter-process lock on one model folder's card (`filelock`), held across a read-modify-write."""
    from filelock import FileLock

    return FileLock(str(Path(folder) / LOCK_FILE), timeout=timeout)


def update_card(folder: Path, change) -> dict:
    """Re-read a card, apply `change(card)` (which edits it in place) and write it, all under the
    folder's lock: concurrent writers (evaluate, robustness, --set-default …) each keep their update."""
    with card_lock(folder):
        card = read_card(folder)
        change(card)
        write_card(folder, card)
    return card


def save_model_files(folder: Path, card: dict, write_model, model_file: str = MODEL_FILE) -> None:
    """Write a model's weights (`write_model(path)`, e.g. `keras_model.save`) and its card so that no
    crash leaves new weights beside an old card: both are written to temp files, a commit record naming
    them is written atomically, then both are moved into place. A crash after the record is finished
    by the next `read_card`; one before it leaves the old model untouched. `write_model` may still fill
    in the card (e.g. the file's size): the card is written after it returns."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with card_lock(folder):
        _finish_commit(folder)
        weights = write_temp(folder / model_file, write_model)  # its name keeps the suffix Keras checks
        try:
            plan = {model_file: weights.name,
                    CARD_FILE: write_temp(folder / CARD_FILE, _card_json(card), mode=_CARD_MODE, fsync=True).name}
        except BaseException:
            weights.unlink(missing_ok=True)
            raise
        atomic_write(folder / COMMIT_FILE, _card_json(plan), mode=_CARD_MODE, fsync=True)
        _finish_commit(folder)


_CARD_MODE = 0o644  # whatever the umask: a server running as another user must read the cards


def _card_json(content: dict) -> str:
    return json.dumps(content, indent=1, sort_keys=False) + "\n"


def _finish_commit(folder: Path) -> None:
    """Move the files a commit record names into place, then drop the record (call under the lock)."""
    record = folder / COMMIT_FILE
    try:
        plan = json.loads(record.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return
    for final, temp in plan.items():
        if (folder / temp).exists():
            os.replace(folder / temp, folder / final)
    record.unlink(missing_ok=True)


class CardCache:
    """Cards parsed once and re-read only when their file changes (inode, size, modification time), for
    long-lived processes such as `serve`. The dicts it returns are shared: do not modify them."""

    def __init__(self):
        self._cards: dict[Path, tuple[tuple, dict]] = {}

    def read(self, folder: Path) -> dict:
        st = os.stat(Path(folder) / CARD_FILE)
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        hit = self._cards.get(Path(folder))
        if hit is None or hit[0] != stamp or (Path(folder) / COMMIT_FILE).exists():
            hit = (stamp, read_card(folder))
            self._cards[Path(folder)] = hit
        return hit[1]


def list_models(models_dir: Path | None = None, cards: CardCache | None = None) -> list[ModelInfo]:
    """Every complete model folder under `models_dir`, sorted by label set then id (cards read through
    `cards` when given, so unchanged cards are not parsed again)."""
    root = Path(models_dir) if models_dir else default_models_dir()
    read = cards.read if cards is not None else read_card
    found = []
    if root.is_dir():
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            if (folder / CARD_FILE).exists():
                try:
                    info = ModelInfo(folder.name, folder, read(folder))
                except (OSError, ValueError) as err:  # an unreadable card is skipped, not fatal
                    log.warning("skipping model folder %s: unreadable %s (%s)", folder, CARD_FILE, err)
                    continue
                if info.model_file.exists():
                    found.append(info)
    return sorted(found, key=lambda m: (len(m.labels) != 7, m.label_set, not m.is_default(), m.id))


def get_model(model_id: str, models_dir: Path | None = None) -> ModelInfo:
    """The registered model `model_id` (an id under models/, or a path to a model folder)."""
    as_path = Path(model_id)
    if (as_path / CARD_FILE).exists():
        info = ModelInfo(as_path.resolve().name, as_path.resolve(), read_card(as_path))
        if info.model_file.exists():
            return info
    models = list_models(models_dir)
    for info in models:
        if info.id == model_id:
            return info
    known = ", ".join(m.id for m in models) or "none (train one with `python -m fer_core train`)"
    raise RegistryError(f"no model {model_id!r}; registered models: {known}")


NO_MODELS = "no models are registered; train one with `python -m fer_core train ...`"


def pick_default(infos: list[ModelInfo], labels=None) -> ModelInfo | None:
    """Among `infos`, those of label set `labels` (all when None): the one marked default, else the first
    (`list_models` sorts each label set's default first); None when there are none."""
    same = [m for m in infos if labels is None or m.labels == tuple(labels)]
    return next((m for m in same if m.is_default()), same[0] if same else None)


def default_model(labels=None, models_dir: Path | None = None) -> ModelInfo | None:
    """The model marked default for a label set (any label set when None), else the first one."""
    return pick_default(list_models(models_dir), labels)


def resolve_model(model=None, labels=None, models_dir: Path | None = None) -> ModelInfo:
    """This model, else the default: `model` as given (a `ModelInfo`), the registered id or folder `model`,
    or — when it is None or "" — the default model of label set `labels` (of any label set when None).
    Raises `RegistryError` for an unknown id or when no model is registered."""
    if isinstance(model, ModelInfo):
        return model
    if model is not None and str(model) != "":
        return get_model(str(model), models_dir)
    info = default_model(labels, models_dir)
    if info is None:
        raise RegistryError(NO_MODELS if labels is None else f"no {label_set_name(labels)} model is registered; "
                            "train one with `python -m fer_core train ...`")
    return info


def load_keras_model(info: ModelInfo):
    """The Keras model of a registered model, loaded for inference (no optimizer state)."""
    import keras

    if info.format != "keras":
        parent = (info.card.get("export") or {}).get("parent")
        raise RegistryError(f"model {info.id!r} is a {info.format} export and has no Keras model"
                            + (f" (its parent is {parent!r})" if parent else ""))
    if info.model_file.name == ENSEMBLE_FILE:  # built from its members' own files, their hashes checked
        from .ensemble_graph import load_ensemble  # members beside the ensemble, else in the models folder

        return load_ensemble(info, [info.path.parent, default_models_dir()], load_keras_model, RegistryError)
    return keras.models.load_model(info.model_file, compile=False)


def load_model(info: ModelInfo):
    """What `predict.Classifier` runs for a registered model: its Keras model, or for an edge export
    (card `format` litert/onnx) a runtime object from `fer_core.models.runtimes` with the same interface."""
    if info.format == "keras":
        return load_keras_model(info)
    return load_runtime(info)


def load_runtime(info: ModelInfo):
    """The runtime of a registered export (card `format` litert or onnx): a `fer_core.models.runtimes.EdgeRuntime`."""
    from .runtimes import RUNTIMES

    if info.format not in RUNTIMES:
        raise RegistryError(f"model {info.id!r} has format {info.format!r}; exports are "
                            f"{' or '.join(RUNTIMES)}")
    try:
        return RUNTIMES[info.format](info)
    except Exception as err:  # noqa: BLE001 — the runtimes raise their own error types for a damaged file
        raise RegistryError(f"could not load {info.model_file}: {err}") from None


def save_metrics(info: ModelInfo, split: str, metrics: dict) -> list[dict]:
    """Store evaluation results for `split` of the dataset `metrics["dataset"]` records in the model's card
    (re-reading it first), beside its results on other datasets. An old-style result on the same split
    of a same-named dataset of the same size is the same data measured before content ids: it is
    replaced. Returns the replaced entries (their prediction files are the caller's to remove)."""
    metrics = {**metrics, "split": split}
    new = metrics.get("dataset") or {}
    dropped: list[dict] = []

    def change(card: dict) -> None:
        migrated = migrated_card(card)  # a copy only when an old `metrics` section moved
        if migrated is not card:
            card.clear()
            card.update(migrated)
        evaluations = card.setdefault("evaluations", {})
        replaced = [k for k, e in evaluations.items()
                    if e.get("split") == split and not (e.get("dataset") or {}).get("id") and new.get("id")
                    and same_dataset(e.get("dataset") or {}, new) and split_rows(e) == split_rows(metrics)]
        key = evaluation_key(new, split)
        slot = replaced[0] if replaced and key not in evaluations else key  # the new result takes the old one's place
        card["evaluations"] = {(key if k == slot else k): (metrics if k == slot else e)
                               for k, e in evaluations.items() if k == slot or k not in replaced}
        card["evaluations"].setdefault(key, metrics)
        dropped.extend(evaluations[k] for k in replaced)

    info.card = update_card(info.path, change)
    return dropped


def save_card_section(info: ModelInfo, section: str, key: str, value) -> None:
    """Store `value` at card[section][key] (re-reading the card under its lock, so concurrent writers are kept)."""
    def change(card: dict) -> None:
        card.setdefault(section, {})[key] = value

    info.card = update_card(info.path, change)


def set_default(model_id: str, models_dir: Path | None = None) -> ModelInfo:
    """Make `model_id` the default model of its label set (and no other model of that set)."""
    chosen = get_model(model_id, models_dir)
    for info in list_models(models_dir):
        if info.labels == chosen.labels and info.is_default() != (info.id == chosen.id):
            update_card(info.path, partial(_set_key, key="default", value=info.id == chosen.id))
    return get_model(model_id, models_dir)


def set_default_tta(model_id: str, mode: str, models_dir: Path | None = None) -> ModelInfo:
    """Record `mode` as the model's default test-time augmentation (`inference.tta` in its card): what
    the app, `predict` and `evaluate` use when not told otherwise. Saved results keep the mode they used."""
    from .tta import tta_mode

    info = get_model(model_id, models_dir)
    mode = tta_mode(mode)
    update_card(info.path, lambda card: _set_key(card.setdefault("inference", {}), "tta", mode))
    return get_model(model_id, models_dir)


def _set_key(card: dict, key: str, value) -> None:
    card[key] = value


def forget_predictions(folder: Path) -> None:
    """Delete the per-image predictions saved in a model folder whose weights were just replaced (a
    retrained or rebuilt model): they describe the old weights."""
    import shutil

    shutil.rmtree(Path(folder) / PREDICTIONS_DIR, ignore_errors=True)


def training_record(model_id: str) -> dict:
    """A registered model's training record (command, config, budget, history and its own lineage:
    `init_from` parents and ensemble `members`), kept in the card of a model derived from it."""
    training = get_model(model_id).card.get("training", {})
    keys = ("command", "config", "best_epoch", "epochs_run", "wall_time_s", "device", "precision_policy",
            "finished_at", "history", "swa", "init_from", "members")
    return {"id": model_id, **{k: training[k] for k in keys if k in training}}
