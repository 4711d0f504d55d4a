"""Loading a registered model's network: its Keras model, or an edge export's runtime, and the identity of the
files it was loaded from (what `fer_core.inference.loader` keys its cache by, so changed files are reloaded)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..base.extras import require
from .card import CARD_FILE, ENSEMBLE_FILE, ModelInfo, RegistryError
from .lookup import model_roots


def load_keras_model(info: ModelInfo):
    """The Keras model of a registered model, loaded for inference (no optimizer state)."""
    if info.format != "keras":
        parent = info.model_card.export_parent
        raise RegistryError(f"model {info.id!r} is a {info.format} export and has no Keras model"
                            + (f" (its parent is {parent!r})" if parent else ""))
    keras = require("keras", f"model {info.id!r} (a Keras model)")
    if info.model_file.name == ENSEMBLE_FILE:  # built from its members' own files, their hashes checked
        from .ensemble_graph import load_ensemble  # members beside the ensemble, else in the search roots

        return load_ensemble(info, [info.path.parent, *model_roots()], load_keras_model, RegistryError)
    return keras.models.load_model(info.model_file, compile=False)


def load_model(info: ModelInfo):
    """What `predict.Classifier` runs for a registered model: its Keras model, or for an edge export
    (card `format` litert/onnx) a runtime object from `fer_core.models.runtimes` with the same interface."""
    if info.format == "keras":
        return load_keras_model(info)
    return load_runtime(info)


def load_runtime(info: ModelInfo):
    """The runtime of a registered export (card `format` litert or onnx): a `fer_core.models.runtimes.EdgeRuntime`."""
    from .runtimes import RUNTIMES

    if info.format not in RUNTIMES:
        raise RegistryError(f"model {info.id!r} has format {info.format!r}; exports are "
                            f"{' or '.join(RUNTIMES)}")
    try:
        return RUNTIMES[info.format](info)
    except ImportError:  # a runtime whose package is not installed: `require`'s one-line message, as it is
        raise
    except Exception as err:  # noqa: BLE001 — the runtimes raise their own error types for a damaged file
        raise RegistryError(f"could not load {info.model_file}: {err}") from None


def model_files(info: ModelInfo) -> list[Path]:
    """The files a loaded model depends on: its card (labels, preprocessing, TTA), its model file and, for an
    ensemble, each member's files (found as `load_keras_model` finds them)."""
    files = [info.path / CARD_FILE, info.model_file]
    if info.model_file.name == ENSEMBLE_FILE:
        try:
            members = [m.get("id") for m in json.loads(info.model_file.read_text(encoding="utf-8"))["members"]]
        except (OSError, ValueError, KeyError, TypeError):
            return files  # unreadable: loading it will say why
        roots = [info.path.parent, *model_roots()]
        for member in members:
            folder = next((r / str(member) for r in roots if (r / str(member) / CARD_FILE).exists()), None)
            if folder is not None:
                from .card_store import read_card

                files += model_files(ModelInfo(folder.name, folder, read_card(folder)))
    return files


def files_stamp(info: ModelInfo) -> tuple:
    """The identity of a model's files: path, size and modification time of each (`model_files`); it changes
    when a model is retrained, re-exported or its card edited, so a cache keyed by it reloads."""
    stamp = []
    for path in model_files(info):
        try:
            st = os.stat(path)
            stamp.append((str(path), st.st_size, st.st_mtime_ns, st.st_ino))
        except OSError:
            stamp.append((str(path), None))
    return tuple(stamp)
