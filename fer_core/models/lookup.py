"""Finding models: where they are looked for, listing them, one by id, and each label set's default.

Models are looked for, in this order, in
1. `$FER_MODELS_DIR` when it is set, else a checkout's `models/` (the repository root beside the package), else a
   per-user folder (`$XDG_DATA_HOME/fer_core/models`, by default `~/.local/share/fer_core/models`): the *models
   folder*, where `train`, `export` and `ensemble` write;
2. the defaults packaged in the wheel (`fer_core/default_models/`, each label set's default model and its card,
   copied there from `models/` when the wheel is built; absent in a checkout).
An id found in the models folder hides a packaged one of the same id.
"""
from __future__ import annotations

import logging
import os
from functools import partial
from pathlib import Path

from ..base.labels import label_set_name
from .card import CARD_FILE, ModelInfo, RegistryError
from .card_store import CardCache, read_card, update_card

log = logging.getLogger(__name__)

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # fer_core/
PACKAGED_MODELS_DIR = PACKAGE_ROOT / "default_models"  # filled by setup.py's build step, in the wheel only
NO_MODELS = "no models are registered; train one with `python -m fer_core train ...`"


def checkout_models_dir() -> Path | None:
    """The `models/` folder of the checkout fer_core runs from (None for an installed package)."""
    root = PACKAGE_ROOT.parent
    return root / "models" if (root / "pyproject.toml").is_file() and (root / "models").is_dir() else None


def user_models_dir() -> Path:
    """The models folder of an installed fer_core run outside a checkout without `$FER_MODELS_DIR`."""
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data).expanduser() / "fer_core" / "models"


def default_models_dir() -> Path:
    """The models folder: `$FER_MODELS_DIR`, else the checkout's `models/`, else `user_models_dir()`."""
    env = os.environ.get("FER_MODELS_DIR")
    if env:
        return Path(env).expanduser()
    return checkout_models_dir() or user_models_dir()


def model_roots(models_dir: Path | None = None) -> list[Path]:
    """The folders searched for models, first match wins: `models_dir` alone when given, else the models
    folder then the packaged defaults (when this is an installed wheel that has them)."""
    if models_dir:
        return [Path(models_dir)]
    roots = [default_models_dir()]
    if PACKAGED_MODELS_DIR.is_dir():
        roots.append(PACKAGED_MODELS_DIR)
    return roots


def model_source(info: ModelInfo) -> str:
    """Where a model came from, in words: `FER_MODELS_DIR`, `checkout`, `user folder`, `packaged` or `folder`
    (a model folder named by its path)."""
    parent = Path(info.path).resolve().parent
    env = os.environ.get("FER_MODELS_DIR")
    candidates = [("FER_MODELS_DIR", Path(env).expanduser() if env else None), ("checkout", checkout_models_dir()),
                  ("packaged", PACKAGED_MODELS_DIR), ("user folder", user_models_dir())]
    return next((name for name, root in candidates if root is not None and parent == root.resolve()), "folder")


def is_packaged(info: ModelInfo) -> bool:
    """True for a default shipped inside the installed package (read-only: copy it to change its card)."""
    return Path(info.path).resolve().parent == PACKAGED_MODELS_DIR.resolve()


def list_models(models_dir: Path | None = None, cards: CardCache | None = None) -> list[ModelInfo]:
    """Every complete model folder under `model_roots(models_dir)` (an id in an earlier root hides a later
    one), sorted by label set, then each set's default first (the models folder's before a packaged one),
    then id. Cards are read through `cards` when given, so unchanged cards are not parsed again; a folder
    whose card is unreadable or breaks the card schema is skipped with a warning."""
    read = cards.read if cards is not None else read_card
    found: dict[str, tuple[int, ModelInfo]] = {}
    for rank, root in enumerate(model_roots(models_dir)):
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            if folder.name in found or not (folder / CARD_FILE).exists():
                continue
            try:
                info = ModelInfo(folder.name, folder, read(folder))
                _ = info.model_card  # validates: a broken card is skipped here, not fatal later
            except (OSError, ValueError) as err:
                log.warning("skipping model folder %s: unreadable %s (%s)", folder, CARD_FILE, err)
                continue
            if info.model_file.exists():
                found[info.id] = (rank, info)
    return [info for rank, info in sorted(found.values(), key=lambda r: (
        len(r[1].labels) != 7, r[1].label_set, not r[1].is_default(), r[0], r[1].id))]


def models_stamp(models_dir: Path | None = None) -> tuple:
    """A cheap fingerprint of what `list_models` reads: each model folder's modification time and its card's
    (inode, size, modification time), in every root. Cards and model files are written by renaming a temp file
    into their folder, which touches it, so while the stamp is unchanged a long-lived process (`serve`) can keep
    its listing (a sixth of the time of listing again, which validates every card). Weights rewritten in place are
    the loader's to notice (`loading.files_stamp`)."""
    stamp = []
    for root in model_roots(models_dir):
        try:
            with os.scandir(root) as entries:
                folders = [(e.path, e.stat().st_mtime_ns) for e in entries if e.is_dir()]
        except OSError:
            continue
        for path, mtime in folders:
            try:
                st = os.stat(os.path.join(path, CARD_FILE))
                stamp.append((path, mtime, st.st_ino, st.st_size, st.st_mtime_ns))
            except OSError:
                stamp.append((path, mtime))
    return tuple(sorted(stamp))


def get_model(model_id: str, models_dir: Path | None = None) -> ModelInfo:
    """The registered model `model_id` (an id in the search roots, or a path to a model folder). A folder
    named by path whose card breaks the schema raises `card.CardError`, naming the file and the field."""
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


def set_default(model_id: str, models_dir: Path | None = None) -> ModelInfo:
    """Make `model_id` the default model of its label set (and no other model of that set). Packaged
    defaults are read-only: a model of the models folder marked default comes before them."""
    chosen = get_model(model_id, models_dir)
    for info in list_models(models_dir):
        if info.labels == chosen.labels and info.is_default() != (info.id == chosen.id) and not is_packaged(info):
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


def training_record(model_id: str) -> dict:
    """A registered model's training record (command, config, budget, history and its own lineage:
    `init_from` parents and ensemble `members`), kept in the card of a model derived from it."""
    training = get_model(model_id).card.get("training", {})
    keys = ("command", "config", "best_epoch", "epochs_run", "wall_time_s", "device", "precision_policy",
            "finished_at", "history", "swa", "init_from", "members")
    return {"id": model_id, **{k: training[k] for k in keys if k in training}}
