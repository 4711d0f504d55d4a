"""The LiteRT (TFLite) interpreter every converted network here runs in, without TensorFlow.

ai-edge-litert's standalone interpreter is a small wheel; TensorFlow's own `tf.lite.Interpreter` is
the fallback only where that wheel does not exist. Shared by the edge exports (`fer_core.training.export`)
and the face detector's O-Net confirmation (`fer_core.inference.onet`).
"""
from __future__ import annotations

import os


def interpreter_class():
    """ai_edge_litert's `Interpreter`, else TensorFlow's."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # no ai-edge-litert wheel for this platform: TensorFlow's own interpreter
        from .extras import MissingExtra

        try:
            import tensorflow as tf
        except ImportError:
            raise MissingExtra("LiteRT models need the ai-edge-litert package (a core dependency) or TensorFlow: "
                               "pip install ai-edge-litert") from None
        Interpreter = tf.lite.Interpreter
    return Interpreter


def interpreter_for_batch(content: bytes, batch: int, threads: int | None = None):
    """An interpreter over a .tflite model's bytes with its input resized to `batch` rows, allocated."""
    it = interpreter_class()(model_content=content, num_threads=threads or os.cpu_count() or 1)
    detail = it.get_input_details()[0]
    it.resize_tensor_input(detail["index"], [batch, *detail["shape"][1:]])
    it.allocate_tensors()
    return it
