"""Where Keras computes: the device description, distribution strategy and precision policy.

TensorFlow uses a GPU when one is visible (mixed precision there, MirroredStrategy over
several) and the CPU otherwise; these helpers keep that decision in one place.
"""
from __future__ import annotations

import os


def device_description() -> str:
    """What TensorFlow computes on: the GPU names, or the CPU."""
    try:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
            return f"{len(gpus)}× GPU ({', '.join(names)})"
    except Exception:
        pass
    import keras

    return f"CPU ({os.cpu_count()} cores, Keras backend {keras.backend.backend()})"


def distribution_strategy():
    """MirroredStrategy over several GPUs, else the default strategy (TensorFlow backend only)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


def set_precision(mode: str) -> str:
    """mixed_float16 on GPUs when `auto`; an explicit policy when asked; float32 otherwise."""
    import keras

    policy = {"off": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}.get(mode)
    if policy is None:  # auto
        policy = "mixed_float16" if "GPU" in device_description() else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy
