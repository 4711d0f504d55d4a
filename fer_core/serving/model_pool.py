"""The REST API's models: each registered model loaded on first use through the process's one classifier cache
(`inference.loader`), shared behind a `BatchingClassifier`, and at most a few kept loaded (least recently used
dropped first); a model whose files change on disk is loaded again on a request after the change.
"""
from __future__ import annotations

import threading
import time

from .api_error import ApiError

DEFAULT_MAX_MODELS = 4  # loaded at once; the 4-member ensemble alone holds ~5 M parameters
DEFAULT_RECHECK_S = 1.0  # the model folders are looked at (stat calls) at most this often, not on every request


class ModelPool:
    """Registered models, each loaded on first use (once, whatever the concurrency) behind a
    `BatchingClassifier`; at most `max_models` stay loaded, the least recently used dropped first, so a
    client cycling through every model cannot grow the server. Cards are re-read only when their file
    changes. Only ids of the registry are served, never arbitrary folders.

    Whether a folder or file changed is checked at most once per `recheck_s` seconds: checking stats every model's
    folder and card, a tenth of the server's time per request when done on each one (bench/bench_api.py)."""

    def __init__(self, models_dir=None, max_models: int = DEFAULT_MAX_MODELS, recheck_s: float = DEFAULT_RECHECK_S):
        from collections import OrderedDict

        from ..models.registry import CardCache

        self.models_dir, self.max_models = models_dir, max(1, int(max_models))
        self.recheck_s = max(0.0, float(recheck_s))
        self._loaded: OrderedDict = OrderedDict()  # id → (ModelInfo, BatchingClassifier), least recently used first
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._cards = CardCache()
        self._listing: tuple | None = None  # (models_stamp, list_models, time checked) of the last listing
        self._answered: dict = {}  # model id asked (None: the default) → (time checked, its BatchingClassifier)

    def registered(self) -> list:
        """The registered models, listed again only when a model folder or card changed (`models_stamp`):
        listing validates every card, a tenth of a small request's time when done on each."""
        from ..models.registry import list_models, models_stamp

        now = time.monotonic()
        with self._guard:
            if self._listing is not None and now - self._listing[2] < self.recheck_s:
                return self._listing[1]
        stamp = models_stamp(self.models_dir)
        with self._guard:
            if self._listing is not None and self._listing[0] == stamp:
                self._listing = (stamp, self._listing[1], now)
                return self._listing[1]
        models = list_models(self.models_dir, cards=self._cards)
        with self._guard:
            self._listing = (stamp, models, now)
        return models

    def resolve(self, model_id: str | None):
        """The `ModelInfo` of `model_id` (None: the default model); 404 when it is not registered."""
        from ..models.registry import NO_MODELS, pick_default

        models = self.registered()
        if model_id is None:
            if not models:
                raise ApiError(404, NO_MODELS)
            return pick_default(models)
        info = next((m for m in models if m.id == model_id), None)
        if info is None:
            known = ", ".join(m.id for m in models) or "none"
            raise ApiError(404, f"no model {model_id!r}; registered models: {known}")
        return info

    def get(self, model_id: str | None):
        """The shared classifier of a model, loading it the first time (blocking: call from a thread). It comes
        from `inference.loader.load_classifier`, so a model whose files changed on disk (retrained, re-exported)
        is loaded again and its old `BatchingClassifier` closed: the answers follow the files, with no restart."""
        from .batching import BatchingClassifier
        from ..inference.loader import load_classifier
        from ..models.registry import RegistryError

        now = time.monotonic()
        with self._guard:
            checked, answer = self._answered.get(model_id, (None, None))
        if checked is not None and now - checked < self.recheck_s:
            return answer
        info = self.resolve(model_id)
        with self._guard:
            lock = self._locks.setdefault(info.id, threading.Lock())
        with lock:
            try:
                clf = load_classifier(info)
            except (RegistryError, OSError, ValueError, ImportError) as err:  # ImportError: an extra is missing
                raise ApiError(500, f"model {info.id!r} could not be loaded: {err}") from None
            with self._guard:
                held = self._loaded.get(info.id)
                if held is not None and held[1].classifier is clf:
                    self._loaded.move_to_end(info.id)
                    self._answered[model_id] = (now, held[1])
                    return held[1]
            found = BatchingClassifier(clf)
            self._keep(info, found)
            with self._guard:
                self._answered[model_id] = (now, found)
        return found

    def _keep(self, info, clf) -> None:
        """Add a loaded model, closing an older load of the same id and the least recently used models past
        `max_models` (a request still holding one finishes on it: a closed `BatchingClassifier` classifies in the
        caller's thread); the ones dropped leave the process's classifier cache too, so memory stays bounded."""
        from ..inference.loader import forget_classifier

        with self._guard:
            replaced = self._loaded.pop(info.id, None)
            self._loaded[info.id] = (info, clf)
            dropped = [self._loaded.popitem(last=False)[1] for _ in range(len(self._loaded) - self.max_models)]
            self._answered.clear()  # an answer kept may be one just closed
        for old_info, old in ([replaced] if replaced is not None else []) + dropped:
            old.close()
        for old_info, _ in dropped:
            forget_classifier(old_info)
        if dropped:
            import gc

            gc.collect()

    def loaded(self) -> list[str]:
        with self._guard:
            return sorted(self._loaded)

    def close(self) -> None:
        with self._guard:
            loaded = [clf for _, clf in self._loaded.values()]
        for clf in loaded:
            clf.close()
