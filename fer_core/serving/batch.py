"""Batch scoring: every face in folders of photos, zips and videos → one Parquet/CSV row per face.

`run_batch` lists what to score (`batch_inputs.expand_inputs`), skips what an earlier run finished,
scores the rest in chunks — on this machine in parallel threads whose face crops are classified
together by a `BatchingClassifier` (`scoring.score_many`), or with `ray_address` in Ray Data actors
(`batch_ray`) — and commits each chunk as a part (`batch_store.ResultStore`), so an interrupted run
resumes where it stopped; unreadable files are listed instead of failing the run.
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, dataclass

import pandas as pd

from .batch_inputs import IMAGE_TYPES, expand_inputs
from .batch_ray import ray_results
from .batch_store import ResultStore
from .batching import BatchingClassifier
from .scoring import ScoreOptions, score_many

CHUNK = 256  # items per written part: the unit of resumption


@dataclass
class BatchResult:
    """What `run_batch` did: the merged table, files scored now / skipped as done, errors, seconds."""

    table: pd.DataFrame
    scored: int
    skipped: int
    errors: list[tuple[str, str]]
    seconds: float
    engine: str

    @property
    def files_per_second(self) -> float:
        return self.scored / self.seconds if self.seconds > 0 else 0.0


def run_batch(inputs, out, model=None, options: ScoreOptions | None = None, workers: int | None = None,
              ray_address: str | None = None, ray_actors: int | None = None, chunk: int = CHUNK,
              progress=None) -> BatchResult:
    """Score every face in `inputs` into `out` (.parquet or .csv), resuming an earlier run.

    Single machine: `workers` threads (default 2 per core) share one model through a
    `BatchingClassifier`. `ray_address` ("" or "local" = a local Ray instance, "auto", or
    "ray://host:10001"): Ray Data actors score instead, each loading the model once.
    `progress(done, total, message)` hears after every chunk (e.g. `progress.stderr_progress`).
    """
    from ..models.registry import resolve_model

    options = options or ScoreOptions()
    info = resolve_model(model)
    items, problems = expand_inputs(inputs)
    if not items and not problems:
        raise ValueError(f"no images ({', '.join(IMAGE_TYPES)}), zips or videos found in: "
                         f"{', '.join(map(str, inputs))}")
    store = ResultStore(out, info.labels, {"model": info.id, **asdict(options)})
    store.lock()
    try:
        return _run(store, items, problems, info, options, workers, ray_address, ray_actors, chunk, progress)
    finally:
        store.unlock()


def _run(store, items, problems, info, options, workers, ray_address, ray_actors, chunk, progress) -> BatchResult:
    done = store.done()
    todo = [it for it in items if it.file not in done]
    meter = _Meter(len(todo), progress)
    start = time.perf_counter()
    if todo and ray_address is not None:
        engine, chunks = "ray", ray_results(todo, info, options, ray_address, ray_actors, chunk)
    elif todo:
        engine, chunks = "threads", _local_results(todo, info, options, workers, chunk)
    else:
        engine, chunks = "none", iter(())
    with contextlib.closing(chunks) if todo else contextlib.nullcontext():  # a failed chunk frees the model now
        for results in chunks:
            store.add(results)
            meter.update(results)
    seconds = time.perf_counter() - start
    errors = problems + store.errors()
    table = store.finish()
    return BatchResult(table, len(todo), len(items) - len(todo), errors, seconds, engine)


def _local_results(items, info, options: ScoreOptions, workers: int | None, chunk: int):
    """Score items on this machine, `chunk` at a time on `workers` threads sharing one batching model;
    yields lists of {file, rows, error}."""
    from ..inference.loader import load_classifier

    clf = BatchingClassifier(load_classifier(info))
    workers = workers or 2 * (os.cpu_count() or 1)
    try:
        for i in range(0, len(items), chunk):
            yield score_many(items[i:i + chunk], clf, options, workers)
    finally:
        clf.close()


class _Meter:
    """Counts of a run (files, faces, unreadable) turned into `progress(done, total, message)` calls,
    the message a tqdm meter line: bar, files done, elapsed and remaining time, rate, faces, unreadable."""

    def __init__(self, total: int, progress):
        self.total, self.done, self.faces, self.errors = total, 0, 0, 0
        self.progress = progress
        self._start = time.perf_counter()

    def update(self, results: list[dict]) -> None:
        from tqdm import tqdm

        self.done += len(results)
        self.faces += sum(len(r["rows"]) for r in results)
        self.errors += sum(1 for r in results if r["error"])
        if self.progress is None or not self.total:
            return
        line = tqdm.format_meter(self.done, self.total, time.perf_counter() - self._start, ncols=110,
                                 unit=" files", postfix=f"{self.faces:,} faces, {self.errors} unreadable")
        self.progress(self.done, self.total, line)
