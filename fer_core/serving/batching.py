"""Classifying face crops from many threads in shared batches: `BatchingClassifier` wraps one model so
crops that arrive while it is busy go through the next forward pass together (used by `batch` and `serve`).
"""
from __future__ import annotations

import queue
import threading

import numpy as np


class _Job:
    __slots__ = ("x", "tta", "done", "result", "error")

    def __init__(self, x, tta):
        self.x, self.tta, self.done, self.result, self.error = x, tta, threading.Event(), None, None


class BatchingClassifier:
    """A `predict.Classifier` shared by many threads: crops that arrive while the model is busy are
    classified together in the next forward pass (one worker thread per model), so concurrent
    requests or images cost one batched call instead of many small ones, with no added wait.

    Everything but `predict` is the wrapped classifier's (`labels`, `id`, `resolve_tta`, `model` …).
    """

    def __init__(self, classifier, max_batch: int = 64):
        self.classifier = classifier
        self.max_batch = int(max_batch)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.calls = 0  # forward passes run (batches), for tests and benchmarks

    def __getattr__(self, name):
        return getattr(self.__dict__["classifier"], name)

    def predict(self, crops, tta=None) -> np.ndarray:
        """Class probabilities (N, K) for uint8 crops, computed in a batch shared with other callers."""
        x = self.classifier.preprocessing.apply(crops) if len(crops) else None
        if x is None:
            return np.zeros((0, len(self.classifier.labels)), np.float32)
        job = _Job(x, tta)
        with self._lock:
            queued = not self._closed
            if queued:
                self._ensure_worker()
                self._queue.put(job)
        if not queued:  # dropped by its owner (e.g. serve's model pool): classify here, no new thread
            return self.classifier.predict_preprocessed(x, tta=tta)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def close(self) -> None:
        """Stop the worker thread (it also stops with the process); later calls classify in the caller's thread."""
        with self._lock:
            self._closed, thread, self._thread = True, self._thread, None
            if thread is not None:
                self._queue.put(None)  # after every queued job: they are all answered first
        if thread is not None:
            thread.join(timeout=10)

    def _ensure_worker(self) -> None:
        """Start the worker thread if it is not running (call with `_lock` held)."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._serve, name="fer-batcher", daemon=True)
            self._thread.start()

    def _serve(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs, n = [job], len(job.x)
            while n < self.max_batch:  # take whatever else is already waiting, never wait for more
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                jobs.append(more)
                n += len(more.x)
            for tta in {j.tta for j in jobs}:
                self._run([j for j in jobs if j.tta == tta], tta)

    def _run(self, jobs: list[_Job], tta) -> None:
        try:
            probs = self.classifier.predict_preprocessed(np.concatenate([j.x for j in jobs]), tta=tta)
            self.calls += 1
            start = 0
            for j in jobs:
                j.result, start = probs[start:start + len(j.x)], start + len(j.x)
        except Exception as err:  # noqa: BLE001 — handed to the waiting callers, who raise it
            for j in jobs:
                j.error = err
        finally:
            for j in jobs:
                j.done.set()
