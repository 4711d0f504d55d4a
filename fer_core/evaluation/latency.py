"""Latency of a registered model as users get it: median milliseconds per face (or per batch) through the
app's own `Classifier`, preprocessing included."""
from __future__ import annotations

import time

import numpy as np

from ..inference.predict import Classifier
from ..models import registry

LATENCY_BATCH = 32  # the batch size of "latency per batch" (the Classifier's largest bucket)


def measure_latency(info: registry.ModelInfo, model=None, repeats: int = 30, batch: int = 1) -> float:
    """Median milliseconds to classify one 48×48 face (or a `batch` of them; preprocessing included)
    with a compiled call.

    Uses `fer_core.inference.predict.Classifier`, the app's own fast path, so the figure is what users get.
    """
    faces = list(np.random.default_rng(0).integers(0, 256, (batch, 48, 48), dtype=np.uint8))
    model = model if model is not None else registry.load_model(info)
    classify = Classifier(model, info).predict
    for _ in range(3):  # trace and warm up
        classify(faces)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        classify(faces)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)
