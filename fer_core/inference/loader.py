"""One cache of loaded classifiers for the whole process: `load_classifier(model)`.

The Python API (`fer_core.load`), the pages, the REST API's model pool, the commands and the bench scripts all
load models through it, so a model is loaded once per process and all of them follow the same rule for
reloading: an entry is keyed by the model's folder and kept only while the identity of the files it was loaded
from (`models.loading.files_stamp`: card, weights, an ensemble's members) is unchanged. A model retrained,
re-exported or re-carded on disk is loaded again on its next use, with no restart.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from ..models.card import ModelInfo
from ..models.loading import files_stamp
from ..models.lookup import get_model, resolve_model
from .predict import Classifier

MAX_LOADED = 8  # classifiers kept (least recently used dropped first); the 4-member ensemble holds ~5 M parameters


class ClassifierCache:
    """Loaded classifiers by model folder, each with the stamp of the files it was loaded from; at most
    `max_loaded` kept. Thread-safe: a model is loaded once however many threads ask for it at the same time."""

    def __init__(self, max_loaded: int = MAX_LOADED):
        self.max_loaded = max(1, int(max_loaded))
        self._entries: OrderedDict[str, tuple[tuple, Classifier]] = OrderedDict()  # least recently used first
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, info: ModelInfo, warm: bool = False) -> Classifier:
        """The classifier of `info`'s folder: the cached one while its files are unchanged, else loaded now (the
        card re-read from disk). `warm`: also compile it for a few faces (`warm_up.warm_up`) before returning."""
        key = str(Path(info.path).resolve())
        stamp = files_stamp(info)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            with self._guard:
                hit = self._entries.get(key)
                if hit is not None and hit[0] == stamp:
                    self._entries.move_to_end(key)
                    clf = hit[1]
                else:
                    clf = None
            if clf is None:
                clf = Classifier.from_registry(get_model(key))  # the card as it is on disk now
                with self._guard:
                    self._entries[key] = (stamp, clf)
                    self._entries.move_to_end(key)
                    while len(self._entries) > self.max_loaded:
                        self._entries.popitem(last=False)
            if warm and not getattr(clf, "warmed", False):
                from .warm_up import warm_up

                warm_up(clf)
                clf.warmed = True
        return clf

    def forget(self, info: ModelInfo) -> None:
        """Drop `info`'s classifier (a server letting go of a model it no longer keeps loaded)."""
        with self._guard:
            self._entries.pop(str(Path(info.path).resolve()), None)

    def loaded(self) -> list[str]:
        """The folders of the classifiers held, least recently used first."""
        with self._guard:
            return list(self._entries)

    def clear(self) -> None:
        with self._guard:
            self._entries.clear()


_CACHE = ClassifierCache()


def load_classifier(model: str | ModelInfo | None = None, models_dir=None, warm: bool = False) -> Classifier:
    """A registered model ready for inference (`Classifier`: `.labels`, `.predict(crops)`), by id, model folder or
    `ModelInfo`; None means the default model. Loaded once per process and again when its files change."""
    return _CACHE.get(resolve_model(model, models_dir=models_dir), warm=warm)


def forget_classifier(model: str | ModelInfo) -> None:
    """Drop a model from the process's cache (its classifier is freed once no caller holds it)."""
    _CACHE.forget(model if isinstance(model, ModelInfo) else resolve_model(model))


def loaded_classifiers() -> list[str]:
    """The model folders whose classifiers the process's cache holds."""
    return _CACHE.loaded()
