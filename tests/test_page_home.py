"""The Home page through AppTest: with a dataset and a model, and with neither."""
from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from fer_core.models import architectures
from fer_core.models import registry
from tests.fixtures import write_kaggle_layout

HOME = str(Path(__file__).resolve().parents[1] / "Home.py")


def run_home() -> AppTest:
    st.cache_data.clear()
    st.cache_resource.clear()
    return AppTest.from_file(HOME, default_timeout=90).run()


def page_text(at: AppTest) -> str:
    kinds = ("title", "subheader", "markdown", "caption", "info", "warning", "error")
    return "\n".join(str(e.value) for kind in kinds for e in getattr(at, kind))


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FER_MODELS_DIR", str(tmp_path / "models"))
    return tmp_path


def test_home_without_dataset_or_models_says_what_to_do(env, monkeypatch):
    monkeypatch.setenv("FER_DATA_DIR", str(env / "nowhere"))
    at = run_home()
    assert not at.exception
    text = page_text(at)
    assert "Facial Emotion Recognition Dashboard" in text
    assert "Models compute on: **CPU" in text or "GPU (" in text
    assert "Could not load the dataset" in text and "does not exist" in text
    assert "No trained models found" in text and "python -m fer_core train" in text


def test_home_lists_dataset_and_models(env, monkeypatch):
    write_kaggle_layout(env / "data", {"angry": (3, 2, 1), "happy": (4, 2, 2)})
    monkeypatch.setenv("FER_DATA_DIR", str(env / "data"))
    folder = env / "models" / "tiny"
    folder.mkdir(parents=True)
    model = architectures.build("baseline_cnn", 2)
    model.save(folder / registry.MODEL_FILE)
    registry.write_card(folder, {"id": "tiny", "name": "Tiny test model", "labels": ["angry", "happy"],
                                 "preprocessing": {"input_size": 48, "channels": 1, "scale": "unit"},
                                 "params": model.count_params(), "file_size_bytes": 1, "default": True,
                                 "metrics": {"validation": {"accuracy": 0.625, "macro_f1": 0.5,
                                                            "split_description": "validation"}}})
    at = run_home()
    assert not at.exception
    text = page_text(at)
    assert "14 images (train 7, validation 4, test 3)" in text
    defaults = next(d.value for d in at.dataframe if "learned from" in d.value.columns)
    assert defaults.loc[0, "default model"] == "tiny" and "one annotator" in defaults.loc[0, "learned from"]
    assert defaults.loc[0, "FER2013-label accuracy"] == 0.625
    table = next(d.value for d in at.dataframe if "role" in d.value.columns)
    assert table.loc[0, "model"] == "Tiny test model" and table.loc[0, "role"] == "default"
    assert table.loc[0, "validation accuracy"] == 0.625
