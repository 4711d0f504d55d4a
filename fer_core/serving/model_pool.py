"""The REST API's models: each registered model loaded once on first use, shared behind a
`BatchingClassifier`, and at most a few kept loaded (least recently used dropped first).
"""
from __future__ import annotations

import threading

from .api_error import ApiError

DEFAULT_MAX_MODELS = 4  # loaded at once; the 4-member ensemble alone holds ~5 M parameters


class ModelPool:
    """Registered models, each loaded on first use (once, whatever the concurrency) behind a
    `BatchingClassifier`; at most `max_models` stay loaded, the least recently used dropped first, so a
    client cycling through every model cannot grow the server. Cards are re-read only when their file
    changes. Only ids of the registry are served, never arbitrary folders."""

    def __init__(self, models_dir=None, max_models: int = DEFAULT_MAX_MODELS):
        from collections import OrderedDict

        from ..models.registry import CardCache

        self.models_dir, self.max_models = models_dir, max(1, int(max_models))
        self._loaded: OrderedDict = OrderedDict()  # least recently used first
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._cards = CardCache()

    def registered(self) -> list:
        from ..models.registry import list_models

        return list_models(self.models_dir, cards=self._cards)

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
        """The shared classifier of a model, loading it the first time (blocking: call from a thread)."""
        from .batching import BatchingClassifier
        from ..inference.predict import Classifier
        from ..models.registry import RegistryError

        info = self.resolve(model_id)
        with self._guard:
            if info.id in self._loaded:
                self._loaded.move_to_end(info.id)
                return self._loaded[info.id]
            lock = self._locks.setdefault(info.id, threading.Lock())
        with lock:
            with self._guard:
                found = self._loaded.get(info.id)
            if found is None:
                try:
                    found = BatchingClassifier(Classifier.from_registry(info))
                except (RegistryError, OSError, ValueError) as err:
                    raise ApiError(500, f"model {info.id!r} could not be loaded: {err}") from None
                self._keep(info.id, found)
        return found

    def _keep(self, model_id: str, clf) -> None:
        """Add a loaded model, closing the least recently used ones past `max_models` (a request still
        holding one finishes on it: a closed `BatchingClassifier` classifies in the caller's thread)."""
        with self._guard:
            self._loaded[model_id] = clf
            dropped = [self._loaded.popitem(last=False)[1] for _ in range(len(self._loaded) - self.max_models)]
        for old in dropped:
            old.close()
        if dropped:
            import gc

            gc.collect()

    def loaded(self) -> list[str]:
        with self._guard:
            return sorted(self._loaded)

    def close(self) -> None:
        with self._guard:
            loaded = list(self._loaded.values())
        for clf in loaded:
            clf.close()
