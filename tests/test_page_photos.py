"""The Model Comparison page's real-photo parts through AppTest: the leaderboard's "real photos" column, the table
of pipelines and the gallery of misses, from fixture models measured with `evaluate --photos`."""
from __future__ import annotations

import numpy as np
import pytest

from fer_core.evaluation import photo_store
from fer_core.evaluation.photos import evaluate_photos
from fer_core.models import registry
from tests.model_fixtures import make_dataset, make_model
from tests.page_fixtures import run_comparison_page
from tests.test_photo_eval import write_photo_folder


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "models").mkdir()
    monkeypatch.setenv("FER_DATA_DIR", str(make_dataset(tmp_path / "data")))
    make_model(tmp_path / "models", "always_happy", threshold=0.01, default=True)
    make_model(tmp_path / "models", "always_sad", threshold=0.99)
    return tmp_path


def run_all_models():
    at = run_comparison_page()
    at.selectbox(key="group").set_value("all").run()
    assert not at.exception, at.exception
    return at


def texts(at) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "info", "caption", "code", "header", "subheader")
                     for e in getattr(at, kind))


def test_no_photo_results_show_the_command(env):
    at = run_all_models()
    assert at.dataframe[0].value["real photos"].isna().all()
    assert "python -m fer_core evaluate --model always_happy --photos DIR" in texts(at)


def test_real_photos_column_table_and_gallery(env):
    photos = write_photo_folder(env / "photos")
    info = registry.get_model("always_happy")
    result = evaluate_photos(info, photos)
    photo_store.save_photo_evaluation(info, result)
    at = run_all_models()
    board = at.dataframe[0].value.set_index("model")
    assert board.loc["always_happy", "real photos"] == pytest.approx(0.5)
    assert np.isnan(board.loc["always_sad", "real photos"])  # not measured: blank
    table = next(d.value for d in at.dataframe if "pipeline" in d.value.columns)
    assert table.to_dict("records")[0] | {"ms/photo": None} == {
        "model": "always_happy", "pipeline": photo_store.default_pipeline(), "face found": 0.75, "accuracy": 0.5,
        "accuracy on found": pytest.approx(2 / 3), "5-class recall": pytest.approx(1 / 3),
        "macro-F1": pytest.approx(1 / 3), "ms/photo": None, "photos": 4, "TTA": "none"}
    assert [s.value for s in at.subheader][:2] == ["No face found: 1 photo", "sad called happy: 1 photo"]
    assert [img.captions for img in at.image] == [["happy · no face"], ["sad → happy 100%"]]

    (env / "photos").rename(env / "moved")  # the folder is gone: the gallery says so
    at = run_all_models()
    assert "is not on this machine" in texts(at) and not at.image
