"""MTCNN's O-Net (its 48×48 face / non-face stage) as a LiteRT file shipped with fer_core.

The Haar detector confirms every box with O-Net. Running it from the `mtcnn` package would load
TensorFlow (about 7 s) for a 0.4 M-parameter network, so it was converted once with Keras' LiteRT
export (`export_onet`, the maintained `tf.lite` converter; float32, so it answers as the original
does) and runs in the standalone LiteRT interpreter. Weights: the `mtcnn` wheel's (MIT licence).
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from ..base.litert import interpreter_for_batch

ONET_FILE = Path(__file__).resolve().parents[1] / "assets" / "onet.tflite"
ONET_SIZE = 48


class OnetNetwork:
    """O-Net in the LiteRT interpreter: `face_probability(x)` for an N×48×48×3 batch normalised as MTCNN
    does ((rgb − 127.5) / 128). Thread-safe; one interpreter per padded batch size."""

    def __init__(self, path: Path = ONET_FILE):
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: rebuild it with `python -c 'from fer_core.inference.onet "
                                    "import export_onet; export_onet()'` (needs TensorFlow and mtcnn)")
        self._content = path.read_bytes()
        self._interpreters: dict[int, object] = {}
        self._lock = threading.Lock()

    def face_probability(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        n = len(x)
        size = 1 << max(0, (n - 1).bit_length())  # pad to a power of two: few interpreters, no re-allocation
        batch = np.concatenate([x, np.zeros((size - n, *x.shape[1:]), np.float32)]) if size > n else x
        with self._lock:
            it = (self._interpreters.get(size)
                  or self._interpreters.setdefault(size, interpreter_for_batch(self._content, size)))
            it.set_tensor(it.get_input_details()[0]["index"], batch)
            it.invoke()
            scores = next(it.get_tensor(d["index"]) for d in it.get_output_details() if d["shape"][-1] == 2)
        return np.asarray(scores[:n, 1], np.float32)


def export_onet(target: Path = ONET_FILE) -> Path:
    """Convert the `mtcnn` wheel's O-Net to LiteRT at `target` (run once by maintainers; needs TensorFlow)."""
    import keras
    from mtcnn.stages.stage_onet import StageONet

    onet = StageONet()._model
    inputs = keras.Input((ONET_SIZE, ONET_SIZE, 3))
    keras.Model(inputs, list(onet(inputs, training=False))).export(str(target), format="litert", verbose=False)
    return target
