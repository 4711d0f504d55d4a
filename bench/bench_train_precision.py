"""Benchmark: one training step of an architecture under each precision policy, with and without XLA.

    python -m bench.bench_train_precision [ARCH] [BATCH]   # default: fer_resvgg 128

The float32 step without XLA (what `--mixed-precision off` runs on a CPU) is the baseline in the same
process; steps are interleaved round by round so background load hits every variant alike. On a CPU
with AVX-512 BF16 this decides what `--mixed-precision bfloat16` does (`runtime.needs_xla`).
"""
from __future__ import annotations

import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from fer_core.models.architectures import build, get_architecture  # noqa: E402

VARIANTS = {  # name: (policy, jit_compile)
    "float32": ("float32", False),
    "float32 + XLA": ("float32", True),
    "bfloat16 + XLA": ("mixed_bfloat16", True),
    "bfloat16": ("mixed_bfloat16", False),
}


def compiled(arch: str, policy: str, jit: bool) -> keras.Model:
    keras.mixed_precision.set_global_policy(policy)
    model = build(arch, 7, get_architecture(arch).preprocessing)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="categorical_crossentropy", jit_compile=jit)
    keras.mixed_precision.set_global_policy("float32")
    return model


def main(arch: str = "fer_resvgg", batch: int = 128, rounds: int = 6) -> None:
    pre = get_architecture(arch).preprocessing
    rng = np.random.default_rng(0)
    x = rng.random((batch, pre.input_size, pre.input_size, pre.channels), dtype=np.float32)
    y = np.eye(7, dtype=np.float32)[rng.integers(0, 7, batch)]
    models = {name: compiled(arch, *spec) for name, spec in VARIANTS.items()}
    for model in models.values():  # compile and warm up
        for _ in range(2):
            model.train_on_batch(x, y)
    times = {name: [] for name in models}
    for r in range(rounds):
        for name, model in models.items():
            if name == "bfloat16" and r >= 2:  # ≈9× slower: two rounds tell enough
                continue
            start = time.perf_counter()
            model.train_on_batch(x, y)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["float32"])
    print(f"{arch}, batch {batch}: seconds per training step (median) and speed against float32")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:<16} {med:6.2f} s   {base / med:5.2f}×   ({batch / med:,.0f} img/s)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "fer_resvgg", int(sys.argv[2]) if len(sys.argv) > 2 else 128)
