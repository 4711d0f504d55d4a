"""fer_core.evaluation.label_issues: planted label errors are found (the issue's done-when check on generated data),
probabilities are truly out-of-sample, odd label sets and layouts work, and the CLI writes a CSV that
`train --exclude` reads back."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from fer_core import cli
from fer_core.evaluation import embeddings
from fer_core.data.datasets import load_dataset
from fer_core.evaluation.label_issues import COLUMNS, find_label_issues, out_of_sample_probabilities, rank_label_issues
from fer_core.base.labels import FOUR_CLASS
from fer_core.training.selection import read_file_list
from tests.fixtures import grating_images, write_fer_csv, write_mislabelled_gratings, zip_folder
from tests.model_fixtures import make_fixture_model


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    make_fixture_model(root, "tiny4", FOUR_CLASS, default=True)
    make_fixture_model(root, "tiny7", default=True, seed=2)
    return root


@pytest.fixture
def env(tmp_path, monkeypatch, models_dir):
    monkeypatch.setenv("FER_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture
def noisy(env):
    """240 gratings (one orientation per emotion) with 12 (5 %) in a wrong emotion's folder."""
    moved = write_mislabelled_gratings(env / "data", per_class=60, moved=0.05, seed=0)
    return env / "data", moved


def test_planted_label_errors_rank_on_top(noisy):
    root, moved = noisy
    assert len(moved) == 12
    ds = load_dataset(root)
    issues = find_label_issues(ds, "tiny4", "all")
    assert list(issues.columns) == list(COLUMNS) and len(issues) == len(ds)
    top = set(issues["file"].head(len(moved)))
    assert len(top & set(moved)) / len(moved) >= 0.4  # the issue's bar; this data gives ≈ 0.9
    assert issues["label_issue"].iloc[0] and not issues["label_issue"].iloc[-1]
    assert (np.diff(issues["score"][issues["label_issue"]]) <= 0).all()  # flagged first, most doubtful first
    first = issues.iloc[0]
    true_emotion = first["file"].split("/")[-1].split("_")[0]
    assert first["given_label"] != true_emotion and first["suggested_label"] == true_emotion
    assert list(issues.index[:3]) == [int(np.flatnonzero(ds.files == f)[0]) for f in issues["file"][:3]]
    assert issues.attrs["model"] == "tiny4" and issues.attrs["folds"] == 5 and issues.attrs["caveat"] is None


def test_probabilities_are_out_of_sample():
    """Random labels on noise features: an in-sample fit memorises them, cross-validation cannot."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 64))
    y = rng.integers(0, 4, 200)
    probs = out_of_sample_probabilities(x, y, folds=5)
    assert probs.shape == (200, 4)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
    in_sample = LogisticRegression(C=0.1, max_iter=500).fit(x, y).predict_proba(x)
    assert in_sample[np.arange(200), y].mean() > 0.4
    assert probs[np.arange(200), y].mean() < 0.3  # ≈ chance (0.25)


def test_tiny_classes_are_left_out_and_too_few_is_an_error(env):
    write_fer_csv(env / "fer2013.csv", {("happy", "Training"): 12, ("sad", "Training"): 10, ("angry", "Training"): 1})
    ds = load_dataset(env / "fer2013.csv")
    issues = find_label_issues(ds, "tiny7", "train")
    assert len(issues) == 22 and issues.attrs["skipped_classes"] == ["angry"]
    assert set(issues["given_label"]) == {"happy", "sad"} and issues.attrs["folds"] == 5
    assert all(f.startswith("fer2013.csv:row ") for f in issues["file"])
    with pytest.raises(ValueError, match="at least two emotions"):
        find_label_issues(ds.subset(["angry", "happy"]), "tiny7", "all")


def test_small_classes_use_fewer_folds(env):
    write_mislabelled_gratings(env / "d", emotions=("happy", "sad"), per_class=3, moved=0.0)
    issues = find_label_issues(load_dataset(env / "d"), "tiny4")
    assert issues.attrs["folds"] == 3 and len(issues) == 6


def test_training_images_of_the_models_own_dataset_get_a_caveat(env, noisy):
    ds = load_dataset(noisy[0])
    feats = embeddings.dataset_features(ds, None, "tiny4")
    assert rank_label_issues(ds, feats).attrs["caveat"] is None
    trained = replace(feats, trained_on={"source": "/elsewhere/data", "fingerprint": "x"})  # same folder name
    assert "was trained on this dataset's train images" in rank_label_issues(ds, trained).attrs["caveat"]


def test_uploaded_zip_and_a_label_subset(env, noisy):
    upload = load_dataset(zip_folder(noisy[0]), cache=False).subset(["happy", "sad"])
    issues = find_label_issues(upload, "tiny4", cache=False)
    assert len(issues) == len(upload) and set(issues["given_label"]) == {"happy", "sad"}
    assert set(issues["suggested_label"]) <= {"happy", "sad"}
    assert not (env / "cache").exists()


def test_cli_csv_feeds_train_exclude(env, noisy, capsys):
    root, moved = noisy
    out = env / "issues.csv"
    assert cli.main(["label-issues", "--data", str(root), "--model", "tiny4", "--out", str(out), "--top", "3"]) == 0
    printed = capsys.readouterr().out
    assert "likely mislabelled" in printed and "--exclude" in printed
    table = pd.read_csv(out)
    assert list(table.columns) == list(COLUMNS) and table["label_issue"].all() and len(table) >= 5
    listed = read_file_list(str(out))
    assert set(listed) <= set(load_dataset(root).files) and len(set(listed) & set(moved)) >= 5

    argv = ["label-issues", "--data", str(root), "--split", "train", "--json", "--all", "--sample", "100"]
    assert cli.main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["n"] == 100 and len(doc["files"]) == 100 and doc["model"] == "tiny4"
    assert set(doc["files"][0]) == set(COLUMNS)


@pytest.mark.parametrize("argv, message", [
    (["--split", "validation"], "has no validation images"),
    (["--model", "nope"], "no model 'nope'"),
    (["--out", "/no/such/folder/x.csv"], "folder /no/such/folder does not exist"),
    (["--folds", "1"], "--folds must be at least 2"),
])
def test_cli_errors_are_one_line(env, noisy, capsys, argv, message):
    assert cli.main(["label-issues", "--data", str(noisy[0]), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_gratings_differ_by_class():
    """The generator's classes really are distinct patterns (else the tests above prove nothing)."""
    a, b = grating_images(20, 0, seed=1), grating_images(20, 90, seed=1)
    grad_x = lambda im: np.abs(np.diff(im.astype(float), axis=2)).mean()  # noqa: E731
    grad_y = lambda im: np.abs(np.diff(im.astype(float), axis=1)).mean()  # noqa: E731
    assert grad_x(a) > 2 * grad_y(a) and grad_y(b) > 2 * grad_x(b)
