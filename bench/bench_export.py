"""Benchmark: edge exports (LiteRT / ONNX, quantized) against their Keras parent, in one process.

    python -m bench.bench_export [EXPORT_ID ...]   # default: every registered export

For each parent, its Keras model (the app's compiled `predict.Classifier` path) and each of its
exports classify the same faces through `Classifier.predict` (preprocessing included), interleaved
round after round so background load hits every contender alike. Printed: median ms for one face
and for a batch of 32, and each export's speed-up over its parent (parent ms / export ms).
"""
from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from fer_core.evaluation.latency import LATENCY_BATCH  # noqa: E402
from fer_core.evaluation.exports import is_export  # noqa: E402
from fer_core.models import registry  # noqa: E402
from fer_core.inference.loader import load_classifier  # noqa: E402

from bench.bench_predict import interleaved  # noqa: E402  (the shared interleaved timer)

BATCH = LATENCY_BATCH


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("exports", nargs="*", metavar="EXPORT_ID", help="export ids (default: every registered export)")
    wanted = parser.parse_args().exports
    infos = registry.list_models()
    exports = [i for i in infos if is_export(i) and (not wanted or i.id in wanted)]
    if not exports:
        print("no edge exports registered; make one with `python -m fer_core export --model ID --format litert`")
        return 1
    faces = list(np.random.default_rng(0).integers(0, 256, (BATCH, 48, 48), dtype=np.uint8))
    print(f"{os.cpu_count()} CPU cores; median ms per call of Classifier.predict (preprocessing included)")
    for parent_id in dict.fromkeys(i.model_card.export_parent for i in exports):
        parent = load_classifier(parent_id)
        mine = [load_classifier(i) for i in exports if i.model_card.export_parent == parent_id]
        contenders = [parent, *mine]
        one = {k: med for k, (med, _) in interleaved({c.id: (lambda c=c: c.predict(faces[:1]))
                                                      for c in contenders}, rounds=60).items()}
        many = {k: med for k, (med, _) in interleaved({c.id: (lambda c=c: c.predict(faces))
                                                       for c in contenders}, rounds=20).items()}
        # an ensemble's file only names its members: its card counts their bytes
        parent_bytes = parent.info.card.get("file_size_bytes") or parent.info.model_file.stat().st_size
        print(f"\n{parent_id} (Keras, {parent_bytes / 1e6:.2f} MB) vs its exports")
        print(f"  {'model':34s}{'MB':>7s}{'1 face':>10s}{'speed-up':>10s}{f'{BATCH} faces':>11s}{'speed-up':>10s}")
        for c in contenders:
            size = c.info.model_file.stat().st_size / 1e6
            print(f"  {c.id:34s}{size:7.2f}{one[c.id]:10.2f}{one[parent.id] / one[c.id]:9.2f}×"
                  f"{many[c.id]:11.2f}{many[parent.id] / many[c.id]:9.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
