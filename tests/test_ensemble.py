"""Ensembles as first-class models, multi-crop TTA, and Grad-CAM on an ensemble."""
from __future__ import annotations

import json

import numpy as np
import pytest

from fer_core import cli
from fer_core.evaluation import evaluate as ev
from fer_core.evaluation import leaderboard
from fer_core.models import registry
from fer_core.models.ensemble import create_ensemble, to_reference
from fer_core.models.ensemble_graph import build_ensemble, file_sha256, member_models
from fer_core.inference.gradcam import ALL_MEMBERS, conv_layers, gradcam_face
from fer_core.base.labels import FOUR_CLASS
from fer_core.inference.predict import Classifier
from fer_core.models.tta import tta_mode, tta_views
from tests.model_fixtures import crops, make_fixture_model


@pytest.fixture(scope="module")
def models(tmp_path_factory, monkeypatch_module):
    root = tmp_path_factory.mktemp("models")
    monkeypatch_module.setenv("FER_MODELS_DIR", str(root))
    make_fixture_model(root, "a7", seed=0)
    make_fixture_model(root, "b7", seed=1, default=False)
    make_fixture_model(root, "c4", FOUR_CLASS, seed=2)
    return root


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture(scope="module")
def ensemble(models):
    return create_ensemble(["a7", "b7"], models / "ens7", tta="flip")


def test_ensemble_is_the_mean_of_its_members(models, ensemble):
    faces = crops(5)
    members = [Classifier.from_registry(m) for m in ("a7", "b7")]
    clf = Classifier.from_registry(ensemble.id)
    expected = np.mean([m.predict(faces, tta="none") for m in members], axis=0)
    np.testing.assert_allclose(clf.predict(faces, tta="none"), expected, atol=1e-5)
    assert len(member_models(clf.model)) == 2


def test_an_ensemble_names_its_members_by_hash_and_its_folder_is_small(models, ensemble):
    info = registry.get_model(ensemble.id)
    assert info.model_file.name == registry.ENSEMBLE_FILE and not (info.path / registry.MODEL_FILE).exists()
    spec = json.loads(info.model_file.read_text())
    assert [(m["id"], m["sha256"]) for m in spec["members"]] == [
        (m, file_sha256(registry.get_model(m).model_file)) for m in ("a7", "b7")]
    assert sum(f.stat().st_size for f in info.path.rglob("*") if f.is_file()) < 32_000  # no weights copied
    assert info.card["file_size_bytes"] == sum(registry.get_model(m).model_file.stat().st_size for m in ("a7", "b7"))


def test_loading_refuses_a_changed_or_missing_member(tmp_path, monkeypatch, capsys):
    from tests.fixtures import write_kaggle_layout

    monkeypatch.setenv("FER_MODELS_DIR", str(tmp_path))
    make_fixture_model(tmp_path, "x7", seed=3)
    make_fixture_model(tmp_path, "y7", seed=4, default=False)
    info = create_ensemble(["x7", "y7"], tmp_path / "xy")
    Classifier.from_registry("xy")  # loads while the members are the ones it was built from
    make_fixture_model(tmp_path, "y7", seed=5, default=False)  # y7 retrained: other weights
    with pytest.raises(registry.RegistryError, match="member 'y7' has changed since the ensemble was built"):
        registry.load_keras_model(info)
    write_kaggle_layout(tmp_path.parent / "xy_data", {"happy": (1, 2, 0), "sad": (1, 2, 0)})
    capsys.readouterr()
    assert cli.main(["evaluate", "--model", "xy", "--data", str(tmp_path.parent / "xy_data"), "--no-save"]) == 2
    err = capsys.readouterr().err.strip()
    assert "member 'y7' has changed" in err and len(err.splitlines()) == 1  # one line, no traceback
    create_ensemble(["x7", "y7"], tmp_path / "xy")  # rebuilt over the new member: loads again
    Classifier.from_registry("xy")
    import shutil

    shutil.rmtree(tmp_path / "x7")
    with pytest.raises(registry.RegistryError, match="needs member 'x7', which is not registered"):
        registry.load_keras_model(registry.get_model("xy"))


def test_an_old_ensemble_file_converts_to_references_keeping_its_results(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_MODELS_DIR", str(tmp_path))
    make_fixture_model(tmp_path, "x7", seed=3)
    make_fixture_model(tmp_path, "c4", FOUR_CLASS, seed=2, default=False)
    new = create_ensemble(["x7", "c4"], tmp_path / "old", labels=FOUR_CLASS)
    faces = crops(3, seed=6)
    expected = Classifier.from_registry("old").predict(faces, tta="none")
    # the former form: one model.keras holding copies of the members' weights
    keep = [[registry.get_model("x7").labels.index(e) for e in FOUR_CLASS], None]
    build_ensemble([registry.load_keras_model(registry.get_model(m)) for m in ("x7", "c4")], keep).save(
        new.path / registry.MODEL_FILE)
    card = {**new.card, "ensemble": {k: v for k, v in new.card["ensemble"].items() if k != "file"},
            "evaluations": {"d/validation": {"split": "validation", "accuracy": 0.5, "dataset": {"id": "d"}}}}
    registry.write_card(new.path, card)
    (new.path / registry.ENSEMBLE_FILE).unlink()
    assert registry.get_model("old").model_file.name == registry.MODEL_FILE
    converted = to_reference("old")
    assert converted.model_file.name == registry.ENSEMBLE_FILE and not (new.path / registry.MODEL_FILE).exists()
    assert converted.evaluations == card["evaluations"]
    np.testing.assert_allclose(Classifier.from_registry("old").predict(faces, tta="none"), expected, atol=1e-6)


def test_the_shipped_ensembles_reference_their_members():
    shipped = registry.default_models_dir()
    ensembles = [i for i in registry.list_models(shipped) if isinstance(i.card.get("ensemble"), dict)]
    if not ensembles:
        pytest.skip("no shipped ensembles in this checkout")
    for info in ensembles:
        assert info.model_file.name == registry.ENSEMBLE_FILE, info.id
        own = [f for f in info.path.rglob("*") if f.is_file() and registry.PREDICTIONS_DIR not in f.parts]
        assert sum(f.stat().st_size for f in own) < 1_000_000, info.id  # rebuilding it adds < 1 MB to git
        for entry in json.loads(info.model_file.read_text())["members"]:
            assert file_sha256(shipped / entry["id"] / entry["file"]) == entry["sha256"], (info.id, entry["id"])


def test_ensemble_card_and_default_inference(models, ensemble):
    card = registry.get_model(ensemble.id).card
    assert card["ensemble"]["members"] == ["a7", "b7"] and card["inference"]["tta"] == "flip"
    clf = Classifier.from_registry(ensemble.id)
    faces = crops(3, seed=1)
    # no TTA argument = the card's default (flip), as the app and `evaluate` do
    np.testing.assert_allclose(clf.predict(faces), clf.predict(faces, tta="flip"), atol=1e-6)
    assert not np.allclose(clf.predict(faces), clf.predict(faces, tta="none"), atol=1e-5)


def test_narrowed_ensemble_renormalises_members_over_the_kept_emotions(models):
    info = create_ensemble(["a7", "c4"], models / "ens4", labels=FOUR_CLASS)
    assert info.labels == FOUR_CLASS
    assert info.card["ensemble"]["restricted"] == {"a7": list(registry.get_model("a7").labels)}
    faces = crops(4, seed=2)
    p7 = Classifier.from_registry("a7").predict(faces, tta="none")
    keep = [registry.get_model("a7").labels.index(e) for e in FOUR_CLASS]
    restricted = p7[:, keep] / p7[:, keep].sum(axis=1, keepdims=True)
    p4 = Classifier.from_registry("c4").predict(faces, tta="none")
    np.testing.assert_allclose(Classifier.from_registry("ens4").predict(faces), (restricted + p4) / 2, atol=1e-5)
    one = create_ensemble(["a7"], models / "a7_as_4", labels=FOUR_CLASS)  # one model, narrowed
    np.testing.assert_allclose(Classifier.from_registry(one.id).predict(faces), restricted, atol=1e-5)


def test_ensemble_rejects_mixed_label_sets_and_single_members(models):
    with pytest.raises(ValueError, match="has no angry, disgust, fear"):
        create_ensemble(["a7", "c4"], models / "bad")
    with pytest.raises(ValueError, match="at least two"):
        create_ensemble(["a7"], models / "bad")
    assert not (models / "bad").exists()
    assert cli.main(["ensemble", "--members", "a7,nope", "--out", str(models / "bad")]) == 2


def test_ensemble_cli_registers_a_model(models, capsys):
    assert cli.main(["ensemble", "--members", "a7,b7", "--out", str(models / "ens_cli"), "--tta", "tencrop"]) == 0
    info = registry.get_model("ens_cli")
    assert info.card["inference"]["tta"] == "tencrop" and info.card["architecture"] == "ensemble"
    assert "ens_cli" in {i.id for i in registry.list_models()}


def test_rebuilding_an_ensemble_drops_its_old_evaluations_and_keeps_its_default_flag(models):
    from tests.fixtures import write_kaggle_layout
    from fer_core.data.datasets import load_dataset

    info = create_ensemble(["a7", "b7"], models / "ens_rebuilt")
    registry.set_default("ens_rebuilt")
    data = models.parent / "rebuild_data"
    write_kaggle_layout(data, {"happy": (1, 2, 0), "sad": (1, 2, 0)})
    ev.evaluate_model(info, load_dataset(data, cache=False), "validation", save=True, latency=False)
    assert registry.get_model("ens_rebuilt").evaluations and (info.path / "eval").exists()
    # new members: the old results describe other weights
    rebuilt = create_ensemble(["b7", "a7"], models / "ens_rebuilt")
    assert rebuilt.is_default() and not rebuilt.evaluations and not (rebuilt.path / "eval").exists()


def test_gradcam_on_an_ensemble_averages_the_members_maps(models, ensemble):
    clf = Classifier.from_registry(ensemble.id)
    assert conv_layers(clf.model)[-1] == ALL_MEMBERS
    face = crops(1, seed=3)[0]
    maps = [gradcam_face(Classifier.from_registry(m), face, 2) for m in ("a7", "b7")]
    np.testing.assert_allclose(gradcam_face(clf, face, 2), np.clip(np.mean(maps, axis=0), 0, 1), atol=1e-5)
    one = gradcam_face(clf, face, 2, "member_1/conv_b")
    np.testing.assert_allclose(one, gradcam_face(Classifier.from_registry("b7"), face, 2, "conv_b"), atol=1e-5)


def test_gradcam_on_a_nested_ensemble_is_the_mean_of_its_members_maps(models, ensemble):
    nested = Classifier.from_registry(create_ensemble([ensemble.id, "a7"], models / "nested").id)
    face = crops(1, seed=4)[0]
    inner = gradcam_face(Classifier.from_registry(ensemble.id), face, 1)
    alone = gradcam_face(Classifier.from_registry("a7"), face, 1)
    np.testing.assert_allclose(gradcam_face(nested, face, 1), np.clip((inner + alone) / 2, 0, 1), atol=1e-5)


def test_tencrop_views_are_crops_and_mirrors():
    x = np.random.default_rng(0).random((3, 48, 48, 1)).astype(np.float32)
    views = tta_views(x, "tencrop")
    assert views.shape == (30, 48, 48, 1)
    np.testing.assert_allclose(views[3:6], views[0:3][:, :, ::-1], atol=1e-6)  # view 2 mirrors view 1
    const = np.full((1, 48, 48, 1), 0.3, np.float32)  # resampling keeps a flat face flat
    np.testing.assert_allclose(tta_views(const, "tencrop"), 0.3, atol=1e-5)
    assert tta_mode(True) == "flip" and tta_mode(None) == "none" and tta_mode("10-crop") == "tencrop"
    with pytest.raises(ValueError):
        tta_mode("sideways")


def test_tencrop_probabilities_are_the_mean_over_views(models):
    clf = Classifier.from_registry("a7")
    faces = crops(4, seed=5)
    x = clf.preprocessing.apply(faces)
    per_view = clf.predict_preprocessed(tta_views(x, "tencrop"), tta="none").reshape(10, 4, -1)
    np.testing.assert_allclose(clf.predict(faces, tta="tencrop"), per_view.mean(axis=0), atol=1e-5)


def test_ensemble_budget_counts_shared_ancestors_once():
    base = {"command": "train a", "finished_at": "t0", "epochs_run": 40, "wall_time_s": 6000.0}
    child = {"command": "train b", "finished_at": "t1", "epochs_run": 10, "wall_time_s": 1200.0, "init_from": base}
    ensemble = {"members": [dict(base), child]}
    assert leaderboard.training_budget(ensemble) == (50, 120.0)


def test_a_models_default_tta_is_set_from_the_cli(models, capsys):
    assert cli.main(["models", "--set-tta", "b7", "tencrop"]) == 0
    clf = Classifier.from_registry("b7")
    assert clf.default_tta == "tencrop"
    faces = crops(2, seed=4)
    np.testing.assert_allclose(clf.predict(faces), clf.predict(faces, tta="tencrop"), atol=1e-6)
    assert cli.main(["models", "--set-tta", "b7", "sideways"]) == 2
    assert "unknown test-time augmentation" in capsys.readouterr().err
    assert cli.main(["models", "--set-tta", "b7", "none"]) == 0
