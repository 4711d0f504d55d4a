"""Card I/O and locks: reading and writing `models/<id>/card.json` safely between processes.

A card is the single source of truth about a model: its label set, preprocessing, how it was trained and what it
scored on which split. Writes are atomic and read-modify-writes hold the folder's lock (`filelock`), so
concurrent writers (evaluate, robustness, --set-default …) each keep their update; `save_model_files` replaces
weights and card together, so no crash leaves new weights beside an old card. Readers see the typed
`card.ModelCard`; this module only moves the JSON.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..base.files import atomic_write, write_temp
from .card import CARD_FILE, MODEL_FILE, PREDICTIONS_DIR, ModelInfo
from .eval_datasets import evaluation_key, migrated_card, same_dataset, split_rows

LOCK_FILE = ".card.lock"  # held while a card is read-modified-written (`card_lock`)
COMMIT_FILE = ".commit.json"  # names the temp weights and card of a `save_model_files` being finished


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


def forget_predictions(folder: Path) -> None:
    """Delete the per-image predictions saved in a model folder whose weights were just replaced (a
    retrained or rebuilt model): they describe the old weights."""
    import shutil

    shutil.rmtree(Path(folder) / PREDICTIONS_DIR, ignore_errors=True)
