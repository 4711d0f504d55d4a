"""The Dataset Explorer page rendered through AppTest: a planted fixture dataset, label subsets,
reshuffling, the quality scan with leakage, load problems, and the no-dataset message."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.fixtures import encode, write_kaggle_layout

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "1_Dataset_Explorer.py")
COUNTS = {"angry": (3, 2, 1), "happy": (12, 2, 2), "sad": (3, 1, 1)}


def run_page(**state) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def texts(at: AppTest) -> str:
    kinds = ("title", "header", "subheader", "markdown", "caption", "info", "warning", "success", "error")
    return "\n".join(str(e.value) for kind in kinds for e in getattr(at, kind))


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


@pytest.fixture
def fixture_data(tmp_path, monkeypatch):
    """Kaggle folders with a train image copied into the test folder, a blank image and a broken file."""
    written = write_kaggle_layout(tmp_path / "data", COUNTS, seed=5)
    root = tmp_path / "data"
    leaked = written[("happy", "train")][0]
    shutil.copy(root / leaked, root / "test" / "happy" / "PublicTest_99999.jpg")
    (root / "train" / "sad" / "Training_blank.png").write_bytes(encode(np.full((48, 48), 120, np.uint8), "png"))
    (root / "train" / "sad" / "Training_broken.jpg").write_bytes(b"")
    monkeypatch.setenv("FER_DATA_DIR", str(root))
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    st.cache_data.clear()
    return {"root": root, "leaked": leaked}


def test_page_shows_counts_samples_means_and_distributions(fixture_data):
    at = run_page()
    assert not at.exception
    assert [h.value for h in at.header] == ["Class balance", "Sample faces", "Mean face per class",
                                            "Pixel distributions", "Data quality", "Crowd labels (FER+)",
                                            "Likely label errors",
                                            "Embedding map", "Load problems"]
    table = at.dataframe[0].value
    assert table.loc["happy"].to_dict() == {"train": 12, "validation": 3, "test": 2, "total": 17}
    assert table.loc["sad", "train"] == 4  # 3 faces + the blank image; the broken file is skipped
    m = metrics(at)
    assert m["Imbalance ratio (largest ÷ smallest class)"] == f"{17 / 6:.1f}×"
    assert m["train (19 images)"] == "4.0×"
    assert len(at.get("plotly_chart")) == 4

    samples = at.image[:3]  # one row per class, then the mean faces
    assert [len(row.captions) for row in samples] == [6, 10, 6]
    assert all(c.startswith(("Training_", "PublicTest_", "PrivateTest_")) for c in samples[1].captions)
    assert at.image[3].captions == ["angry", "happy", "sad"]

    assert "1 files were skipped or resized" in texts(at)
    problems = at.dataframe[1].value
    assert list(problems["file"]) == ["train/sad/Training_broken.jpg"]
    assert problems["reason"][0] == "empty file (0 bytes)"


def test_reshuffle_draws_other_samples(fixture_data):
    at = run_page()
    before = at.image[1].captions
    next(b for b in at.button if "Reshuffle" in b.label).click().run()
    assert not at.exception
    after = at.image[1].captions
    assert len(after) == 10 and after != before  # 10 of the 17 happy faces, another draw


def test_quality_scan_finds_the_planted_leak_and_blank(fixture_data):
    at = run_page()
    assert "Press **Run quality scan**" in texts(at)
    next(b for b in at.button if b.label == "Run quality scan").click().run()
    assert not at.exception
    m = metrics(at)
    assert m["blank images"] == "1"
    assert m["exact duplicate groups"] == "1" and m["exact groups across splits (leakage)"] == "1"
    page = texts(at)
    assert "Leakage: 2 images have an exact or near duplicate in another split." in page
    assert "Group E0 — leakage across splits" in page
    findings = at.dataframe[1].value
    leak = findings[findings["issue"] == "exact duplicate across splits (leakage)"]
    assert set(leak["file"]) == {fixture_data["leaked"], "test/happy/PublicTest_99999.jpg"}
    assert set(findings.loc[findings["issue"] == "blank/near-constant", "file"]) == {"train/sad/Training_blank.png"}
    assert at.download_button[0].label == "Download findings (CSV)"

    # The report stays on screen (from the cache) when something else reruns the page.
    next(b for b in at.button if "Reshuffle" in b.label).click().run()
    assert metrics(at)["blank images"] == "1"


def test_custom_label_set_narrows_everything(fixture_data):
    at = run_page()
    at.sidebar.radio[0].set_value("Custom").run()
    at.sidebar.multiselect[0].set_value(["happy", "sad"]).run()
    assert not at.exception
    assert list(at.dataframe[0].value.index) == ["happy", "sad"]
    assert at.image[2].captions == ["happy", "sad"]  # mean faces follow the label set
    assert "label set: happy,sad" in texts(at)


@pytest.mark.parametrize("where, message", [("missing", "does not exist"), ("empty", "is empty. Supported layouts")])
def test_no_dataset_gives_a_clear_message(tmp_path, monkeypatch, where, message):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("FER_DATA_DIR", str(tmp_path / where))
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    at = run_page()
    assert not at.exception
    assert message in at.error[0].value
    assert "Nothing to explore yet" in at.info[0].value
    assert not at.header  # nothing else rendered
