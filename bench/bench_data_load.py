"""Benchmark: dataset load time, cold (no on-disk cache) and warm, against a naive PIL loop.

    python -m bench.bench_data_load [DATASET]   # default: $FER_DATA_DIR or ../shared/datasets/fer2013

The baseline decodes every image with PIL one by one (os.walk + Image.open) in the same process,
so the printed ratios are comparable across machines. Targets: cold ≤ 10 s, warm ≤ 1 s on full FER2013.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from fer_core.data.datasets import default_data_dir, load_dataset  # noqa: E402
from fer_core.data.image_folders import IMAGE_EXTENSIONS  # noqa: E402


def naive_pil_load(root: Path) -> int:
    """The obvious loader: walk the tree, open each image with PIL, convert to grayscale."""
    images = []
    for dirpath, _, names in os.walk(root):
        for name in sorted(names):
            if name.lower().endswith(IMAGE_EXTENSIONS):
                with Image.open(os.path.join(dirpath, name)) as im:
                    images.append(np.asarray(im.convert("L").resize((48, 48))))
    return len(images)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else default_data_dir()
    if root is None or not Path(root).exists():
        print("no dataset: pass a folder or set FER_DATA_DIR")
        return 2
    print(f"dataset: {root}   cores: {os.cpu_count()}   load average: {os.getloadavg()[0]:.2f}")
    t_naive, n_naive = timed(lambda: naive_pil_load(Path(root)))
    with tempfile.TemporaryDirectory() as cache:
        t_cold, ds = timed(lambda: load_dataset(root, cache_dir=Path(cache)))
        t_warm, ds2 = timed(lambda: load_dataset(root, cache_dir=Path(cache)))
    assert ds2.from_cache and len(ds2) == len(ds)
    print(f"images: {len(ds):,} loaded ({n_naive:,} by the naive loop), {len(ds.problems)} problems")
    print(f"naive PIL loop : {t_naive:6.2f} s   (baseline)")
    print(f"cold load      : {t_cold:6.2f} s   {t_naive / t_cold:5.1f}× faster than baseline   target ≤ 10 s")
    print(f"warm load      : {t_warm:6.2f} s   {t_naive / t_warm:5.1f}× faster than baseline   target ≤ 1 s")
    print(f"warm / cold    : {t_warm / t_cold:6.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
