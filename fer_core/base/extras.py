"""Optional dependencies: the core install (`pip install fer-core`) classifies faces with LiteRT, OpenCV and
NumPy; training, Keras models, MTCNN, Grad-CAM, evaluation tables, video files, the REST API and batch scoring
need an extra. `require` imports one for a feature and, when it is missing, raises `MissingExtra` whose one
line names the extra to install; the CLI prints it as `error: …` with exit code 2.
"""
from __future__ import annotations

import importlib

# extra → the modules it installs (import name → distribution name), as in pyproject's optional-dependencies
EXTRA_PACKAGES: dict[str, dict[str, str]] = {
    "train": {"tensorflow": "tensorflow", "keras": "keras", "mtcnn": "mtcnn", "sklearn": "scikit-learn",
              "skimage": "scikit-image", "cleanlab": "cleanlab", "umap": "umap-learn", "pandas": "pandas",
              "onnx": "onnx", "onnxruntime": "onnxruntime", "tf2onnx": "tf2onnx"},
    "edge": {"onnx": "onnx", "onnxruntime": "onnxruntime", "tf2onnx": "tf2onnx"},
    "video": {"av": "av", "pandas": "pandas"},
    "serve": {"fastapi": "fastapi", "uvicorn": "uvicorn", "multipart": "python-multipart"},
    "batch": {"pyarrow": "pyarrow", "ray": "ray", "pandas": "pandas"},
    "app": {"streamlit": "streamlit", "streamlit_webrtc": "streamlit-webrtc", "plotly": "plotly", "aiortc": "aiortc"},
}
NAMES = {"tensorflow": "TensorFlow", "keras": "Keras", "mtcnn": "MTCNN", "sklearn": "scikit-learn",
         "skimage": "scikit-image", "umap": "umap-learn", "onnxruntime": "ONNX Runtime", "onnx": "ONNX",
         "av": "PyAV", "fastapi": "FastAPI", "pyarrow": "PyArrow", "ray": "Ray", "streamlit": "Streamlit"}


class MissingExtra(ImportError):
    """A feature needs an optional dependency that is not installed; the message says which extra has it."""


def extra_for(module: str, prefer: str | None = None) -> str | None:
    """The extra that installs the top-level module `module` (`prefer` when it lists it), or None."""
    top = module.split(".")[0]
    if prefer in EXTRA_PACKAGES and top in EXTRA_PACKAGES[prefer]:
        return prefer
    return next((extra for extra, modules in EXTRA_PACKAGES.items() if top in modules), None)


def missing_message(module: str, feature: str, extra: str | None = None) -> str:
    """'<feature> needs <Package>: pip install 'fer-core[<extra>]''."""
    top = module.split(".")[0]
    extra = extra_for(top, extra) or "all"
    return f"{feature} needs {NAMES.get(top, top)}: pip install 'fer-core[{extra}]'"


def require(module: str, feature: str, extra: str | None = None):
    """`importlib.import_module(module)`, or `MissingExtra` naming the extra when it (or a package it needs
    that an extra installs) is not installed. Errors inside an installed package are passed on as they are."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        missing = as_missing_extra(err, feature, extra)
        if missing is None:
            raise
        raise missing from None


def as_missing_extra(err: BaseException, feature: str, extra: str | None = None) -> MissingExtra | None:
    """`err` as a `MissingExtra` when it is a `ModuleNotFoundError` for a module an extra installs, else None
    (how the CLI turns a command's missing dependency into one line)."""
    if isinstance(err, MissingExtra):
        return err
    name = getattr(err, "name", None) or ""
    if not isinstance(err, ModuleNotFoundError) or extra_for(name) is None:
        return None
    return MissingExtra(missing_message(name, feature, extra))
