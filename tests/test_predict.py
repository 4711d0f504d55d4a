"""Classifier (batched, bucketed, TTA), the photo pipeline, annotation, JSON and the `predict` CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from fer_core import cli
from fer_core.models import registry
from fer_core.base.labels import EMOTIONS, FOUR_CLASS
from fer_core.inference.faces import DEFAULT_CROP, DEFAULT_DETECTOR
from fer_core.inference.predict import (BATCH_BUCKETS, Classifier, analyze_image, annotate, compare_models,
                                       forward_batch_sizes)
from tests.model_fixtures import crops, make_fixture_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    make_fixture_model(root, "tiny7")
    make_fixture_model(root, "tiny4", FOUR_CLASS, channels=3, scale="symmetric", seed=1)
    return root


@pytest.fixture(scope="module")
def clf(models_dir) -> Classifier:
    return Classifier.from_registry(registry.get_model("tiny7", models_dir))


def test_labels_and_preprocessing_come_from_the_card(clf):
    assert clf.labels == EMOTIONS
    assert clf.preprocessing == clf.info.preprocessing
    assert clf.id == "tiny7"


def test_batched_predict_matches_model_predict_and_single_calls(clf):
    faces = crops(5)
    probs = clf.predict(faces)
    assert probs.shape == (5, 7) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    reference = clf.model.predict(clf.preprocessing.apply(faces), verbose=0)
    np.testing.assert_allclose(probs, reference, atol=1e-5)
    singles = np.concatenate([clf.predict([f]) for f in faces])
    np.testing.assert_allclose(probs, singles, atol=1e-5)


def test_more_faces_than_the_largest_bucket_and_none(clf):
    many = crops(BATCH_BUCKETS[-1] + 5, seed=1)
    probs = clf.predict(many)
    assert probs.shape == (len(many), 7)
    np.testing.assert_allclose(probs[-5:], clf.predict(many[-5:]), atol=1e-5)
    assert clf.predict([]).shape == (0, 7)


def test_batch_sizes_pad_for_keras_and_split_without_padding_for_edge_runtimes():
    assert forward_batch_sizes(6) == [8] and forward_batch_sizes(37) == [32, 8]
    assert forward_batch_sizes(6, pad=False) == [4, 2] and forward_batch_sizes(37, pad=False) == [32, 4, 1]
    for n in range(1, 3 * BATCH_BUCKETS[-1]):
        assert sum(forward_batch_sizes(n, pad=False)) == n
        assert set(forward_batch_sizes(n, pad=False)) <= set(BATCH_BUCKETS)


class RecordingRuntime:
    """An edge runtime stand-in (a LiteRT interpreter per batch size): the Keras model's answers, batch sizes kept."""

    runtime = "litert"

    def __init__(self, model):
        self.model, self.sizes = model, []
        self.input_shape, self.output_shape = model.input_shape, model.output_shape

    def __call__(self, x):
        self.sizes.append(len(x))
        return np.asarray(self.model(x, training=False))


def test_an_edge_runtime_runs_every_view_and_no_padded_row(clf):
    edge = Classifier(RecordingRuntime(clf.model), clf.info)
    faces = crops(3, seed=4)
    np.testing.assert_allclose(edge.predict(faces, tta="flip"), clf.predict(faces, tta="flip"), atol=1e-5)
    assert edge.model.sizes == [4, 2]


def test_flip_tta_is_the_mean_of_image_and_mirror(clf):
    faces = crops(3, seed=2)
    mirrored = [f[:, ::-1] for f in faces]
    expected = (clf.predict(faces) + clf.predict(mirrored)) / 2
    np.testing.assert_allclose(clf.predict(faces, tta=True), expected, atol=1e-5)
    assert not np.allclose(clf.predict(faces, tta=True), clf.predict(faces), atol=1e-4)


def test_card_that_disagrees_with_the_model_is_refused(models_dir, tmp_path):
    info = registry.get_model("tiny7", models_dir)
    bad = registry.ModelInfo("bad", info.path, {**info.card, "labels": ["happy", "sad"]})
    with pytest.raises(registry.RegistryError, match="outputs 7 classes but its card lists 2"):
        Classifier(registry.load_keras_model(info), bad)


def test_default_pipeline_gives_the_classifier_an_aligned_fer2013_crop(clf):
    analysis = analyze_image(skdata.astronaut(), clf)
    assert (analysis.detector, analysis.crop) == (DEFAULT_DETECTOR, DEFAULT_CROP) == ("blazeface", "fer2013")
    (face,), (crop,), (matrix,) = analysis.faces, analysis.crops, analysis.crop_matrices
    assert crop.shape[0] == crop.shape[1] and set(face.landmarks) >= {"left_eye", "right_eye"}
    left, right = (matrix @ [*face.landmarks[k], 1] for k in ("left_eye", "right_eye"))
    assert abs(left[1] - right[1]) < 1  # the eyes are level in what the classifier saw
    np.testing.assert_allclose(analysis.probabilities, clf.predict(analysis.crops), atol=1e-6)
    assert analysis.to_dict()["crop"] == "fer2013"
    boxed = analyze_image(skdata.astronaut(), clf, crop="box")
    assert boxed.crop == "box" and boxed.crops[0].shape != crop.shape


def test_analyze_the_astronaut(clf):
    image = skdata.astronaut()
    analysis = analyze_image(image, clf, "haar")
    assert len(analysis.faces) == 1 and not analysis.whole_image
    face = analysis.faces[0]
    assert sum(face.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert face.label == max(face.probabilities, key=face.probabilities.get)
    assert face.confidence == pytest.approx(face.probabilities[face.label])
    assert analysis.probabilities.shape == (1, 7)
    np.testing.assert_allclose(analysis.probabilities, clf.predict(analysis.crops), atol=1e-6)
    doc = json.loads(json.dumps(analysis.to_dict()))
    assert doc["image_size"] == {"width": 512, "height": 512}
    assert doc["faces"][0]["box"] == list(face.box) and doc["model"] == "tiny7"


def test_no_face_and_whole_image_fallback(clf):
    faceless = skdata.coffee()
    assert analyze_image(faceless, clf).faces == []
    fer_like = np.asarray(Image.fromarray(skdata.astronaut()[60:170, 170:280]).convert("L").resize((48, 48)))
    analysis = analyze_image(np.repeat(fer_like[..., None], 3, -1), clf, whole_image_if_no_face=True, min_size=64)
    assert analysis.whole_image and len(analysis.faces) == 1
    assert analysis.faces[0].box == (0, 0, 48, 48) and analysis.faces[0].score is None
    json.dumps(analysis.to_dict(), allow_nan=False)
    # by default (None) a small, square photo without a detected face is taken for a face crop and said so
    auto = analyze_image(np.repeat(fer_like[..., None], 3, -1), clf, min_size=64)
    assert auto.whole_image and auto.faces[0].crop == "whole" and auto.to_dict()["whole_image"] is True
    never = analyze_image(np.repeat(fer_like[..., None], 3, -1), clf, min_size=64, whole_image_if_no_face=False)
    assert never.faces == [] and not never.whole_image
    assert analyze_image(np.full((48, 48, 3), 90, np.uint8), clf).faces == []  # blank: no face, no answer


def test_annotate_draws_on_a_copy(clf):
    image = skdata.astronaut()
    before = image.copy()
    analysis = analyze_image(image, clf)
    out = annotate(image, analysis)
    np.testing.assert_array_equal(image, before)
    assert out.shape == image.shape and out.dtype == np.uint8
    x, y, w, h = analysis.faces[0].box
    assert (out[y:y + h, x] != image[y:y + h, x]).any()  # the box's left edge
    assert (out[300:, 300:] == image[300:, 300:]).all()  # far from the face nothing changes


def test_compare_models_uses_each_models_own_labels(models_dir):
    clfs = [Classifier.from_registry(registry.get_model(m, models_dir)) for m in ("tiny7", "tiny4")]
    rows = compare_models(crops(2), clfs)
    assert [(r["face"], r["model"]) for r in rows] == [(1, "tiny7"), (2, "tiny7"), (1, "tiny4"), (2, "tiny4")]
    assert set(rows[2]) == {"face", "model", "label", "confidence", *FOUR_CLASS}
    assert rows[2]["label"] in FOUR_CLASS
    assert sum(rows[0][e] for e in EMOTIONS) == pytest.approx(1.0, abs=1e-5)


@pytest.fixture
def photos(tmp_path) -> dict[str, Path]:
    good = tmp_path / "astronaut.png"
    Image.fromarray(skdata.astronaut()).save(good)
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    return {"good": good, "text": text, "empty": empty}


def test_cli_json_with_bad_files_and_gradcam(models_dir, photos, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FER_MODELS_DIR", str(models_dir))
    out_dir = tmp_path / "cams"
    code = cli.main(["predict", "--model", "tiny7", "--json", "--gradcam", str(out_dir),
                     str(photos["good"]), str(photos["text"]), str(photos["empty"])])
    captured = capsys.readouterr()
    assert code == 2
    doc = json.loads(captured.out)
    assert doc["model"] == "tiny7" and doc["labels"] == list(EMOTIONS)
    good, text, empty = doc["images"]
    assert len(good["faces"]) == 1 and set(good["faces"][0]["probabilities"]) == set(EMOTIONS)
    assert "not a recognised image" in text["error"] and "empty" in empty["error"]
    assert "error: notes.jpg is not a recognised image" in captured.err and "Traceback" not in captured.err
    written = sorted(p.name for p in out_dir.iterdir())
    assert written == sorted(Path(p).name for p in good["gradcam"]) and len(written) == 2
    assert Image.open(out_dir / written[0]).size[0] > 0


def test_cli_table_and_default_model(models_dir, photos, capsys, monkeypatch):
    monkeypatch.setenv("FER_MODELS_DIR", str(models_dir))
    assert cli.main(["predict", "--tta", "flip", str(photos["good"])]) == 0
    out = capsys.readouterr().out
    assert f"1 face(s), {DEFAULT_DETECTOR}, model tiny7, flip TTA" in out
    assert "angry" in out and "(175, 75, 100, 99)" in out  # BlazeFace's box


def test_cli_without_models_is_a_clear_error(tmp_path, photos, capsys, monkeypatch):
    monkeypatch.setenv("FER_MODELS_DIR", str(tmp_path / "none"))
    assert cli.main(["predict", str(photos["good"])]) == 2
    assert "no models are registered; train one with `python -m fer_core train" in capsys.readouterr().err


def test_python_m_fer_core_predict_subprocess(models_dir, photos):
    env = {**os.environ, "FER_MODELS_DIR": str(models_dir), "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.run([sys.executable, "-m", "fer_core", "predict", "--model", "tiny4", "--json", "--whole-image",
                          str(photos["good"]), str(photos["text"])], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=240)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and "error: notes.jpg" in run.stderr
    doc = json.loads(run.stdout)
    assert doc["labels"] == list(FOUR_CLASS) and len(doc["images"][0]["faces"]) == 1
