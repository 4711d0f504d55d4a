"""Distillation (a student trained on a teacher's cached or per-batch probabilities), narrowed edge exports,
the featured models a page compares, and inference that never imports TensorFlow."""
from __future__ import annotations

import json
import subprocess
from dataclasses import replace
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from fer_core import cli
from fer_core.training import distill
from fer_core.training import distill_loss
from fer_core.training import export
from fer_core.models import registry, roles
from fer_core.base.labels import EMOTIONS, FOUR_CLASS
from fer_core.inference.predict import Classifier
from tests.model_fixtures import make_parent

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- the loss

def _loss(y_true, y_pred, **kw) -> np.ndarray:
    return np.asarray(distill_loss.DistillationLoss(3, **kw).call(np.asarray(y_true, np.float32),
                                                             np.asarray(y_pred, np.float32)))


def test_soften_flattens_a_distribution_and_keeps_its_order():
    p = np.array([[0.7, 0.2, 0.1]])
    soft = distill.soften(p, 2.0)
    np.testing.assert_allclose(soft.sum(), 1.0, rtol=1e-6)
    assert soft[0, 0] < 0.7 and soft[0, 2] > 0.1 and list(np.argsort(soft[0])) == list(np.argsort(p[0]))
    np.testing.assert_allclose(distill.soften(p, 1.0), p, rtol=1e-5)


def test_loss_is_cross_entropy_plus_scaled_kl_to_the_teacher():
    labels, teacher = np.array([0]), np.array([[0.6, 0.3, 0.1]], np.float32)
    student = np.array([[0.5, 0.25, 0.25]], np.float32)
    packed = distill.pack_targets(labels, teacher, 3)
    assert packed.shape == (1, 6) and list(packed[0, :3]) == [1, 0, 0]
    ce = -np.log(0.5)
    np.testing.assert_allclose(_loss(packed, student, alpha=0.0, temperature=1.0), [ce], rtol=1e-5)
    kl = float(np.sum(teacher * np.log(teacher / student)))
    np.testing.assert_allclose(_loss(packed, student, alpha=1.0, temperature=1.0), [kl], rtol=1e-4)
    # at T the student is softened too and the soft term is scaled by T²
    t = 3.0
    student_t = distill.soften(student, t)
    teacher_t = distill.soften(teacher, t)
    kl_t = float(np.sum(teacher_t * np.log(teacher_t / student_t)))
    np.testing.assert_allclose(_loss(distill.pack_targets(labels, teacher_t, 3), student, alpha=0.5, temperature=t),
                               [0.5 * ce + 0.5 * t * t * kl_t], rtol=1e-4)
    # a student that answers exactly like the teacher pays nothing for the soft term
    np.testing.assert_allclose(_loss(packed, teacher, alpha=1.0, temperature=1.0), [0.0], atol=1e-6)


def test_labels_are_aligned_to_the_student_and_a_missing_class_is_a_clear_error():
    assert distill.align_labels(EMOTIONS, FOUR_CLASS) == [EMOTIONS.index(e) for e in FOUR_CLASS]
    with pytest.raises(ValueError, match="does not predict contempt"):
        distill.align_labels(EMOTIONS, ("happy", "contempt"))


# ----------------------------------------------------------------------------- the CLI end to end

@pytest.fixture
def tiny(tiny_kaggle, tmp_path):
    """The tiny dataset with a one-epoch teacher registered."""
    data = tiny_kaggle
    assert cli.main(["train", "--arch", "baseline_cnn", "--data", str(data), "--epochs", "1", "--batch-size", "8",
                     "--out", str(tmp_path / "models" / "teacher"), "--no-evaluate"]) == 0
    return data, tmp_path


@pytest.mark.slow
def test_distill_trains_on_cached_teacher_answers_and_says_so_in_the_card(tiny, capsys):
    data, root = tiny
    argv = ["distill", "--teacher", "teacher", "--teacher-tta", "flip", "--temperature", "3", "--alpha", "0.7",
            "--arch", "baseline_cnn", "--data", str(data), "--epochs", "1", "--batch-size", "8",
            "--out", str(root / "models" / "student"), "--no-evaluate"]
    assert cli.main(argv) == 0
    card = registry.get_model("student").card
    assert card["teacher"] == "teacher"
    record = card["training"]["distillation"]
    assert record["teacher_tta"] == "flip" and record["temperature"] == 3.0 and record["alpha"] == 0.7
    assert "cached" in record["teacher_outputs"] and 0.0 <= record["teacher_agreement_with_training_labels"] <= 1.0
    assert card["training"]["command"].startswith("python -m fer_core distill --teacher teacher")
    assert len(card["training"]["history"]["val_accuracy"]) == 1

    # the teacher's answers are what a fresh Classifier gives, and a resumed run reads them from the cache
    with np.load(root / "runs" / "student" / distill.TEACHER_FILE) as saved:
        cached, files = saved["probabilities"], saved["files"]
    from fer_core.data.datasets import load_dataset
    rows = load_dataset(str(data)).split("train")
    order = [list(rows.files).index(f) for f in files]
    teacher = Classifier.from_registry("teacher")
    np.testing.assert_allclose(cached, teacher.predict(rows.images[order], tta="flip"), atol=2e-4)
    run_dir = root / "runs" / "student"
    _, fresh = distill.teacher_probabilities("teacher", rows.images[order], files, run_dir, tta="flip")
    assert fresh["cached"] is True
    _, other = distill.teacher_probabilities("teacher", rows.images[order], files, run_dir, tta="none")
    assert other["cached"] is False  # another TTA is another teacher


@pytest.mark.slow
def test_per_batch_teaching_answers_each_augmented_view_the_student_sees(tiny, capsys):
    """--teacher-outputs per-batch: every training batch's soft half is the teacher's answer on that very
    augmented batch (not a cached clean-face answer), and the card says so."""
    from fer_core.data.datasets import load_dataset
    from fer_core.training.config import TrainConfig
    from fer_core.training.input_pipeline import NumpyBatches, make_tf_dataset

    data, root = tiny
    rows = load_dataset(str(data)).split("train")
    teacher = Classifier.from_registry("teacher")
    config = TrainConfig(arch="baseline_cnn", data=str(data), teacher="teacher", teacher_outputs="per-batch",
                         temperature=2.0)
    pre = teacher.preprocessing
    teach, record = distill.batch_teacher(config, teacher.labels, pre)
    assert record["tta"] == "none" and record["id"] == "teacher"
    with pytest.raises(ValueError, match="same face preparation"):  # faces the teacher was not made for
        distill.batch_teacher(config, teacher.labels, replace(pre, equalize=not pre.equalize))
    faces = pre.prepare_uint8(rows.images)
    expected = distill.soften(teacher.predict_preprocessed(pre.to_input(faces[:8])), 2.0)
    np.testing.assert_allclose(teach(faces[:8, ..., None].astype(np.float32)), expected, atol=1e-5)

    k = len(teacher.labels)
    placeholder = distill.pack_targets(rows.labels, None, k)
    for batches in (NumpyBatches(faces, rows.labels, pre, k, 8, "standard", shuffle=True, targets=placeholder,
                                 teach=teach),
                    make_tf_dataset(faces, rows.labels, pre, k, 8, "standard", shuffle=True, targets=placeholder,
                                    teach=teach)):
        x, y = next(iter(batches)) if not isinstance(batches, NumpyBatches) else batches[0]
        x, y = np.asarray(x), np.asarray(y)
        assert y.shape == (len(x), 2 * k) and np.allclose(y[:, :k].sum(1), 1)
        # the soft half is the teacher on these augmented pixels (x is scaled back to 0–255)
        np.testing.assert_allclose(y[:, k:], teach(np.round(x * 255.0)), atol=2e-3)
        assert not np.allclose(y[:, k:], y[:, :k])

    argv = ["distill", "--teacher", "teacher", "--teacher-outputs", "per-batch", "--arch", "baseline_cnn",
            "--data", str(data), "--epochs", "1", "--batch-size", "8", "--out", str(root / "models" / "pb"),
            "--no-evaluate"]
    assert cli.main(argv) == 0
    card = registry.get_model("pb").card
    assert card["training"]["distillation"]["teacher_outputs"].startswith("per-batch")
    assert card["training"]["config"]["teacher_outputs"] == "per-batch"
    assert not (root / "runs" / "pb" / distill.TEACHER_FILE).exists()  # nothing cached


@pytest.mark.slow
def test_distill_refuses_a_teacher_that_lacks_the_students_emotions(tiny, capsys):
    from tests.model_fixtures import make_fixture_model

    data, root = tiny
    make_fixture_model(root / "models", "pair", ("angry", "happy"), default=False)
    code = cli.main(["distill", "--teacher", "pair", "--arch", "baseline_cnn", "--data", str(data),
                     "--epochs", "1", "--out", str(root / "models" / "x")])
    assert code == 2 and "does not predict sad" in capsys.readouterr().err
    assert not (root / "models" / "x").exists()


# ----------------------------------------------------------------------------- narrowed exports

@pytest.fixture
def parent(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_MODELS_DIR", str(tmp_path / "models"))
    (tmp_path / "models").mkdir()
    return make_parent(tmp_path / "models", "tiny")


@pytest.mark.slow
def test_a_narrowed_export_answers_as_its_parent_restricted_and_explains_on_it(parent):
    from fer_core.inference import gradcam

    info = export.export_model("tiny", "litert", "none", labels="4class")
    assert info.labels == tuple(sorted(FOUR_CLASS, key=EMOTIONS.index))
    keep = info.card["export"]["classes_of_parent"]
    assert [EMOTIONS[i] for i in keep] == list(info.labels)
    faces = np.random.default_rng(1).integers(0, 256, (6, 48, 48), dtype=np.uint8)
    full = Classifier.from_registry("tiny").predict(faces)[:, keep]
    np.testing.assert_allclose(Classifier.from_registry(info.id).predict(faces),
                               full / full.sum(axis=1, keepdims=True), atol=1e-5)
    clf = Classifier.from_registry(info.id)
    assert gradcam.gradients_unavailable(clf) is None
    assert gradcam.gradient_model(clf).output_shape[-1] == 4  # Grad-CAM's class indices are the export's own
    heat = gradcam.gradcam_face(clf, np.zeros((48, 48), np.uint8), 1)
    assert heat.shape == (48, 48)
    with pytest.raises(ValueError, match="does not predict contempt"):
        export.export_model("tiny", "litert", "none", labels="happy,contempt", out_id="bad")


@pytest.mark.slow
def test_featured_models_are_each_label_sets_default_and_its_most_accurate_as_an_export(parent):
    other = export.export_model("tiny", "litert", "none", labels="4class", out_id="tiny4")
    best = export.export_model("tiny", "litert", "float16", out_id="tiny-fast")
    registry.save_card_section(registry.get_model("tiny"), "evaluations", "fer/validation",
                               {"split": "validation", "accuracy": 0.7, "dataset": {"name": "fer"}})
    registry.save_card_section(registry.get_model("tiny-fast"), "evaluations", "fer/validation",
                               {"split": "validation", "accuracy": 0.69, "dataset": {"name": "fer"}})
    infos = registry.list_models()
    assert roles.most_accurate(infos, EMOTIONS).id == "tiny"
    assert [m.id for m in roles.featured_models(infos)] == ["tiny", best.id, other.id]
    # only one label set's most accurate model: the 7-class one drops out when the 4-class set is asked for
    assert [m.id for m in roles.featured_models(infos, accurate_for=other.labels)] == ["tiny", other.id]


# ----------------------------------------------------------------------------- no TensorFlow

@pytest.mark.slow
def test_inference_with_an_export_and_the_default_detector_never_imports_tensorflow(parent, tmp_path):
    """`fer_core.analyze`, `predict`, `batch`, `video` and the REST API on a LiteRT export with the default detector
    (BlazeFace, its O-Net confirmation included) run without TensorFlow, Keras or the mtcnn package in the process."""
    export.export_model("tiny", "litert", "none", out_id="edge")
    from skimage import data as skdata
    from PIL import Image

    from fer_core.video import files as video
    from fer_core.video import sample

    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(skdata.astronaut()).save(photo)
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(video.write_mp4(sample.sample_clip(6)))
    script = textwrap.dedent(f"""
        import contextlib, io, json, sys
        import fer_core
        from fer_core import cli
        result = fer_core.analyze({str(photo)!r}, model="edge")
        assert len(result.faces) == 1, result.to_json()
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli.main(["predict", {str(photo)!r}, "--model", "edge", "--json"]) == 0
            assert cli.main(["batch", {str(photo)!r}, "--model", "edge", "--out", {str(tmp_path / "r.csv")!r}]) == 0
            assert cli.main(["video", {str(clip)!r}, "--model", "edge", "--every", "2"]) == 0
        from fastapi.testclient import TestClient
        from fer_core.serving.serve import ServeConfig, create_app
        with TestClient(create_app(ServeConfig(api_key="", preload=False))) as client:
            answer = client.post("/v1/predict?model=edge", files={{"image": open({str(photo)!r}, "rb")}})
            assert answer.status_code == 200 and len(answer.json()["images"][0]["faces"]) == 1, answer.text
        print(json.dumps(sorted(m for m in ("tensorflow", "keras", "mtcnn") if m in sys.modules)))
        """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
