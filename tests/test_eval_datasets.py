"""Evaluations keyed by dataset: a second dataset never overwrites the first, old cards are read and
migrated, and the clean part of a split (no duplicate in Training) is scored beside the full split."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image


from fer_core.evaluation import evaluate as ev
from fer_core.evaluation import leaderboard, scores
from fer_core.evaluation.predictions import load_predictions, predictions_path
from fer_core.models import eval_datasets, registry
from fer_core.data.datasets import load_dataset
from tests.fixtures import make_face_images, write_kaggle_layout
from tests.model_fixtures import make_dataset, make_model


def make_second_dataset(root):
    """Another labelled dataset (a user's own folder): test/<emotion>/ only, other gray levels, 6 faces."""
    for emotion, levels in {"happy": [190, 250, 70], "sad": [20, 200, 35]}.items():
        folder = root / "test" / emotion
        folder.mkdir(parents=True)
        for i, v in enumerate(levels):
            Image.fromarray(np.full((48, 48), v, np.uint8)).save(folder / f"{emotion}_{i}.png")
    return root


def test_second_dataset_keeps_first_results_and_leaderboard(env):
    a = make_model(env / "models", "bright_a", 0.5, default=True)
    b = make_model(env / "models", "bright_b", 0.8)
    first = load_dataset(make_dataset(env / "data"), cache=False)
    for info in (a, b):
        ev.evaluate_model(info, first, "test", save=True, latency=False)
    infos = registry.list_models()
    choice = leaderboard.dataset_choices(infos, "test")[0]
    board_before = leaderboard.leaderboard(infos, "test", choice)
    saved_before = registry.get_model("bright_a").metrics("test")
    npz_before = predictions_path(registry.get_model("bright_a"), "test").read_bytes()

    second = load_dataset(make_second_dataset(env / "ck_plus"), cache=False)
    other = ev.evaluate_model("bright_a", second, "test", save=True, latency=False)
    assert other["dataset"]["name"] == "ck_plus" and other["n"] == 6
    assert other["accuracy"] == pytest.approx(4 / 6)  # 190, 250 happy ✓, 70 ✗; 20, 35 sad ✓, 200 ✗

    infos = registry.list_models()
    bright_a = registry.get_model("bright_a")
    assert bright_a.metrics("test") == saved_before  # the home (first) dataset's result is untouched
    assert predictions_path(bright_a, "test").read_bytes() == npz_before
    assert len(bright_a.evaluations) == 2
    choices = leaderboard.dataset_choices(infos, "test")
    assert [c["name"] for c in choices] == ["data", "ck_plus"]  # the most-evaluated dataset is the default
    assert choices[0]["id"] == choice["id"] and choices[1]["models"] == ["bright_a"]
    board_after = leaderboard.leaderboard(infos, "test", choices[0])
    assert board_after.equals(board_before)
    assert leaderboard.leaderboard(infos, "test", choices[1])["accuracy"].tolist()[0] == pytest.approx(4 / 6)

    cross = leaderboard.cross_dataset_frame(infos, choices[0])
    assert len(cross) == 1
    row = cross.iloc[0]
    assert (row["model"], row["dataset"], row["images"]) == ("bright_a", "ck_plus", 6)
    assert row["accuracy"] == pytest.approx(4 / 6) and row["macro-F1"] == pytest.approx(other["macro_f1"])
    # predictions are kept per dataset, so the Comparison page pairs the right images
    pred = load_predictions(bright_a, "test", choices[1])
    assert len(pred) == 6 and all("/" in f and f.startswith("test/") for f in pred.files)
    assert len(load_predictions(bright_a, "test", choices[0])) == 7
    assert load_predictions(registry.get_model("bright_b"), "test", choices[1]) is None


def test_old_cards_are_read_and_replaced_by_the_same_data(env):
    """A card from before content ids (`metrics` keyed by split) is read by name; re-evaluating the
    same-named data of the same size replaces it and its prediction file, another dataset does not."""
    info = make_model(env / "models", "bright", default=True)
    data = make_dataset(env / "fer2013")
    first = load_dataset(data, cache=False)
    fresh = ev.evaluate_model(info, first, "test", latency=False)
    legacy = {k: v for k, v in fresh.items() if k != "clean"}
    legacy["dataset"] = {"fingerprint": "0123456789abcdef", "source": "../elsewhere/fer2013", "layout": "split-folders"}
    card = registry.read_card(info.path)
    card["metrics"] = {"test": legacy}
    registry.write_card(info.path, card)
    (info.path / "eval").mkdir()
    (info.path / "eval" / "test.npz").write_bytes(b"old predictions")

    info = registry.get_model("bright")
    assert info.metrics("test")["accuracy"] == pytest.approx(5 / 7)
    (choice,) = leaderboard.dataset_choices([info], "test")
    assert choice["name"] == "fer2013" and choice["id"] is None and "before dataset ids" in choice["label"]
    assert predictions_path(info, "test") == info.path / "eval" / "test.npz"

    ev.evaluate_model(info, load_dataset(make_second_dataset(env / "ck"), cache=False), "test", save=True,
                      latency=False)
    info = registry.get_model("bright")
    assert len(info.evaluations) == 2 and (info.path / "eval" / "test.npz").exists()
    assert "metrics" not in registry.read_card(info.path)  # migrated into `evaluations` on write

    ev.evaluate_model(info, first, "test", save=True, latency=False)
    info = registry.get_model("bright")
    names = sorted(eval_datasets.dataset_name(e["dataset"]) for e in info.evaluations.values())
    assert names == ["ck", "fer2013"] and all(e["dataset"]["id"] for e in info.evaluations.values())
    assert not (info.path / "eval" / "test.npz").exists()
    assert leaderboard.dataset_choices([info], "test")[0]["id"] == scores.dataset_id(first)


def test_clean_accuracy_leaves_out_training_duplicates(env):
    """Validation faces with an exact or near duplicate in Training are scored apart as the dirty part."""
    faces = make_face_images(20, seed=3, distinct=True)
    near = np.clip(faces[1].astype(int) + 6, 0, 255).astype(np.uint8)  # a brightened copy
    # order written: happy train 4, happy validation 3, sad train 4, sad validation 3
    images = [*faces[0:4], faces[0], near, faces[10], *faces[4:8], faces[11], faces[12], faces[7]]
    write_kaggle_layout(env / "data", {"happy": (4, 3, 0), "sad": (4, 3, 0)}, images=images, ext="png")
    ds = load_dataset(env / "data", cache=False)
    info = make_model(env / "models", "bright")
    result = ev.evaluate_model(info, ds, "validation", latency=False, save=True)
    clean = result["clean"]
    assert (clean["n"], clean["duplicates"]) == (3, 3) and clean["reference"] == "train"
    pred = load_predictions(registry.get_model("bright"), "validation")
    assert pred.clean.tolist() == result.predictions.clean.tolist() and pred.clean.sum() == 3
    assert clean["accuracy"] == pytest.approx(pred.correct[pred.clean].mean())
    board = leaderboard.leaderboard(registry.list_models(), "validation")
    assert board["clean accuracy"][0] == pytest.approx(clean["accuracy"])
    json.dumps(result)
    # a dataset without Training images has no clean part to report
    assert ev.evaluate_model(info, load_dataset(make_second_dataset(env / "ck"), cache=False), "test",
                             latency=False)["clean"] is None


def test_comparison_page_keeps_datasets_apart(env, monkeypatch):
    """On the page: the default leaderboard is the first dataset's, the second dataset shows up in the
    cross-dataset table with its name and n, and picking it shows its own leaderboard."""
    from tests.page_fixtures import run_comparison_page as run_page

    monkeypatch.setenv("FER_DATA_DIR", str(env / "data"))
    a = make_model(env / "models", "bright_a", 0.5, default=True)
    b = make_model(env / "models", "bright_b", 0.8)
    first = load_dataset(make_dataset(env / "data"), cache=False)
    results = {i.id: ev.evaluate_model(i, first, "test", save=True, latency=False) for i in (a, b)}
    ev.evaluate_model("bright_a", load_dataset(make_second_dataset(env / "ck_plus"), cache=False), "test",
                      save=True, latency=False)
    at = run_page()
    at.selectbox(key="group").set_value("all").run()  # the page opens on the defaults group: bright_a alone
    assert not at.exception, at.exception
    board = at.dataframe[0].value
    assert set(board["model"]) == {"bright_a", "bright_b"}
    for _, row in board.iterrows():
        assert row["accuracy"] == pytest.approx(results[row["model"]]["accuracy"])
    cross = at.dataframe[1].value
    assert cross[["model", "dataset", "images"]].values.tolist() == [["bright_a", "ck_plus", 6]]
    assert cross["accuracy"][0] == pytest.approx(4 / 6)
    picker = at.selectbox(key="dataset")
    assert picker.value["name"] == "data"
    picker.select_index(1).run()
    assert not at.exception, at.exception
    board = at.dataframe[0].value
    assert board.set_index("model")["accuracy"].to_dict()["bright_a"] == pytest.approx(4 / 6)
    assert board.set_index("model")["accuracy"].isna().to_dict()["bright_b"]
    assert "Not evaluated on the test split of ck_plus: bright_b" in "\n".join(w.value for w in at.warning)
