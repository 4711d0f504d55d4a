"""The Image Prediction page through AppTest: sample and uploaded photos, bad files, no models."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import streamlit as st
from PIL import Image
from skimage import data as skdata
from streamlit.testing.v1 import AppTest

from fer_core.base.labels import FOUR_CLASS
from tests.hostile import png_header_only
from tests.model_fixtures import make_fixture_model

ROOT = Path(__file__).resolve().parents[1]

PAGE = str(ROOT / "pages" / "3_Image_Prediction.py")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    make_fixture_model(root, "tiny7")
    make_fixture_model(root, "tiny4", FOUR_CLASS, channels=3, scale="symmetric", default=False, seed=1)
    return root


def page(monkeypatch, models_dir) -> AppTest:
    monkeypatch.setenv("FER_MODELS_DIR", str(models_dir))
    st.cache_data.clear()  # the registry list and analyses are cached across runs in this process
    st.cache_resource.clear()
    return AppTest.from_file(PAGE, default_timeout=120)


def texts(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "info", "warning", "error", "caption", "subheader")
                     for e in getattr(at, kind))


def jpeg(array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def test_no_models_registered(monkeypatch, tmp_path):
    at = page(monkeypatch, tmp_path / "empty").run()
    assert not at.exception
    assert "python -m fer_core train" in at.info[0].value


def test_sample_photo_shows_faces_charts_gradcam_table_and_downloads(monkeypatch, models_dir):
    at = page(monkeypatch, models_dir)
    at.run()
    at.radio(key="source").set_value("Sample").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="sample").value.startswith("Astronaut")
    assert "Face 1:" in texts(at)
    assert len(at.get("plotly_chart")) == 1
    assert len(_captions(at)) >= 4  # annotated photo, crop, Grad-CAM overlay, whole-photo Grad-CAM
    summary, table = at.dataframe[0].value, at.dataframe[1].value
    assert list(summary["face"]) == [1] and summary.loc[0, "emotion"] in table["label"].tolist()
    assert list(table["model"]) == ["tiny7", "tiny4"] and list(table["face"]) == [1, 1]
    assert table.loc[1, "label"] in FOUR_CLASS and table["angry"].isna().iloc[1]
    assert [b.label for b in at.get("download_button")] == ["Download annotated PNG", "Download results JSON"]

    # another class and Grad-CAM++ re-render without errors
    at.selectbox(key="cam_class_0_1").set_value("surprise")
    at.radio(key="cam_method_0_1").set_value("gradcam++").run()
    assert not at.exception
    assert any("Grad-CAM++: surprise @ conv_b" in str(c) for c in _captions(at))
    at.radio(key="cam_method_0_1").set_value("occlusion").run()
    assert not at.exception
    assert any(str(c) == "Occlusion: surprise" for c in _captions(at))
    assert at.selectbox(key="cam_layer_0_1").disabled


@pytest.mark.slow
def test_an_export_without_its_parent_is_explained_by_occlusion(monkeypatch, tmp_path):
    import shutil

    from fer_core.training import export

    make_fixture_model(tmp_path / "built", "tiny7")
    info = export.export_model("tiny7", "litert", "none", models_dir=tmp_path / "built")
    shutil.copytree(info.path, tmp_path / "shipped" / info.id)  # shipped without its Keras parent
    at = page(monkeypatch, tmp_path / "shipped").run()
    at.radio(key="source").set_value("Sample").run()
    assert not at.exception, at.exception
    assert any("Grad-CAM is not available" in i.value and "Occlusion below explains the export itself" in i.value
               for i in at.info)
    assert at.radio(key="cam_method_0_1").options == ["Occlusion"]
    assert any(str(c).startswith("Occlusion: ") for c in _captions(at))


def _captions(at: AppTest) -> list[str]:
    return [c for img in at.image for c in img.captions]


def test_uploads_good_and_bad_files_in_one_go(monkeypatch, models_dir):
    at = page(monkeypatch, models_dir).run()
    at.file_uploader(key="uploads").set_value([
        ("astronaut.jpg", jpeg(skdata.astronaut()), "image/jpeg"),
        ("empty.jpg", b"", "image/jpeg"),
        ("cut.jpg", jpeg(skdata.astronaut())[:5000], "image/jpeg"),
        ("notes.jpg", b"dear diary, this is no photo", "image/jpeg"),
        ("huge.png", png_header_only(10_000, 10_000), "image/png"),
        ("coffee.jpg", jpeg(skdata.coffee()), "image/jpeg"),
    ]).run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 4
    assert "empty.jpg" in errors[0] and "empty (0 bytes)" in errors[0]
    assert "cut.jpg" in errors[1] and "truncated or corrupt" in errors[1]
    assert "notes.jpg" in errors[2] and "not a recognised image" in errors[2]
    assert "huge.png" in errors[3] and "100 megapixels" in errors[3]
    assert any("No face found in coffee.jpg" in w.value for w in at.warning)
    assert "Face 1:" in texts(at)  # the good photo still gets its results
    assert len(at.get("plotly_chart")) == 1


def test_whole_image_fallback_and_other_model(monkeypatch, models_dir):
    at = page(monkeypatch, models_dir).run()
    at.selectbox(key="model").set_value("tiny4")
    at.selectbox(key="whole").set_value(True)
    face48 = skdata.astronaut()[60:170, 170:280][::2, ::2][:48, :48].copy()
    at.slider(key="min_size").set_value(64)
    at.file_uploader(key="uploads").set_value(("fer_face.png", _png(face48), "image/png")).run()
    assert not at.exception, at.exception
    assert "classified as one face" in " ".join(_captions(at))
    doc = json.loads(at.json[0].value)
    assert doc["whole_image"] and doc["model"] == "tiny4" and doc["labels"] == list(FOUR_CLASS)


def _png(array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def test_a_broken_model_file_is_reported_not_raised(monkeypatch, tmp_path):
    root = tmp_path / "models"
    make_fixture_model(root, "tiny7")
    make_fixture_model(root, "tiny4", FOUR_CLASS, channels=3, scale="symmetric", default=False, seed=1)
    (root / "tiny4" / "model.keras").write_bytes(b"not a keras file")
    at = page(monkeypatch, root).run()
    at.radio(key="source").set_value("Sample").run()
    assert not at.exception, at.exception
    assert any("Skipped models that could not be loaded: tiny4" in w.value for w in at.warning)
    assert list(at.dataframe[1].value["model"]) == ["tiny7"]
    at.selectbox(key="model").set_value("tiny4").run()
    assert not at.exception
    assert "Could not load model tiny4" in at.error[0].value


def test_camera_snapshot(monkeypatch, models_dir):
    at = page(monkeypatch, models_dir).run()
    at.radio(key="source").set_value("Camera").run()
    assert "take a camera snapshot" in at.info[0].value
    at.camera_input[0].set_value(("shot.jpg", jpeg(skdata.astronaut()), "image/jpeg")).run()
    assert not at.exception, at.exception
    assert "Face 1:" in texts(at) and "camera snapshot" in " ".join(_captions(at))
