"""The Dataset Explorer's "Likely label errors" and "Embedding map" sections through AppTest: planted
label errors on a generated dataset, class filter, CSV, map colourings, no usable model, and the real
FER2013 with the shipped default model (skipped without ../shared)."""
from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from fer_core.data.datasets import default_cache_dir
from fer_core.base.labels import FOUR_CLASS
from tests.fixtures import write_mislabelled_gratings
from tests.model_fixtures import make_fixture_model
from tests.page_fixtures import chart_specs, chart_title

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "1_Dataset_Explorer.py")
FER2013 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fer2013"


def texts(at: AppTest) -> str:
    kinds = ("header", "subheader", "markdown", "caption", "info", "warning", "success", "error")
    return "\n".join(str(e.value) for kind in kinds for e in getattr(at, kind))


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def find_label_errors(at: AppTest) -> AppTest:
    next(b for b in at.button if b.label == "Find label errors").click().run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def gratings(tmp_path, monkeypatch):
    moved = write_mislabelled_gratings(tmp_path / "data", per_class=60, moved=0.05, seed=0)
    make_fixture_model(tmp_path / "models", "tiny4", FOUR_CLASS, default=True)
    monkeypatch.setenv("FER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FER_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    st.cache_data.clear()
    return tmp_path, moved


def test_sections_rank_planted_errors_filter_download_and_map(gratings):
    root, moved = gratings
    at = AppTest.from_file(PAGE, default_timeout=300)
    at.session_state["embedding_method"] = "pca"  # UMAP compiles on first use; test_embeddings covers it
    at.run()
    assert not at.exception
    headers = [h.value for h in at.header]
    assert headers[-3:] == ["Likely label errors", "Embedding map", "Load problems"]
    assert "Press **Find label errors**" in texts(at)
    charts = len(at.get("plotly_chart"))

    find_label_errors(at)
    m = metrics(at)
    assert m["images checked"] == "240" and int(m["likely label errors"]) >= 5
    table = at.dataframe[-1].value
    assert {"file", "given_label", "suggested_label", "score"} <= set(table.columns)
    assert len(set(table["file"]) & set(moved)) >= 5  # most of the 12 planted errors are listed
    gallery = next(i for i in at.image if any("→" in c for c in i.captions))
    assert len(gallery.captions) == len(table)
    assert at.download_button[-1].label == "Download likely label errors (CSV)"
    assert len(list((root / "cache" / "features").iterdir())) == 1  # features computed once, on disk

    assert len(at.get("plotly_chart")) == charts + 1
    assert chart_title(chart_specs(at)[-1]).endswith("images by tiny4's penultimate features (PCA)")
    assert "Select points on the map" in texts(at)

    # filter by class: only errors among images labelled sad
    sad = sorted(table.loc[table["given_label"] == "sad", "file"])
    next(w for w in at.multiselect if w.label == "Given label").set_value(["sad"]).run()
    assert not at.exception
    if sad:
        assert sorted(at.dataframe[-1].value["file"]) == sad
    else:
        assert "No likely label errors among these images." in texts(at)

    for colour in ("prediction", "split", "likely label error"):
        next(r for r in at.radio if r.label == "Colour by").set_value(colour).run()
        assert not at.exception
    assert chart_specs(at)[-1]["layout"]["legend"]["title"]["text"] == "likely label error"


def test_no_usable_model_is_explained(gratings, tmp_path, monkeypatch):
    monkeypatch.setenv("FER_MODELS_DIR", str(tmp_path / "no_models"))
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception
    assert "No registered Keras model to take features from" in texts(at)
    assert "Embedding map" in [h.value for h in at.header]


@pytest.mark.skipif(not FER2013.exists(), reason=f"FER2013 not found at {FER2013}")
def test_real_fer2013_with_the_shipped_model(monkeypatch):
    monkeypatch.delenv("FER_MODELS_DIR", raising=False)
    monkeypatch.setenv("FER_DATA_DIR", str(FER2013))
    st.cache_data.clear()  # the model list is cached across runs: drop other tests' fixture models
    at = AppTest.from_file(PAGE, default_timeout=600).run()
    assert not at.exception
    find_label_errors(at)  # defaults: the 7-class default model, validation split, 1,000 images, UMAP
    m = metrics(at)
    assert m["images checked"] == "1,000"
    assert 50 <= int(m["likely label errors"].replace(",", "")) <= 600  # FER2013's labels are noisy
    assert not any("was trained on" in w.value for w in at.warning)  # validation: no training-data caveat
    assert chart_title(chart_specs(at)[-1]).endswith("(UMAP)")
    fingerprint = at.caption[0].value.split("fingerprint ")[-1]
    assert any(p.name.startswith(fingerprint) for p in (default_cache_dir() / "features").iterdir())
    at.run()  # a rerun is served from the caches
    assert not at.exception and metrics(at)["images checked"] == "1,000"
