"""fer_core.training.export: a tiny conv net converted to every format × quantization, run through its runtime by
`predict.Classifier`, checked against the Keras parent; the registry path, evaluation beside the parent,
Grad-CAM through the parent, and the `export` CLI's errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fer_core import cli
from fer_core.training import export
from fer_core.evaluation import exports
from fer_core.models import registry
from fer_core.evaluation import evaluate as ev
from fer_core.evaluation.latency import LATENCY_BATCH
from fer_core.evaluation.predictions import load_predictions
from fer_core.base.labels import EMOTIONS
from fer_core.inference.predict import Classifier
from tests.fixtures import make_face_images, write_kaggle_layout
from tests.model_fixtures import make_parent

pytestmark = pytest.mark.slow  # converts models (pyproject.toml's markers; -m 'not slow' skips)

COUNTS = {e: (6, 2, 0) for e in EMOTIONS}  # training images (calibration) and PublicTest images per emotion


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    data = root / "data"
    write_kaggle_layout(data, COUNTS)
    (root / "models").mkdir()
    parent = make_parent(root / "models")
    return {"models": root / "models", "data": data, "parent": parent, "faces": make_face_images(40, seed=5)}


@pytest.fixture(autouse=True)
def env(world, monkeypatch, tmp_path_factory):
    monkeypatch.setenv("FER_MODELS_DIR", str(world["models"]))
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.mark.parametrize("fmt", export.FORMATS)
@pytest.mark.parametrize("quant", export.QUANTIZATIONS)
def test_export_agrees_with_parent(world, fmt, quant):
    info = export.export_model("tiny", fmt, quant, data=world["data"], sample_size=30)
    assert info.id == f"tiny-{fmt}-{quant}" and info.format == fmt
    assert info.model_file.name == registry.MODEL_FILES[fmt] and info.model_file.exists()
    card = info.card["export"]
    assert (card["parent"], card["format"], card["quantization"]) == ("tiny", fmt, quant)
    assert card["file_size_bytes"] == info.card["file_size_bytes"] == info.model_file.stat().st_size
    assert card["parent_file_size_bytes"] == world["parent"].model_file.stat().st_size
    if quant == "int8":
        sample = card["representative_sample"]
        assert sample["n"] == 30 and sum(sample["per_class"].values()) == 30 and sample["split"] == "train"
    else:
        assert card["representative_sample"] is None
    assert not info.is_default() and info.labels == world["parent"].labels

    faces = world["faces"]  # 40 faces: more than the largest batch bucket, so two padded chunks
    mine = Classifier.from_registry(info.id)
    theirs = Classifier.from_registry("tiny")
    p, q = mine.predict(faces), theirs.predict(faces)
    assert p.shape == q.shape == (40, len(EMOTIONS))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    agreement = float(np.mean(p.argmax(1) == q.argmax(1)))
    assert agreement >= (0.9 if quant == "int8" else 0.97), agreement
    assert np.abs(p - q).max() < (0.15 if quant == "int8" else 0.03)
    flipped = mine.predict(faces[:3], tta="flip")  # flip-TTA goes through the runtime too
    assert flipped.shape == (3, len(EMOTIONS))
    single = mine.predict(faces[0])  # one face, batch bucket 1 (dynamic quantization scales per batch)
    np.testing.assert_allclose(single[0], p[0], atol=1e-4 if quant in ("none", "float16") else 0.05)


def test_registry_lists_exports_and_keeps_keras_only_paths_clear(world):
    info = export.export_model("tiny", "litert", "float16", out_id="tiny-edge", overwrite=True)
    assert "tiny-edge" in [m.id for m in registry.list_models()]
    assert registry.get_model(str(info.path)).id == "tiny-edge"  # by folder path too
    with pytest.raises(registry.RegistryError, match="litert export and has no Keras model.*'tiny'"):
        registry.load_keras_model(info)
    info.model_file.unlink()  # a card without its model file is not a model
    assert "tiny-edge" not in [m.id for m in registry.list_models()]


def test_broken_export_file_is_a_clear_error(world):
    info = export.export_model("tiny", "onnx", "none", out_id="tiny-broken", overwrite=True)
    info.model_file.write_bytes(b"not an onnx model")
    with pytest.raises(registry.RegistryError, match="could not load"):
        Classifier.from_registry("tiny-broken")


def test_gradcam_of_an_export_is_computed_on_its_parent(world):
    from fer_core.inference import gradcam

    clf = Classifier.from_registry(export.export_model("tiny", "litert", "dynamic", overwrite=True).id)
    parent_model = gradcam.gradient_model(clf)
    assert parent_model.name == registry.load_keras_model(world["parent"]).name
    heat = gradcam.gradcam_face(clf, world["faces"][0])
    assert heat.shape == (48, 48) and np.isfinite(heat).all()


def test_gradcam_without_the_parent_is_a_clear_error(world, tmp_path):
    import shutil

    from fer_core.inference import gradcam

    info = export.export_model("tiny", "onnx", "float16", overwrite=True)
    alone = tmp_path / info.id
    shutil.copytree(info.path, alone)  # the export without its parent beside it
    clf = Classifier.from_registry(str(alone))
    assert clf.predict(world["faces"][:2]).shape == (2, len(EMOTIONS))  # it still predicts
    with pytest.raises(ValueError, match="parent 'tiny' is not registered"):
        gradcam.gradcam_face(clf, world["faces"][0])
    heat = gradcam.gradcam_face(clf, world["faces"][0], method="occlusion")  # needs no gradients, so no parent
    assert heat.shape == (48, 48) and np.isfinite(heat).all() and heat.max() <= 1.0


def test_occlusion_explains_the_export_itself(world):
    from fer_core.inference import gradcam

    face = world["faces"][1]
    export_clf = Classifier.from_registry(export.export_model("tiny", "litert", "none", overwrite=True).id)
    parent_clf = Classifier.from_registry("tiny")
    ours = gradcam.gradcam_face(export_clf, face, 2, method="occlusion")
    assert ours.max() == pytest.approx(1.0)  # hiding some patch lowers the class's probability
    np.testing.assert_allclose(ours, gradcam.gradcam_face(parent_clf, face, 2, method="occlusion"), atol=1e-3)


def test_cli_predict_gradcam_of_an_export_without_its_parent_fails_before_any_work(world, tmp_path, capsys):
    import shutil

    from fer_core.inference.images import encode_png

    info = export.export_model("tiny", "litert", "none", out_id="tiny-alone", overwrite=True)
    alone = tmp_path / "models" / info.id
    shutil.copytree(info.path, alone)
    photo = tmp_path / "face.png"
    photo.write_bytes(encode_png(world["faces"][0]))
    argv = ["predict", str(photo), "--model", str(alone), "--whole-image"]
    assert cli.main([*argv, "--gradcam", str(tmp_path / "cams")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "'tiny' is not registered" in err and "Traceback" not in err
    assert not (tmp_path / "cams").exists()
    assert cli.main(argv) == 0  # without Grad-CAM it predicts
    assert cli.main([*argv, "--gradcam", str(tmp_path / "cams"), "--gradcam-method", "occlusion"]) == 0
    assert sorted(p.name for p in (tmp_path / "cams").iterdir())[-1] == "face_occlusion.png"


def test_evaluate_export_beside_parent(world):
    parent = world["parent"]
    ev.evaluate_model(parent, world["data"], "validation", save=True, latency=False)
    info = export.export_model("tiny", "onnx", "int8", data=world["data"], sample_size=20, overwrite=True)
    result = ev.evaluate_model(info, world["data"], "validation", save=True)
    assert result["latency_ms_per_face"] > 0 and result["latency_ms_per_batch"] > 0
    assert result["latency_batch_size"] == LATENCY_BATCH
    assert result["parent_latency"]["model"] == "tiny" and result["parent_latency"]["latency_ms_per_face"] > 0
    info = registry.get_model(info.id)
    mine, theirs = load_predictions(info, "validation"), load_predictions(parent, "validation")
    share, n = exports.agreement_with_parent(info, "validation")
    assert n == len(mine) == 14
    assert share == pytest.approx(float(np.mean(mine.y_pred == theirs.y_pred)))
    row = exports.exports_frame(registry.list_models(), "validation").set_index("export").loc[info.id]
    assert row["parent"] == "tiny" and row["agreement"] == share
    assert row["accuracy"] == info.metrics("validation")["accuracy"]
    assert row["parent accuracy"] == registry.get_model("tiny").metrics("validation")["accuracy"]
    assert row["size MB"] == pytest.approx(info.model_file.stat().st_size / 1e6)
    assert result["parent_scores"] == {"model": "tiny", "accuracy": row["parent accuracy"],
                                       "macro_f1": row["parent macro-F1"], "agreement": share, "images_compared": n,
                                       "clean_accuracy": parent.metrics("validation")["clean"]["accuracy"]}


def test_an_export_shipped_without_its_parent_keeps_the_comparison(world, tmp_path):
    """A network too large to ship as Keras ships as its export: the figures its evaluation recorded beside
    the parent still fill the exports table once the parent is gone."""
    import shutil

    ev.evaluate_model(world["parent"], world["data"], "validation", save=True, latency=False)
    info = export.export_model("tiny", "litert", "dynamic", overwrite=True)
    ev.evaluate_model(info, world["data"], "validation", save=True, latency=False)
    with_parent = exports.exports_frame(registry.list_models(), "validation").set_index("export").loc[info.id]
    alone = tmp_path / "models"
    shutil.copytree(registry.get_model(info.id).path, alone / info.id)
    row = exports.exports_frame(registry.list_models(alone), "validation").set_index("export").loc[info.id]
    assert row["parent"] == "tiny (not shipped)"
    for column in ("accuracy", "parent accuracy", "parent macro-F1", "agreement", "images compared", "parent size MB"):
        assert row[column] == with_parent[column], column
    from fer_core.evaluation.model_card import model_card_markdown

    text = model_card_markdown(registry.get_model(info.id, alone), statement={})
    assert f"- Export of `tiny`: litert, dynamic, {row['size MB']:.1f} MB" in text
    assert f"- The parent's accuracy on the same images: {row['parent accuracy']:.3f}" in text


def test_cli_export(world, capsys):
    assert cli.main(["export", "--model", "tiny", "--format", "litert", "--quantize", "int8", "--data",
                     str(world["data"]), "--sample-size", "12", "--id", "tiny-cli", "--overwrite"]) == 0
    out = capsys.readouterr().out
    assert "tiny-cli" in out and "calibrated on 12 training images" in out
    assert registry.get_model("tiny-cli").card["export"]["command"].startswith("python -m fer_core export")


@pytest.mark.parametrize("argv, message", [
    (["--model", "nope", "--format", "onnx"], "no model 'nope'"),
    (["--model", "tiny", "--format", "onnx", "--quantize", "int8", "--sample-size", "0", "--id", "new"],
     "at least 1 image"),
    (["--model", "tiny", "--format", "onnx", "--quantize", "int8", "--id", "new"],
     "int8 calibration needs tiny's training images"),
    (["--model", "tiny", "--format", "onnx", "--quantize", "int8", "--data", "/no/such/dir", "--id", "new"],
     "/no/such/dir"),
    (["--model", "tiny", "--format", "onnx", "--id", "../escape"], "plain folder name"),
    (["--model", "tiny-exists", "--format", "onnx"], "already a litert export"),
    (["--model", "tiny", "--format", "litert", "--id", "tiny-exists"], "already exists; pass --overwrite"),
])
def test_cli_bad_input_is_a_clear_error(world, capsys, monkeypatch, argv, message):
    monkeypatch.setattr("fer_core.training.export.default_data_dir", lambda: None)  # no FER2013 to fall back on
    if not (world["models"] / "tiny-exists").exists():
        export.export_model("tiny", "litert", "none", out_id="tiny-exists")
    before = sorted(p.name for p in world["models"].iterdir())
    assert cli.main(["export", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert sorted(p.name for p in world["models"].iterdir()) == before  # nothing written


def test_cli_rejects_unknown_format_and_quantization(capsys):
    for argv in (["--model", "tiny", "--format", "tfjs"],
                 ["--model", "tiny", "--format", "onnx", "--quantize", "int4"]):
        with pytest.raises(SystemExit) as stop:
            cli.main(["export", *argv])
        assert stop.value.code == 2 and "invalid choice" in capsys.readouterr().err


# ----------------------------------------------------------------------------- pages

@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A parent and its evaluated LiteRT int8 export, both scored on the same validation split."""
    root = tmp_path_factory.mktemp("pages")
    data = root / "data"
    write_kaggle_layout(data, COUNTS, seed=2)
    (root / "models").mkdir()
    parent = make_parent(root / "models", "tinyp")
    ev.evaluate_model(parent, data, "validation", save=True, latency=False)
    info = export.export_model(parent, "litert", "int8", data=data, sample_size=20)
    ev.evaluate_model(info, data, "validation", save=True)
    return {"models": root / "models", "data": data, "export": registry.get_model(info.id, root / "models")}


def _app(page: str, shipped, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("FER_MODELS_DIR", str(shipped["models"]))
    monkeypatch.setenv("FER_DATA_DIR", str(shipped["data"]))
    st.cache_data.clear()
    st.cache_resource.clear()
    return AppTest.from_file(str(Path(__file__).resolve().parents[1] / "pages" / page), default_timeout=120)


def test_comparison_page_shows_exports_beside_their_parent(shipped, monkeypatch):
    at = _app("2_Model_Comparison.py", shipped, monkeypatch)
    at.run()
    at.radio(key="split").set_value("validation").run()
    assert not at.exception, at.exception
    assert "Edge exports" in [h.value for h in at.header]
    table = next(d.value for d in at.dataframe if "agreement" in d.value.columns).set_index("export")
    row = table.loc["tinyp-litert-int8"]
    share, n = exports.agreement_with_parent(shipped["export"], "validation")
    assert row["parent"] == "tinyp" and row["agreement"] == pytest.approx(share) and n == 14
    assert row["ms/face"] > 0 and row["parent ms/face"] > 0 and row["size vs parent"] < 1


def test_prediction_page_runs_an_export_and_explains_it_on_its_parent(shipped, monkeypatch):
    at = _app("3_Image_Prediction.py", shipped, monkeypatch)
    at.run()
    at.selectbox(key="model").set_value("tinyp-litert-int8")
    at.radio(key="source").set_value("Sample").run()
    assert not at.exception, at.exception
    captions = " ".join(str(c.value) for c in at.caption)
    assert "Grad-CAM is computed on tinyp" in captions
    # an export is explained by occlusion first (no TensorFlow); Grad-CAM on the parent when picked
    assert any(str(c).startswith("Occlusion: ") for img in at.image for c in img.captions)
    assert at.radio(key="cam_method_0_1").value == "occlusion"
    at.radio(key="cam_method_0_1").set_value("gradcam").run()
    assert not at.exception, at.exception
    assert any(str(c).startswith("Grad-CAM: ") for img in at.image for c in img.captions)  # the parent's heatmap


def test_prediction_page_runs_an_export_whose_parent_is_not_shipped(shipped, monkeypatch, tmp_path):
    import shutil

    alone = {**shipped, "models": tmp_path / "models"}
    shutil.copytree(shipped["export"].path, alone["models"] / shipped["export"].id)
    at = _app("3_Image_Prediction.py", alone, monkeypatch)
    at.run()
    at.radio(key="source").set_value("Sample").run()
    assert not at.exception, at.exception
    assert any("Grad-CAM is not available" in i.value and "not registered" in i.value for i in at.info)
    assert at.subheader and "Grad-CAM below" not in " ".join(str(c.value) for c in at.caption)
    assert not [e for e in at.expander if e.label == "Grad-CAM on the whole photo"] and not at.warning
