"""The Dataset Explorer's FER+ views through AppTest on generated data: annotator agreement, the label ×
majority matrix, disputed faces, the label-error finder's precision and recall against the crowd, and
clear messages without votes or with a bad votes file."""
from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from fer_core.base.labels import FOUR_CLASS
from tests.ferplus_fixtures import votes_row, write_votes_csv
from tests.fixtures import write_kaggle_layout, write_mislabelled_gratings
from tests.model_fixtures import make_fixture_model
from tests.page_fixtures import chart_specs, chart_title

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "1_Dataset_Explorer.py")


def texts(at: AppTest) -> str:
    kinds = ("header", "subheader", "markdown", "caption", "info", "warning", "success", "error")
    return "\n".join(str(e.value) for kind in kinds for e in getattr(at, kind))


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


@pytest.fixture
def crowd(tmp_path, monkeypatch):
    """Gratings with 5 % of the faces in a wrong emotion's folder, and crowd votes that name each face's
    true emotion; three faces get spread-out votes (no majority)."""
    root = tmp_path / "data"
    moved = write_mislabelled_gratings(root, per_class=60, moved=0.05, seed=0)
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    spread = set(files[:3])
    rows = [(f, "train", votes_row(**({"happy": 3, "sad": 3, "fear": 2, "unknown": 2} if f in spread else
                                       {Path(f).name.split("_")[0]: 9, "unknown": 1}))) for f in files]
    write_votes_csv(root / "ferplus_votes.csv", rows)
    make_fixture_model(tmp_path / "models", "tiny4", FOUR_CLASS, default=True)
    monkeypatch.setenv("FER_DATA_DIR", str(root))
    monkeypatch.setenv("FER_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    st.cache_data.clear()
    st.cache_resource.clear()
    return root, moved, spread


def test_crowd_views_and_finder_scored_against_the_crowd(crowd):
    root, moved, spread = crowd
    at = AppTest.from_file(PAGE, default_timeout=300)
    at.session_state["embedding_method"] = "pca"
    at.run()
    assert not at.exception, at.exception
    assert "Crowd labels (FER+)" in [h.value for h in at.header]
    m = metrics(at)
    assert m["faces with votes"] == "240" and m["no majority"] == "3"
    # the crowd names every face's true emotion: the 12 moved faces (and the 3 spread ones) disagree
    assert m["FER+ majority = label"] == f"{(240 - len(moved) - 3) / 240:.1%}"
    titles = [chart_title(spec) for spec in chart_specs(at)]
    assert "Dataset label (rows) × FER+ majority (columns)" in titles
    assert "Annotator agreement per emotion (share)" in titles
    gallery = next(i for i in at.image if any("→ no majority" in c for c in i.captions))
    assert len(gallery.captions) == 30
    disputed = next(d.value for d in at.dataframe if "votes" in d.value.columns)
    assert set(disputed["file"][:3]) == spread and disputed["votes"].iloc[0] == "happy 3 · sad 3 · fear 2 · unknown 2"

    next(b for b in at.button if b.label == "Find label errors").click().run()
    assert not at.exception, at.exception
    m = metrics(at)
    assert m["label ≠ FER+ majority"] == f"{len(moved)} of 237"
    recall = float(m["recall against the crowd"].rstrip("%")) / 100
    precision = float(m["precision against the crowd"].rstrip("%")) / 100
    flagged = at.dataframe[-1].value
    expected_precision = len(set(flagged["file"]) & set(moved)) / len(set(flagged["file"]) - spread)
    assert recall >= 0.4 and precision == pytest.approx(expected_precision, abs=0.001)
    assert "Flagging at random would reach a precision of 5.1%" in texts(at)


def test_no_votes_and_bad_votes_are_explained(crowd):
    root, _, _ = crowd
    path = root / "ferplus_votes.csv"
    path.write_text(path.read_text().replace(",9,", ",nine,", 1))
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception
    assert any("Could not use the FER+ votes" in e.value and "not a vote count" in e.value for e in at.error)
    assert "No FER+ votes for this dataset" in texts(at)
    assert "Class balance" in [h.value for h in at.header]  # the rest of the page still works


def test_votes_named_in_the_sidebar(tmp_path, monkeypatch):
    written = write_kaggle_layout(tmp_path / "data")
    files = [(f, split) for (_, split), fs in written.items() for f in fs]
    votes = write_votes_csv(tmp_path / "votes.csv", [(f, s, votes_row(happy=10)) for f, s in files])
    monkeypatch.setenv("FER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    st.cache_resource.clear()
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert "No FER+ votes for this dataset" in texts(at)
    at.text_input(key="votes_file").set_value(str(votes)).run()
    assert not at.exception
    assert metrics(at)["faces with votes"] == f"{len(files)}"
