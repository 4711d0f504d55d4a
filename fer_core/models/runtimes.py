"""Runtimes of edge exports: a registered LiteRT (.tflite) or ONNX model behind the interface
`predict.Classifier` uses for a Keras model (`input_shape`, `output_shape`, `__call__(x) -> probabilities`).

`loading.load_model` picks one by the card's `format`; `fer_core.training.export` makes the files (and re-exports
these names). This module imports nothing from the rest of fer_core but `litert` and `probabilities`, so the
loader can use it.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np

from ..base.litert import interpreter_for_batch
from .probabilities import renormalise, softmax

if TYPE_CHECKING:  # annotations only
    from .card import ModelInfo


class EdgeRuntime:
    """A converted model behind the interface `predict.Classifier` uses: `input_shape`, `output_shape`
    and `__call__(x) -> probabilities` for a float32 N×S×S×C batch (thread-safe)."""

    runtime = ""

    def __init__(self, info: ModelInfo):
        self.info = info
        self.parent_id: str | None = info.model_card.export_parent
        self.outputs: str = info.model_card.export_outputs
        self.input_shape: tuple = ()
        self.output_shape: tuple = ()
        self._parent = None
        self._lock = threading.Lock()

    def __call__(self, x) -> np.ndarray:
        return to_probabilities(self._run(np.ascontiguousarray(x, dtype=np.float32)), self.outputs)

    def _run(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def parent_keras_model(self, load):
        """The parent's Keras model, built once by `load(self)` (`gradcam.gradient_model` passes the registry
        lookup): what Grad-CAM differentiates, as an export has no gradients."""
        with self._lock:
            if self._parent is None:
                if not self.parent_id:
                    raise ValueError(f"export {self.info.id!r} names no parent model to explain")
                self._parent = load(self)
            return self._parent


class LiteRTRuntime(EdgeRuntime):
    """A .tflite model in ai-edge-litert's interpreter (tf.lite.Interpreter where that has no wheel),
    one interpreter per batch size the Classifier runs (`predict.forward_batch_sizes`)."""

    runtime = "litert"

    def __init__(self, info: ModelInfo):
        super().__init__(info)
        self._content = info.model_file.read_bytes()
        self._interpreters: dict[int, object] = {}
        first = self._interpreter(1)
        self.input_shape = (None,) + tuple(int(v) for v in first.get_input_details()[0]["shape"][1:])
        self.output_shape = (None, int(first.get_output_details()[0]["shape"][-1]))

    def _interpreter(self, n: int):
        if n not in self._interpreters:
            self._interpreters[n] = interpreter_for_batch(self._content, n)
        return self._interpreters[n]

    def _run(self, x: np.ndarray) -> np.ndarray:
        with self._lock:
            it = self._interpreter(len(x))
            it.set_tensor(it.get_input_details()[0]["index"], x)
            it.invoke()
            return it.get_tensor(it.get_output_details()[0]["index"]).copy()


class OnnxRuntime(EdgeRuntime):
    """A .onnx model in an ONNX Runtime CPU session (dynamic batch size)."""

    runtime = "onnx"

    def __init__(self, info: ModelInfo):
        super().__init__(info)
        from ..base.extras import require

        ort = require("onnxruntime", f"ONNX model {info.id!r}", "edge")

        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        # no busy-waiting worker threads: the app holds several models and shares a few cores with them
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(info.model_file), options, providers=["CPUExecutionProvider"])
        node, out = self._session.get_inputs()[0], self._session.get_outputs()[0]
        self._input = node.name
        self.input_shape = (None,) + tuple(int(v) for v in node.shape[1:])
        self.output_shape = (None, int(out.shape[-1]))

    def _run(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._session.run(None, {self._input: x})[0])


RUNTIMES: dict[str, type[EdgeRuntime]] = {"litert": LiteRTRuntime, "onnx": OnnxRuntime}  # by card `format`


def to_probabilities(out: np.ndarray, outputs: str = "probabilities") -> np.ndarray:
    """Rows that sum to 1: a quantized softmax output renormalised (int8 steps of 1/256 leave sums a
    little off 1), or a softmax of logits."""
    out = np.asarray(out, dtype=np.float32)
    return softmax(out, axis=1) if outputs == "logits" else renormalise(out, axis=1)
