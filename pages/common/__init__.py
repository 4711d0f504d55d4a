"""Streamlit pieces shared by the pages: the dataset sidebar, label-set picker and cached loaders.

Only UI and caching live here; every computation is a `fer_core` call.
"""
from __future__ import annotations

import hashlib
import os

import streamlit as st

from fer_core.data import datasets as fer_data
from fer_core.data.fer_dataset import SUPPORTED_LAYOUTS, DataError, FerDataset
from fer_core.models import registry
from fer_core.base.labels import EMOTIONS, FOUR_CLASS, EMOTION_COLORS  # noqa: F401  (re-exported for pages)
from fer_core.base import quiet

quiet.install()  # the dashboard is an entry point (every page imports this): keep TensorFlow's start-up log quiet

DATASET_KEY = "dataset_source"
# how the pages name each test-time augmentation mode (None: the model card's own default)
TTA_NAMES = {"none": "none", "flip": "flip (face + mirror, 2×)", "tencrop": "ten-crop (corners, centre, mirrors; 10×)"}
# how the pages name each face detector (inference.faces.DETECTORS) and crop policy (inference.faces.CROP_POLICIES)
DETECTOR_NAMES = {"blazeface": "BlazeFace (fast, keypoints)", "haar": "Haar cascade + O-Net",
                  "mtcnn": "MTCNN (robust, slower)"}
CROP_NAMES = {"fer2013": "aligned, framed like FER2013", "box": "detector box + 15 % margin"}


@st.cache_resource(show_spinner=False, max_entries=4)
def _load_path(source: str, stamp: str) -> FerDataset:
    bar = st.progress(0.0, text=f"Loading {source} …")
    ds = fer_data.load_dataset(source, progress=lambda d, t, m: bar.progress(d / max(t, 1), text=m))
    bar.empty()
    return ds


@st.cache_resource(show_spinner="Reading the uploaded zip …", max_entries=2)
def _load_upload(digest: str, _data: bytes) -> FerDataset:
    return fer_data.load_dataset(_data, cache=False)  # uploads stay in memory


def _stamp(source: str) -> str:
    """Changes when files are added, removed or replaced in the dataset's folders (two levels deep:
    splits and emotions), so the resource cache reloads; cheap enough to run on every rerun."""
    try:
        stamps = [os.stat(source).st_mtime_ns]
        if os.path.isdir(source):
            for split in os.scandir(source):
                if split.is_dir():
                    stamps.append(split.stat().st_mtime_ns)
                    stamps += [e.stat().st_mtime_ns for e in os.scandir(split.path) if e.is_dir()]
        return str(max(stamps))
    except OSError:
        return ""


def dataset_sidebar() -> FerDataset | None:
    """Sidebar: dataset path (default $FER_DATA_DIR) or an uploaded zip; returns the loaded dataset."""
    default = fer_data.default_data_dir()
    if DATASET_KEY not in st.session_state:
        st.session_state[DATASET_KEY] = str(default) if default else ""
    with st.sidebar:
        st.subheader("Dataset")
        source = st.text_input("Folder, .zip or fer2013.csv", key=DATASET_KEY,
                               help="Kaggle FER2013 folders, fer2013.csv, or train|validation|test/<emotion>/ "
                                    "folders. Defaults to $FER_DATA_DIR.")
        upload = st.file_uploader("…or upload a dataset .zip", type=["zip"], key="dataset_zip")
    try:
        if upload is not None:
            raw = upload.getvalue()
            return _load_upload(hashlib.sha1(raw).hexdigest(), raw)
        if not source.strip():
            st.info("No dataset selected. Enter a folder in the sidebar, set `FER_DATA_DIR`, or upload a zip. "
                    "Supported: " + "; ".join(SUPPORTED_LAYOUTS) + ".")
            return None
        path = str(fer_data.check_data_root(source.strip()))  # within $FER_DATA_ROOT when it is set
        return _load_path(path, _stamp(path))
    except DataError as err:
        st.error(f"Could not load the dataset: {err}")
        return None


def label_set_picker(available: tuple[str, ...], key: str = "label_set") -> tuple[str, ...]:
    """Sidebar radio: all emotions of the dataset, the 4-class subset, or a custom choice."""
    options = ["All emotions"]
    if set(FOUR_CLASS) <= set(available) and tuple(available) != FOUR_CLASS:
        options.append("4-class (happy, sad, surprise, neutral)")
    options.append("Custom")
    with st.sidebar:
        choice = st.radio("Label set", options, key=key)
        if choice == "Custom":
            picked = st.multiselect("Emotions", available, default=list(available), key=key + "_custom")
            if len(picked) < 2:
                st.warning("Pick at least two emotions; showing all.")
                return tuple(available)
            return tuple(e for e in EMOTIONS if e in picked)
    return FOUR_CLASS if choice.startswith("4-class") else tuple(available)


@st.cache_data(show_spinner=False, ttl=30)
def model_infos() -> list[registry.ModelInfo]:
    """Every registered model with its card (re-read every 30 s so new evaluations appear)."""
    return registry.list_models()


def classifier(info: registry.ModelInfo):
    """The compiled `fer_core.inference.predict.Classifier` of `info`, from the process's one classifier cache
    (`fer_core.inference.loader`: loaded once, again when its files change), warmed up for a few faces so the
    first photo or stream frame is not the slow one."""
    from fer_core.inference.loader import load_classifier

    with st.spinner(f"Loading {info.id} …"):
        return load_classifier(info, warm=True)


def emotion_color_map(labels) -> dict[str, str]:
    return {e: EMOTION_COLORS[e] for e in labels if e in EMOTION_COLORS}
