"""Edge exports: a registered Keras model converted to LiteRT (TFLite) or ONNX, optionally quantized.

`export_model` converts with the maintained converters (Keras' LiteRT export, i.e.
`tf.lite.TFLiteConverter`; Keras' ONNX export, i.e. tf2onnx, plus ONNX Runtime's quantization tools)
and registers the result as its own model `models/<parent>-<format>-<quant>/` (model.tflite or
model.onnx + a card naming parent, format, quantization, file size and, for int8, the calibration
sample). `registry.load_runtime` (the classes are in `fer_core.models.runtimes`) gives `predict.Classifier`
an object with the Keras model's interface (`input_shape`, `output_shape`, `__call__(x) -> probabilities`)
backed by ai-edge-litert's interpreter or ONNX Runtime, so every page, `evaluate` and the CLI run exports
like any model.
"""
from __future__ import annotations

import contextlib
import logging
import re
import shutil
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..models import registry
from ..base.labels import label_set_name
from ..data.datasets import default_data_dir, load_dataset
from ..data.fer_dataset import DataError
from ..models.ensemble_graph import narrowed
from ..evaluation.exports import FORMAT_NAMES
from ..models.registry import load_runtime

FORMATS: tuple[str, ...] = ("litert", "onnx")
QUANTIZATIONS: tuple[str, ...] = ("none", "float16", "dynamic", "int8")
QUANT_DESCRIPTIONS = {
    "none": "float32 weights and activations",
    "float16": "float16 weights, float32 compute",
    "dynamic": "int8 weights, float activations (dynamic-range quantization)",
    "int8": "full integer: int8 weights and activations calibrated on a sample of training images; "
            "float32 input and output",
}
DEFAULT_SAMPLE_SIZE = 500  # representative training images for int8 calibration


def export_id(parent_id: str, fmt: str, quantize: str) -> str:
    """The registry id of an export: `<parent>-<format>-<quantization>`."""
    return f"{parent_id}-{fmt}-{quantize}"


# ----------------------------------------------------------------------------- calibration sample

def representative_sample(info: registry.ModelInfo, data=None, n: int = DEFAULT_SAMPLE_SIZE,
                          seed: int = 0) -> tuple[np.ndarray, dict]:
    """`n` preprocessed training images of the model's emotions (drawn at random, so classes appear in
    their training proportions) and a description of the sample for the card."""
    if n < 1:
        raise ValueError("the representative sample needs at least 1 image")
    source = _training_data(info, data)
    dataset = load_dataset(source)
    train = dataset.split("train")
    names = train.label_names()
    keep = np.flatnonzero(np.isin(names, info.labels))
    if not len(keep):
        raise DataError(f"{source} has no training images of {info.id}'s emotions ({', '.join(info.labels)})")
    pick = np.sort(np.random.default_rng(seed).choice(keep, size=min(n, len(keep)), replace=False))
    x = info.preprocessing.apply(train.images[pick])
    per_class = {e: int(np.sum(names[pick] == e)) for e in info.labels}
    return x, {"n": int(len(pick)), "split": "train", "source": str(source), "fingerprint": dataset.fingerprint,
               "seed": seed, "per_class": per_class}


def _training_data(info: registry.ModelInfo, data=None):
    """The dataset to draw training images from: `data`, else the card's training source, else the default."""
    if data is not None:
        return data
    recorded = (info.card.get("dataset") or {}).get("source")
    repo = Path(__file__).resolve().parents[2]
    for candidate in ([Path(recorded), repo / recorded] if recorded else []) + [default_data_dir()]:
        if candidate is not None and Path(candidate).exists():
            return candidate
    raise DataError(f"int8 calibration needs {info.id}'s training images"
                    + (f" (its card names {recorded}, which is not here)" if recorded else "")
                    + "; pass --data DIR")


# ----------------------------------------------------------------------------- conversion

def export_model(model_id, format: str, quantize: str = "none", *, data=None,
                 sample_size: int = DEFAULT_SAMPLE_SIZE, out_id: str | None = None, overwrite: bool = False,
                 note: str | None = None, models_dir: Path | None = None, command: str | None = None,
                 labels=None) -> registry.ModelInfo:
    """Convert a registered Keras model to `format` with `quantize` and register it; returns the export.

    int8 calibrates on `sample_size` training images (from `data`, else the card's dataset); the
    other modes need no data. `note` is stored in the card (e.g. why a float16 export was shipped).
    `labels` (a label set, e.g. "4class") exports the parent with its softmax head narrowed to those
    emotions: exactly its probabilities restricted and renormalised, with no second Keras file —
    Grad-CAM narrows the parent the same way (`gradcam.gradient_model`).
    """
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; choose one of: {', '.join(FORMATS)}")
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantize!r}; choose one of: {', '.join(QUANTIZATIONS)}")
    parent = model_id if isinstance(model_id, registry.ModelInfo) else registry.get_model(str(model_id), models_dir)
    if parent.format != "keras":
        raise ValueError(f"{parent.id} is already a {parent.format} export; export its parent "
                         f"{(parent.card.get('export') or {}).get('parent', '')} instead")
    keep = _kept_classes(parent, labels)
    new_id = out_id or export_id(parent.id, format, quantize)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", new_id):
        raise ValueError(f"export id {new_id!r} must be a plain folder name (letters, digits, . _ -)")
    root = Path(models_dir) if models_dir else parent.path.parent
    folder = root / new_id
    if folder.exists() and not overwrite:
        raise ValueError(f"{folder} already exists; pass --overwrite to replace it")
    sample, described = (representative_sample(parent, data, sample_size) if quantize == "int8"
                         else (None, None))
    started = time.perf_counter()
    model = narrowed(registry.load_keras_model(parent), keep)
    probe = sample if sample is not None else _probe_batch(parent)
    outputs = _output_kind(np.asarray(model(probe[:32], training=False)))  # also builds the model for export
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{new_id}.", dir=root))  # one per exporter: concurrent runs never collide
    try:
        target = tmp / registry.MODEL_FILES[format]
        (_convert_litert if format == "litert" else _convert_onnx)(model, target, quantize, sample)
        card = _export_card(parent, new_id, format, quantize, target, described, note, command,
                            outputs=outputs, seconds=time.perf_counter() - started, keep=keep)
        registry.write_card(tmp, card)
        load_runtime(registry.ModelInfo(new_id, tmp, card))(probe[:4])  # it must load and run before it is registered
        # the converted file and its card replace the old ones together, under the folder's lock
        registry.save_model_files(folder, card, lambda path: shutil.copyfile(target, path), target.name)
        registry.forget_predictions(folder)  # an old export's predictions describe the old file
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return registry.get_model(new_id, root)


def _kept_classes(parent: registry.ModelInfo, labels) -> list[int] | None:
    """The parent's class indices an export narrowed to `labels` keeps (None: all of them)."""
    if labels is None:
        return None
    from ..base.labels import parse_label_set

    wanted = parse_label_set(labels) if isinstance(labels, str) else tuple(labels)
    missing = [e for e in wanted if e not in parent.labels]
    if missing:
        raise ValueError(f"{parent.id} does not predict {', '.join(missing)}; it can only be narrowed to a subset "
                         f"of {', '.join(parent.labels)}")
    keep = sorted(parent.labels.index(e) for e in wanted)
    return None if len(keep) == len(parent.labels) else keep


def _probe_batch(info: registry.ModelInfo) -> np.ndarray:
    """A few deterministic inputs to probe a model's outputs when no training sample was loaded."""
    faces = np.random.default_rng(0).integers(0, 256, (8, 48, 48), dtype=np.uint8)
    return info.preprocessing.apply(faces)


def _convert_litert(model, target: Path, quantize: str, sample) -> None:
    """Keras' LiteRT export (tf.lite.TFLiteConverter over a SavedModel) with TFLite built-in ops only."""
    import tensorflow as tf

    settings = {"target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}}
    if quantize != "none":
        settings["optimizations"] = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        settings["target_spec"]["supported_types"] = [tf.float16]
    if quantize == "int8":
        settings["target_spec"]["supported_ops"] = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        settings["representative_dataset"] = lambda: ([sample[i:i + 1]] for i in range(len(sample)))
    with _quiet():
        model.export(str(target), format="litert", verbose=False, **settings)


def _convert_onnx(model, target: Path, quantize: str, sample) -> None:
    """Keras' ONNX export (tf2onnx), then ONNX Runtime's float16 / dynamic / static int8 (QDQ) tools."""
    plain = target if quantize == "none" else target.with_name("float32.onnx")
    with _quiet():
        model.export(str(plain), format="onnx", verbose=False)
        if quantize == "none":
            return
        if quantize == "float16":
            import onnx
            from onnxruntime.transformers.float16 import convert_float_to_float16

            onnx.save(convert_float_to_float16(onnx.load(str(plain)), keep_io_types=True), str(target))
        else:
            from onnxruntime import quantization as q

            if quantize == "dynamic":
                q.quantize_dynamic(str(plain), str(target), weight_type=q.QuantType.QInt8)
            else:
                q.quantize_static(str(plain), str(target), _Calibration(_onnx_input_name(plain), sample),
                                  quant_format=q.QuantFormat.QDQ, activation_type=q.QuantType.QInt8,
                                  weight_type=q.QuantType.QInt8)
    plain.unlink()


def _onnx_input_name(path: Path) -> str:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()[0].name


class _Calibration:
    """ONNX Runtime's CalibrationDataReader protocol over the representative sample, 32 images a batch."""

    def __init__(self, name: str, sample: np.ndarray):
        self._batches = iter([{name: sample[i:i + 32]} for i in range(0, len(sample), 32)])

    def get_next(self):
        return next(self._batches, None)


@contextlib.contextmanager
def _quiet():
    """Converters' chatter (tf2onnx's NumPy FutureWarnings, ORT's "consider pre-processing" log lines) off."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def _output_kind(out: np.ndarray) -> str:
    """Whether a model's outputs are probabilities (softmax head) or logits."""
    return "probabilities" if out.min() >= 0 and np.abs(out.sum(axis=1) - 1).max() < 1e-3 else "logits"


def _export_card(parent: registry.ModelInfo, new_id: str, fmt: str, quantize: str, file: Path, sample: dict | None,
                 note: str | None, command: str | None, outputs: str, seconds: float,
                 keep: list[int] | None = None) -> dict:
    """The export's card: the parent's identity (labels, preprocessing, data, lineage) plus the export section;
    a narrowed export keeps the parent's classes `keep`, recorded as `export.classes_of_parent`."""
    import keras

    size = file.stat().st_size  # against the parent's weights (an ensemble's: its members' files, on its card)
    parent_size = parent.card.get("file_size_bytes") or parent.model_file.stat().st_size
    export = {"parent": parent.id, "format": fmt, "quantization": quantize,
              "quantization_description": QUANT_DESCRIPTIONS[quantize], "file_size_bytes": size,
              "parent_file_size_bytes": parent_size, "size_ratio": round(size / parent_size, 4),
              "representative_sample": sample, "outputs": outputs, "converter": _converter(fmt, quantize),
              "runtime": _runtime_name(fmt), "keras": keras.__version__, "command": command,
              "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "seconds": round(seconds, 1)}
    if note:
        export["note"] = note
    labels = list(parent.labels) if keep is None else [parent.labels[i] for i in keep]
    if keep is not None:
        export["classes_of_parent"] = keep
    narrowing = "" if keep is None else f", its head narrowed to {label_set_name(labels)}"
    card = {"id": new_id, "name": f"{parent.name} · {FORMAT_NAMES[fmt]} {quantize}{narrowing}",
            "architecture": parent.card.get("architecture", ""),
            "description": f"{FORMAT_NAMES[fmt]} export of {parent.id}{narrowing}: {QUANT_DESCRIPTIONS[quantize]}",
            "format": fmt, "labels": labels, "preprocessing": parent.preprocessing.to_dict(),
            "params": parent.card.get("params"), "file_size_bytes": size, "default": False,
            "dataset": parent.card.get("dataset"), "export": export,
            # no training of its own: the parent's run is its lineage, so training budgets count it
            "training": {"epochs_run": 0, "wall_time_s": 0.0, "init_from": parent.card.get("training") or {}}}
    if parent.card.get("inference"):
        card["inference"] = parent.card["inference"]
    return card


def _converter(fmt: str, quantize: str) -> str:
    import importlib.metadata as md

    if fmt == "litert":
        return f"tf.lite.TFLiteConverter via keras export (tensorflow {md.version('tensorflow')})"
    tools = f"tf2onnx {md.version('tf2onnx')} via keras export"
    return tools if quantize == "none" else tools + f", onnxruntime {md.version('onnxruntime')} quantization"


def _runtime_name(fmt: str) -> str:
    import importlib.metadata as md

    if fmt == "onnx":
        return f"onnxruntime {md.version('onnxruntime')}"
    try:
        return f"ai-edge-litert {md.version('ai-edge-litert')}"
    except md.PackageNotFoundError:
        return f"tf.lite.Interpreter (tensorflow {md.version('tensorflow')})"
