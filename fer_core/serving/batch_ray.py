"""Batch scoring on Ray Data: `score_many` in actors that each load the model once (`map_batches`), on a
local Ray instance or a cluster, with this fer_core package shipped to every worker.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

from .batch_inputs import Item
from .batching import BatchingClassifier
from .scoring import ScoreOptions, score_many


class _RayScorer:
    """A Ray Data actor: loads the model once, then scores batches of items (`score_many`)."""

    def __init__(self, model_path: str, options: dict, threads: int):
        _limit_tf_threads(threads)
        from ..inference.loader import load_classifier

        self.classifier = BatchingClassifier(load_classifier(model_path))
        self.options = ScoreOptions(**options)
        self.threads = threads

    def __call__(self, batch: dict) -> dict:
        items = [Item(str(f), str(p), str(k), str(m))
                 for f, p, k, m in zip(batch["file"], batch["path"], batch["kind"], batch["member"])]
        results = score_many(items, self.classifier, self.options, self.threads)
        return {"file": [r["file"] for r in results],
                "rows": [json.dumps(r["rows"]) for r in results],
                "error": [r["error"] or "" for r in results]}


def _limit_tf_threads(n: int) -> None:
    """Keep each actor's TensorFlow to its share of cores (before TF starts its thread pools)."""
    try:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(max(1, n))
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, n)))
    except (ImportError, RuntimeError):
        pass  # another backend, or TF already running in this worker


def parse_ray_address(address) -> str | None:
    """`--ray` alone or "local" → None (start Ray here); "auto", "host:port" or "ray://host:port" as given."""
    text = (address or "").strip()
    if text in ("", "local"):
        return None
    if text == "auto" or text.startswith("ray://") or (":" in text and text.rsplit(":", 1)[1].isdigit()):
        return text
    raise ValueError(f"--ray {text!r} is not a Ray address: use auto, HOST:PORT or ray://HOST:10001 "
                     "(put --ray after the inputs so it does not take an input as its address)")


def ray_results(items: list[Item], info, options: ScoreOptions, address: str, actors: int | None, chunk: int):
    """Score items with Ray Data; yields lists of {file, rows, error} as batches come back."""
    import ray

    from ..models.registry import default_models_dir

    started = not ray.is_initialized()
    if started:  # ship this fer_core to every worker (a cluster's nodes need its dependencies and the data)
        ray.init(address=parse_ray_address(address), include_dashboard=False, log_to_driver=False,
                 logging_level="WARNING", runtime_env={"py_modules": [str(Path(__file__).resolve().parents[1])]})
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # ours counts files; Ray Data's would interleave with it
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        n_actors = max(1, min(int(actors or cpus), len(items)))
        runtime_env = {"env_vars": {"FER_MODELS_DIR": str(default_models_dir())}}  # ensembles find their members
        blocks = max(1, min(len(items), 4 * n_actors))
        ds = ray.data.from_items([asdict(it) for it in items], override_num_blocks=blocks)
        scored = ds.map_batches(_RayScorer, batch_size=min(64, max(1, chunk)), batch_format="numpy",
                                fn_constructor_kwargs={"model_path": str(info.path), "options": asdict(options),
                                                       "threads": 2},
                                compute=ray.data.ActorPoolStrategy(size=n_actors), num_cpus=1,
                                runtime_env=runtime_env)
        pending: list[dict] = []
        for batch in scored.iter_batches(batch_size=None, batch_format="numpy"):
            pending += [{"file": str(f), "rows": json.loads(r), "error": str(e) or None}
                        for f, r, e in zip(batch["file"], batch["rows"], batch["error"])]
            if len(pending) >= chunk:
                yield pending
                pending = []
        if pending:
            yield pending
    finally:
        if started:
            ray.shutdown()
