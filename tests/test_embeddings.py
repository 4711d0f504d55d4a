"""fer_core.evaluation.embeddings: features cut below the classifier head (checked against the layers by hand),
batching, stratified samples, the disk cache and its keys, uploads kept off disk, and the 2-D map."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fer_core.evaluation import embeddings
from fer_core.models import registry
from fer_core.data.datasets import load_dataset
from fer_core.data.fer_dataset import DataError
from fer_core.base.labels import FOUR_CLASS
from fer_core.inference.predict import Classifier
from tests.fixtures import grating_images, write_course_layout, write_mislabelled_gratings, zip_folder
from tests.model_fixtures import make_fixture_model


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    make_fixture_model(root, "tiny4", FOUR_CLASS, default=True)
    make_fixture_model(root, "tiny4rgb", FOUR_CLASS, channels=3, scale="symmetric", default=False, seed=1)
    return root


@pytest.fixture(scope="module")
def gratings(tmp_path_factory):
    root = tmp_path_factory.mktemp("gratings")
    write_mislabelled_gratings(root, per_class=30, moved=0.0)
    return load_dataset(root, cache=False)


@pytest.fixture
def env(tmp_path, monkeypatch, models_dir):
    monkeypatch.setenv("FER_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def test_features_are_the_pooled_conv_maps_and_probabilities_match_the_classifier(models_dir):
    import keras

    clf = Classifier.from_registry(registry.get_model("tiny4", models_dir))
    faces = np.concatenate([grating_images(5, angle, seed=3) for angle in (0, 90)])
    feats, probs = embeddings.extract_features(clf, faces)
    pooled = keras.Model(clf.model.input, clf.model.get_layer("conv_b").output)(clf.preprocessing.apply(faces))
    np.testing.assert_allclose(feats, np.asarray(pooled).mean(axis=(1, 2)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(probs, clf.predict(faces), rtol=1e-4, atol=1e-6)
    # batching (with a padded last batch) gives the same numbers
    small_feats, small_probs = embeddings.extract_features(clf, faces, batch_size=3)
    np.testing.assert_allclose(small_feats, feats, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(small_probs, probs, rtol=1e-5, atol=1e-6)


def test_the_cards_preprocessing_is_applied(models_dir):
    """A 3-channel, −1…1 model gets its own input: its features differ from a 0…1 reading of the same faces."""
    clf = Classifier.from_registry(registry.get_model("tiny4rgb", models_dir))
    faces = grating_images(4, 45)
    feats, _ = embeddings.extract_features(clf, faces)
    assert feats.shape == (4, 8)
    wrong = embeddings.feature_model(clf.model)(np.repeat(faces[..., None] / 255.0, 3, -1).astype(np.float32))
    assert not np.allclose(np.asarray(wrong)[:, :8], feats)


def test_models_without_a_dense_head_are_refused():
    import keras

    inputs = keras.Input((48, 48, 1))
    model = keras.Model(inputs, keras.layers.Softmax()(keras.layers.GlobalAveragePooling2D()(inputs)))
    with pytest.raises(ValueError, match="no Dense classifier head"):
        embeddings.feature_model(model)
    card = {"labels": ["happy", "sad"]}
    assert not embeddings.can_embed(registry.ModelInfo("e", Path("e"), {**card, "ensemble": {"members": ["a", "b"]}}))
    assert not embeddings.can_embed(registry.ModelInfo("x", Path("x"), {**card, "format": "onnx"}))
    assert embeddings.can_embed(registry.ModelInfo("k", Path("k"), card))


def test_stratified_sample_keeps_every_group_and_its_share(tmp_path):
    write_course_layout(tmp_path, {"train": 40, "validation": 10, "test": 2})
    ds = load_dataset(tmp_path, cache=False)
    rows = embeddings.sample_rows(ds, "all", 60, seed=0)
    assert len(rows) == 60 and len(set(rows)) == 60 and np.all(np.diff(rows) > 0)
    groups = {(s, int(k)) for s in ds.split_names for k in range(len(ds.classes))}
    assert {(ds.splits[r], int(ds.labels[r])) for r in rows} == groups  # even 2-image test groups appear
    assert abs(np.sum(ds.splits[rows] == "train") - 60 * 160 / 208) <= 4
    assert not np.array_equal(rows, embeddings.sample_rows(ds, "all", 60, seed=1))
    val = embeddings.sample_rows(ds, "validation", 0)
    assert len(val) == 40 and set(ds.splits[val]) == {"validation"}
    assert len(embeddings.sample_rows(ds, "train", 10_000)) == 160
    with pytest.raises(DataError, match="unknown split 'dev'"):
        embeddings.sample_rows(ds, "dev")


def test_missing_split_is_a_clear_error(gratings):
    with pytest.raises(DataError, match="has no validation images"):
        embeddings.sample_rows(gratings, "validation")


def test_features_are_cached_per_dataset_model_and_sample(env, gratings):
    rows = embeddings.sample_rows(gratings, "all", 40)
    first = embeddings.dataset_features(gratings, rows, "tiny4")
    assert not first.from_cache and first.features.shape == (40, 8) and first.model_id == "tiny4"
    again = embeddings.dataset_features(gratings, rows, "tiny4")
    assert again.from_cache
    np.testing.assert_array_equal(again.features, first.features)
    np.testing.assert_array_equal(again.rows, rows)
    files = sorted((env / "cache" / "features").iterdir())
    assert len(files) == 1
    assert not embeddings.dataset_features(gratings, embeddings.sample_rows(gratings, "all", 40, seed=2),
                                           "tiny4").from_cache  # another sample
    assert not embeddings.dataset_features(gratings, rows, "tiny4rgb").from_cache  # another model
    assert len(list((env / "cache" / "features").iterdir())) == 3
    files[0].write_bytes(b"damaged")
    assert not embeddings.dataset_features(gratings, rows, "tiny4").from_cache  # recomputed, not fatal


def test_default_model_follows_the_label_set(env, gratings):
    assert embeddings.dataset_features(gratings, np.arange(8)).model_id == "tiny4"


def test_uploaded_zip_stays_in_memory(env, tmp_path):
    write_mislabelled_gratings(tmp_path / "src", per_class=12, moved=0.0)
    upload = load_dataset(zip_folder(tmp_path / "src"), cache=False)
    feats = embeddings.dataset_features(upload, None, "tiny4", cache=False)
    assert feats.features.shape == (48, 8)
    assert not (env / "cache").exists()  # nothing written anywhere for an upload


def test_projections_separate_the_classes(env, gratings):
    feats = embeddings.dataset_features(gratings, None, "tiny4")
    y = gratings.labels
    for method in ("pca", "umap"):
        coords, used = embeddings.project_2d(feats.features, method)
        assert used == method and coords.shape == (len(y), 2) and np.isfinite(coords).all()
        # each point's nearest neighbour on the map mostly shares its class
        d = ((coords[:, None] - coords[None]) ** 2).sum(-1) + np.eye(len(y)) * 1e12
        assert np.mean(y[d.argmin(1)] == y) > 0.8, method
    coords, used = embeddings.project_2d(feats.features[:40], "tsne")
    assert used == "tsne" and coords.shape == (40, 2)
    assert embeddings.project_2d(feats.features[:10], "umap")[1] == "pca"  # too few for neighbourhoods
    with pytest.raises(ValueError, match="unknown projection"):
        embeddings.project_2d(feats.features, "mds")


def test_embedding_frame_has_files_labels_predictions_and_issues(env, gratings):
    from fer_core.evaluation.label_issues import rank_label_issues

    feats = embeddings.dataset_features(gratings, embeddings.sample_rows(gratings, "all", 60), "tiny4")
    coords, _ = embeddings.project_2d(feats.features, "pca")
    issues = rank_label_issues(gratings, feats)
    frame = embeddings.embedding_frame(gratings, feats, coords, issues)
    assert len(frame) == 60 and list(frame["row"]) == list(feats.rows)
    assert list(frame["file"]) == list(gratings.files[feats.rows])
    assert list(frame["label"]) == list(gratings.label_names()[feats.rows])
    assert set(frame["prediction"]) <= set(FOUR_CLASS)
    assert set(frame["likely label error"]) <= {"yes", "no"}
    flagged = set(issues.index[issues["label_issue"]])
    assert set(frame.loc[frame["likely label error"] == "yes", "row"]) == flagged
