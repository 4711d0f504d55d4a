"""Where Keras computes: the device description, distribution strategy and precision policy.

Keras uses a GPU when its backend sees one (mixed precision there; data parallelism over several)
and the CPU otherwise. These helpers keep that decision in one place and work on every Keras 3
backend, so training also runs with `KERAS_BACKEND=jax` on a machine without TensorFlow.
"""
from __future__ import annotations

import glob
import json
import logging
import os
import platform

log = logging.getLogger(__name__)


def gpu_names() -> list[str]:
    """Names of the GPUs the active Keras backend can use (empty on a CPU-only machine)."""
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            return [d.device_kind for d in jax.devices() if d.platform == "gpu"]
        if backend == "torch":
            import torch

            return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        import tensorflow as tf

        return [tf.config.experimental.get_device_details(g).get("device_name", g.name)
                for g in tf.config.list_physical_devices("GPU")]
    except Exception as err:  # noqa: BLE001 — a broken driver means no usable GPU, not a crash
        log.warning("cannot list GPUs (%s: %s); assuming none", type(err).__name__, err)
        return []


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            return next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "")
    except OSError:
        return platform.processor() or platform.machine()


def device_description() -> str:
    """What this process computes on, for cards and pages: the GPUs, else the CPU model and cores."""
    import keras

    return _describe(gpu_names(), keras.backend.backend())


def quick_device_description() -> str:
    """What Keras will compute on, read from the system without importing Keras or TensorFlow (a few
    milliseconds, so a page can show it at once): GPUs the NVIDIA driver lists, else the CPU model and
    cores; the backend from $KERAS_BACKEND or ~/.keras/keras.json. `device_description` asks the backend."""
    gpus = []
    for info in sorted(glob.glob("/proc/driver/nvidia/gpus/*/information")):
        try:
            with open(info, encoding="utf-8") as fh:
                gpus += [ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("Model:")]
        except OSError:
            continue
    return _describe(gpus, _configured_backend())


def _describe(gpus: list[str], backend: str) -> str:
    """One line for a device: the GPUs when there are any, else the CPU model and usable cores."""
    if gpus:
        return f"{len(gpus)}× GPU ({', '.join(sorted(set(gpus)))}), Keras backend {backend}"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpu = _cpu_name()
    return f"CPU{': ' + cpu if cpu else ''} ({cores} cores), Keras backend {backend}"


def short_device_name(description: str) -> str:
    """`_describe`'s line cut to the device alone, for tables: "CPU" or "1× GPU (NVIDIA H200)"."""
    description = description.strip()
    return "CPU" if description.startswith("CPU") else description.split(", Keras backend")[0]


def _configured_backend() -> str:
    """Keras' backend as Keras itself would choose it: $KERAS_BACKEND, else keras.json, else tensorflow."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json"), encoding="utf-8") as fh:
            return str(json.load(fh).get("backend") or "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def distribution_strategy():
    """TensorFlow: MirroredStrategy over several GPUs, else the default strategy. JAX: data
    parallelism over several GPUs is set globally (keras.distribution) and None is returned."""
    import keras

    gpus = gpu_names()
    if keras.backend.backend() == "jax":
        if len(gpus) > 1:
            keras.distribution.set_distribution(keras.distribution.DataParallel())
        return None
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


def set_precision(mode: str) -> str:
    """mixed_float16 on GPUs when `auto`; an explicit policy when asked; float32 otherwise."""
    import keras

    policy = {"off": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}.get(mode)
    if policy is None:  # auto
        policy = "mixed_float16" if gpu_names() else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy


def needs_xla(policy: str) -> bool:
    """bfloat16 on a TensorFlow CPU is fast only when XLA fuses it: ≈1.1–1.2× float32 on this AVX-512
    BF16 CPU, but ≈9× slower than float32 without XLA (bench/bench_train_precision.py, fer_resvgg)."""
    import keras

    return policy == "mixed_bfloat16" and keras.backend.backend() == "tensorflow" and not gpu_names()
