"""MTCNN's O-Net (its 48×48 face / non-face stage) as a LiteRT file shipped with fer_core, and `OnetConfirmer`,
which asks it whether boxes are faces.

The Haar detector confirms every box with O-Net; BlazeFace its uncertain ones. Running it from the `mtcnn`
package would load TensorFlow (about 7 s) for a 0.4 M-parameter network, so it was converted once with Keras' LiteRT
export (`export_onet`, the maintained `tf.lite` converter; float32, so it answers as the original
does) and runs in the standalone LiteRT interpreter. Weights: the `mtcnn` wheel's (MIT licence).
"""
from __future__ import annotations

import functools
import threading
from pathlib import Path

import cv2
import numpy as np

from ..base.litert import interpreter_for_batch
from .face import Face, to_rgb

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


class OnetConfirmer:
    """Is this box a face? MTCNN's O-Net (its 48×48 last stage, `OnetNetwork`) scores
    every box of a photo in one call; boxes under `min_probability` (0.8, MTCNN's own O-Net threshold)
    are dropped.

    On the photos of bench/bench_faces.py it gives every true Haar face ≥ 0.99 and every false one
    ≤ 0.2 (a suit buckle on the 4× upscaled astronaut gets 0.69), for a few milliseconds per photo.
    Built once per process by `onet_confirmer()`.
    """

    def __init__(self, min_probability: float = 0.8):
        self.min_probability = min_probability
        self._net = OnetNetwork()

    def probabilities(self, image_rgb: np.ndarray, boxes) -> np.ndarray:
        """O-Net's face probability for each (x, y, w, h) box (boxes are clipped to the image)."""
        rgb = to_rgb(image_rgb)
        H, W = rgb.shape[:2]
        patches = []
        for x, y, w, h in boxes:
            x0, y0, x1, y1 = max(0, int(x)), max(0, int(y)), min(W, int(x + w)), min(H, int(y + h))
            crop = rgb[y0:y1, x0:x1] if x1 > x0 and y1 > y0 else np.zeros((48, 48, 3), np.uint8)
            patches.append(cv2.resize(crop, (48, 48), interpolation=cv2.INTER_LINEAR))
        if not patches:
            return np.zeros(0, np.float32)
        x = (np.stack(patches).astype(np.float32) - 127.5) / 128.0  # MTCNN's own normalisation
        return self._net.face_probability(x)

    def confirm(self, image_rgb: np.ndarray, faces: list[Face]) -> list[Face]:
        """The faces O-Net agrees are faces."""
        p = self.probabilities(image_rgb, [f.box for f in faces])
        return [f for f, prob in zip(faces, p) if prob >= self.min_probability]


@functools.lru_cache(maxsize=1)
def onet_confirmer() -> OnetConfirmer:
    """The process-wide `OnetConfirmer` (O-Net is loaded once)."""
    return OnetConfirmer()


def export_onet(target: Path = ONET_FILE) -> Path:
    """Convert the `mtcnn` wheel's O-Net to LiteRT at `target` (run once by maintainers; needs TensorFlow)."""
    import keras
    from mtcnn.stages.stage_onet import StageONet

    onet = StageONet()._model
    inputs = keras.Input((ONET_SIZE, ONET_SIZE, 3))
    keras.Model(inputs, list(onet(inputs, training=False))).export(str(target), format="litert", verbose=False)
    return target
