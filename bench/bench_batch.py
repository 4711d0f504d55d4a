"""Benchmark: batch scoring images/s — one loop vs threads on this machine vs Ray Data actors.

    python -m bench.bench_batch [FOLDER] [--images 500] [--detector none] [--model ID]

FOLDER defaults to ../shared/datasets/fer2013/test (pre-cropped 48×48 faces: `--detector none`
classifies each image as one face). The first N images (sorted) are scored three ways into
temporary Parquet files: the baseline, one item after another on one thread (what a hand-written
loop does); `batch`'s default threads sharing one batching classifier; and `batch --ray` on a local
Ray instance (started before the clock, so the time includes the actors loading the model but not
Ray itself). All three tables must be equal; the ratios are against the baseline.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]

import pandas as pd  # noqa: E402

from fer_core.serving.batch import run_batch  # noqa: E402
from fer_core.serving.batch_inputs import IMAGE_TYPES  # noqa: E402
from fer_core.serving.scoring import ScoreOptions  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", nargs="?", default=str(ROOT.parent / "shared/datasets/fer2013/test"))
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--detector", default="none")
    parser.add_argument("--model", help="registered model id (default: the default model)")
    parser.add_argument("--ray-actors", type=int, help="default: one per CPU")
    args = parser.parse_args()
    files = sorted(p for p in Path(args.folder).rglob("*") if p.suffix.lower().lstrip(".") in IMAGE_TYPES)
    if not files:
        raise SystemExit(f"no images under {args.folder}")
    step = max(1, len(files) // args.images)
    files = files[::step][:args.images]  # spread over every class folder
    options = ScoreOptions(detector=args.detector, whole_image=True)
    print(f"{len(files)} images from {args.folder}, detector {args.detector}, {os.cpu_count()} CPU cores")
    with tempfile.TemporaryDirectory(prefix="fer_bench_batch_") as tmp:
        runs = {}
        runs["one loop (baseline)"] = run_batch(files, Path(tmp, "loop.parquet"), args.model, options, workers=1)
        runs["threads (default)"] = run_batch(files, Path(tmp, "threads.parquet"), args.model, options)
        import ray

        t = time.perf_counter()
        ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 runtime_env={"py_modules": [str(ROOT / "fer_core")]})
        ray_start = time.perf_counter() - t
        try:
            runs["ray data (local)"] = run_batch(files, Path(tmp, "ray.parquet"), args.model, options,
                                                 ray_address="", ray_actors=args.ray_actors)
        finally:
            ray.shutdown()
        base = runs["one loop (baseline)"]
        print(f"{'engine':<22}{'images':>8}{'faces':>7}{'seconds':>9}{'images/s':>10}{'ratio':>8}")
        for name, r in runs.items():
            print(f"{name:<22}{r.scored:>8}{len(r.table):>7}{r.seconds:>9.1f}{r.files_per_second:>10.1f}"
                  f"{r.files_per_second / base.files_per_second:>7.2f}×")
            pd.testing.assert_frame_equal(r.table, base.table, check_exact=False, rtol=1e-5, atol=1e-6)
        print(f"all three tables equal; Ray itself took {ray_start:.1f} s to start (not in its time)")


if __name__ == "__main__":
    main()
