"""fer_core.evaluation: metrics against scikit-learn and hand-computed values, the saved predictions, the
comparison tables, and evaluate_model on a fixture model whose every prediction is known in closed form."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from fer_core.evaluation import evaluate as ev
from fer_core.evaluation import comparison, leaderboard, metrics, scores
from fer_core.evaluation.predictions import load_predictions, save_evaluation
from fer_core.models import registry
from fer_core.data.datasets import load_dataset
from tests.model_fixtures import TEST_FACES, VALIDATION_FACES, make_dataset, make_model, p_happy

# The brightness models and their faces are in tests/model_fixtures.py; the `env` fixture is in conftest.py.


# ----------------------------------------------------------------------------- pure metrics

def _random_case(seed=0, n=300, k=5):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 2 * np.eye(k)[y] * rng.random((n, 1))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, p


def test_metrics_match_scikit_learn():
    y, p = _random_case()
    y_pred = p.argmax(axis=1)
    labels = ["a", "b", "c", "d", "e"]
    assert metrics.accuracy(y, y_pred) == pytest.approx(skm.accuracy_score(y, y_pred))
    assert metrics.macro_f1(y, y_pred) == pytest.approx(skm.f1_score(y, y_pred, average="macro"))
    np.testing.assert_array_equal(metrics.confusion_matrix(y, y_pred, 5),
                                  skm.confusion_matrix(y, y_pred, labels=range(5)))
    assert metrics.log_loss(y, p) == pytest.approx(skm.log_loss(y, p, labels=range(5)), rel=1e-6)
    prec, rec, f1, sup = skm.precision_recall_fscore_support(y, y_pred, labels=range(5), zero_division=0)
    report = metrics.per_class_report(y, y_pred, labels)
    for i, name in enumerate(labels):
        assert report[name] == pytest.approx({"precision": prec[i], "recall": rec[i], "f1": f1[i], "support": sup[i]})


def test_macro_f1_ignores_absent_classes_and_handles_zero_division():
    y_true, y_pred = [0, 0, 1, 1], [0, 1, 1, 1]  # class 2 never occurs
    assert metrics.macro_f1(y_true, y_pred) == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))
    report = metrics.per_class_report([0, 0], [1, 1], ["x", "y", "z"])
    assert report["x"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert report["y"]["precision"] == 0.0 and report["z"]["support"] == 0


def test_ece_and_reliability_bins_by_hand():
    # confidences 0.9 (right), 0.9 (wrong), 0.6 (right), 0.55 (wrong): bins (13/15,14/15] and (8/15,9/15]
    p = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.55, 0.45]])
    y = np.array([0, 1, 1, 1])
    bins = metrics.reliability_bins(y, p)
    assert len(bins) == 15 and sum(b["count"] for b in bins) == 4
    high = bins[13]
    assert high["count"] == 2 and high["confidence"] == pytest.approx(0.9) and high["accuracy"] == 0.5
    mid = bins[8]
    assert mid["count"] == 2 and mid["confidence"] == pytest.approx(0.575) and mid["accuracy"] == 0.5
    expected = (2 * abs(0.5 - 0.9) + 2 * abs(0.5 - 0.575)) / 4
    assert metrics.expected_calibration_error(y, p) == pytest.approx(expected)
    perfect = np.eye(3)[[0, 1, 2, 0]]
    assert metrics.expected_calibration_error([0, 1, 2, 0], perfect) == pytest.approx(0.0)


def test_accuracy_interval_known_values():
    # Wilson 95 %: 50 of 100 → 0.4038–0.5962; 0 of 10 → 0–0.2775 (the normal interval would be 0–0)
    assert metrics.accuracy_interval(0.5, 100) == pytest.approx((0.40383, 0.59617), abs=1e-5)
    assert metrics.accuracy_interval(0.0, 10) == pytest.approx((0.0, 0.27753), abs=1e-5)
    assert metrics.accuracy_interval(1.0, 10) == pytest.approx((0.72247, 1.0), abs=1e-5)
    narrow, wide = metrics.accuracy_interval(0.7, 3589), metrics.accuracy_interval(0.7, 3589, level=0.99)
    assert wide[0] < narrow[0] < 0.7 < narrow[1] < wide[1] and narrow[1] - narrow[0] == pytest.approx(0.030, abs=1e-3)
    assert all(np.isnan(metrics.accuracy_interval(0.5, 0)))


def test_mcnemar_known_values():
    # chi-square branch: b=86, c=150 → (|86−150|−1)²/236 = 16.818, p = 4.115e-5 (statsmodels' example table)
    a = np.r_[np.ones(794 + 86), np.zeros(150 + 570)].astype(bool)
    b = np.r_[np.ones(794), np.zeros(86), np.ones(150), np.zeros(570)].astype(bool)
    r = metrics.mcnemar(a, b)
    assert (r["b"], r["c"]) == (86, 150)
    assert r["statistic"] == pytest.approx(3969 / 236)
    assert r["p_value"] == pytest.approx(4.1150e-05, rel=1e-3)
    assert r["method"].startswith("chi-square")
    # exact branch: b=1, c=9 → p = 2·(1 + 10)/1024
    a = np.r_[np.ones(1), np.zeros(9), np.ones(5)].astype(bool)
    b = np.r_[np.zeros(1), np.ones(9), np.ones(5)].astype(bool)
    r = metrics.mcnemar(a, b)
    assert (r["b"], r["c"], r["statistic"]) == (1, 9, 1.0)
    assert r["p_value"] == pytest.approx(22 / 1024) and r["method"] == "exact binomial"
    assert metrics.mcnemar([True, False], [True, False])["p_value"] == 1.0
    assert metrics.mcnemar([True] * 3 + [False] * 3, [False] * 3 + [True] * 3)["p_value"] == 1.0  # b = c
    with pytest.raises(ValueError):
        metrics.mcnemar([True], [True, False])


def test_normalize_rows():
    np.testing.assert_allclose(metrics.normalize_rows([[1, 3], [0, 0]]), [[0.25, 0.75], [0, 0]])


# ----------------------------------------------------------------------------- evaluate_model

def _expected(faces, threshold=0.5):
    """(y_true, p) in the model's (happy, sad) order for the non-angry faces, in file order."""
    y, p = [], []
    for emotion in ("happy", "sad"):  # load order is sorted paths: happy/ before sad/, then by index
        for v in faces[emotion]:
            y.append(0 if emotion == "happy" else 1)
            ph = p_happy(v, threshold)
            p.append([ph, 1 - ph])
    return np.array(y), np.array(p)


def test_evaluate_model_known_answer(env):
    info = make_model(env / "models", "bright", default=True)
    ds = load_dataset(make_dataset(env / "data"), cache=False)
    assert ds.classes == ("angry", "happy", "sad")  # model order differs from dataset indices: mapped by name
    result = ev.evaluate_model(info.id, ds, split="test")
    # happy 200/220/240 right, 60 wrong; sad 30/50 right, 180 wrong; two angry faces skipped
    assert result["n"] == 7 and result["skipped"] == 2 and result["skipped_by_class"] == {"angry": 2}
    assert result["labels"] == ["happy", "sad"]
    assert result["confusion_matrix"] == [[3, 1], [1, 2]]
    assert result["accuracy"] == pytest.approx(5 / 7)
    assert result["per_class"]["happy"] == pytest.approx({"precision": 0.75, "recall": 0.75, "f1": 0.75, "support": 4})
    assert result["per_class"]["sad"]["f1"] == pytest.approx(2 / 3)
    assert result["macro_f1"] == pytest.approx((0.75 + 2 / 3) / 2)
    y, p = _expected(TEST_FACES)
    assert result["log_loss"] == pytest.approx(skm.log_loss(y, p), rel=1e-4)
    assert result["ece"] == pytest.approx(metrics.expected_calibration_error(y, p), abs=1e-5)
    assert result["split"] == "test" and result["split_description"] == "test" and result["tta"] == "none"
    assert result["dataset"]["fingerprint"] == ds.fingerprint
    assert result["latency_ms_per_face"] > 0 and result["device"]
    json.dumps(result)  # card-ready
    assert info.metrics("test") is None  # save=False writes nothing
    assert not (info.path / "eval").exists()


def test_evaluate_saves_card_and_predictions(env):
    info = make_model(env / "models", "bright")
    ds = load_dataset(make_dataset(env / "data"), cache=False)
    result = ev.evaluate_model(info, ds, split="validation", tta=True, latency=False)
    assert not (info.path / "eval").exists()
    save_evaluation(info, result)  # the predictions travel with the result
    assert result["tta"] == "flip" and result["n"] == 4 and result["skipped"] == 1
    assert result["confusion_matrix"] == [[1, 1], [1, 1]]  # 210 happy ✓, 90 ✗; 40 sad ✓, 230 ✗
    card = registry.read_card(info.path)
    (saved,) = card["evaluations"].values()  # keyed by the dataset's content id and the split
    assert saved["accuracy"] == pytest.approx(0.5) and saved["dataset"]["id"] == scores.dataset_id(ds)
    pred = load_predictions(registry.get_model("bright"), "validation")
    assert pred.labels == ("happy", "sad") and pred.probabilities.dtype == np.float32
    assert sorted(pred.files) == sorted(f for f in ds.split("validation").files if "/angry/" not in f)
    y, p = _expected(VALIDATION_FACES)
    np.testing.assert_array_equal(pred.y_true, y)
    np.testing.assert_allclose(pred.probabilities, p, atol=1e-3)  # stored as float16
    assert load_predictions(info, "test") is None
    with pytest.raises(ValueError, match="predictions"):
        save_evaluation(info, dict(result))


def test_evaluate_errors(env):
    info = make_model(env / "models", "bright")
    ds = load_dataset(make_dataset(env / "data"), cache=False)
    with pytest.raises(ValueError, match="none of"):
        ev.evaluate_model(info, _only_angry(ds), "test")
    with pytest.raises(ValueError, match="split"):
        ev.evaluate_model(info, ds, split="train")
    with pytest.raises(registry.RegistryError):
        ev.evaluate_model("nope", ds)


def _only_angry(ds):
    keep = ds.label_names() == "angry"
    return ds._take(keep)


def test_comparison_tables_and_mcnemar_from_saved_predictions(env):
    a = make_model(env / "models", "bright_a", 0.5)
    b = make_model(env / "models", "bright_b", 0.8)  # happy only above 204: gets 200 wrong, 180 right
    ds = load_dataset(make_dataset(env / "data"), cache=False)
    for info in (a, b):
        ev.evaluate_model(info, ds, "test", save=True, latency=False)
    infos = registry.list_models()
    board = leaderboard.leaderboard(infos, "test")
    assert list(board["model"]) == ["bright_a", "bright_b"] and board["accuracy"].tolist() == pytest.approx([5 / 7] * 2)
    assert board.loc[0, ["CI low", "CI high"]].tolist() == pytest.approx(metrics.accuracy_interval(5 / 7, 7))
    assert leaderboard.leaderboard(infos, "validation")["evaluated on"].tolist() == ["not evaluated"] * 2
    preds = {i.id: load_predictions(i, "test") for i in infos}
    pairs = comparison.pairwise_mcnemar(preds)
    row = pairs.iloc[0]
    # A right/B wrong: the 200 happy face; A wrong/B right: the 180 sad face → b = c = 1, p = 1
    assert (row["A right, B wrong"], row["A wrong, B right"], row["images"]) == (1, 1, 7)
    assert row["p-value"] == 1.0 and row["verdict"] == "no significant difference"
    matrix = comparison.pvalue_matrix(pairs)
    assert matrix.loc["bright_a", "bright_b"] == 1.0 and np.isnan(matrix.loc["bright_a", "bright_a"])
    wrong = comparison.misclassified(preds["bright_a"], "happy", "sad")
    assert len(wrong) == 1 and wrong["file"][0].endswith("happy_3_60.png")
    assert wrong["confidence"][0] == pytest.approx(1 - p_happy(60), abs=1e-3)
    assert comparison.top_confusions(preds["bright_a"]) == [("happy", "sad", 1), ("sad", "happy", 1)] or \
        comparison.top_confusions(preds["bright_a"]) == [("sad", "happy", 1), ("happy", "sad", 1)]
    images = comparison.lookup_images(ds, list(wrong["file"]) + ["elsewhere/happy/missing.png"])
    assert images[0].mean() == 60 and images[1] is None
    curves = leaderboard.history_frame(infos)
    assert set(curves["phase"]) == {"train", "validation"} and len(curves) == 2 * 4 * 4
    infos[0].card["training"]["swa"] = {"epochs": [2, 3, 4], "val_accuracy": 0.61}  # a run that shipped an SWA mean
    level = leaderboard.history_frame(infos).query("phase == @leaderboard.SWA_PHASE")
    assert level[["model", "epoch", "metric", "value"]].values.tolist() == [["bright_a", 2, "accuracy", 0.61],
                                                                           ["bright_a", 4, "accuracy", 0.61]]
    assert set(leaderboard.per_class_frame(infos, "test")["emotion"]) == {"happy", "sad"}
    assert leaderboard.reliability_frame(infos, "test")["count"].sum() == 14


# ----------------------------------------------------------------------------- CLI

def test_cli_evaluate_json_and_models(env, capsys):
    from fer_core import cli

    make_model(env / "models", "bright", default=True)
    data = make_dataset(env / "data")
    assert cli.main(["evaluate", "--model", "bright", "--data", str(data), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["accuracy"] == pytest.approx(5 / 7) and out["n"] == 7 and out["labels"] == ["happy", "sad"]
    assert (env / "models" / "bright" / "eval" / out["dataset"]["id"] / "test.npz").exists()

    assert cli.main(["evaluate", "--model", "bright", "--data", str(data), "--split", "validation", "--no-save"]) == 0
    text = capsys.readouterr().out
    assert "accuracy 0.5000 (95% CI " in text and "Confusion matrix" in text
    assert registry.get_model("bright").metrics("validation") is None

    assert cli.main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1 and rows[0]["id"] == "bright" and rows[0]["default"] is True
    assert rows[0]["test_accuracy"] == pytest.approx(5 / 7) and rows[0]["validation_accuracy"] is None
    assert rows[0]["params"] == 4 and rows[0]["labels"] == ["happy", "sad"]
    assert cli.main(["models"]) == 0
    assert "bright" in capsys.readouterr().out


def test_cli_errors_are_one_line(env, capsys):
    from fer_core import cli

    assert cli.main(["evaluate", "--model", "missing", "--data", str(env)]) == 2
    assert capsys.readouterr().err.startswith("error: no model 'missing'")
    make_model(env / "models", "bright")
    assert cli.main(["evaluate", "--model", "bright", "--data", str(env / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_set_default_moves_the_flag_within_a_label_set(env, capsys):
    from fer_core import cli

    make_model(env / "models", "first", default=True)
    make_model(env / "models", "second")
    assert cli.main(["models", "--json", "--set-default", "second"]) == 0
    rows = {r["id"]: r["default"] for r in json.loads(capsys.readouterr().out)}
    assert rows == {"first": False, "second": True}
    assert registry.default_model(("happy", "sad")).id == "second"
    assert cli.main(["models", "--set-default", "third"]) == 2


def test_training_budget_counts_the_init_from_chain():
    parent = {"epochs_run": 20, "wall_time_s": 6000.0}
    child = {"epochs_run": 4, "wall_time_s": 900.0, "init_from": {"id": "p", **parent}}
    assert leaderboard.training_budget(child) == (24, 115.0)
    assert leaderboard.training_budget(parent) == (20, 100.0)
    assert leaderboard.training_budget({}) == (0, 0.0)


def test_training_devices_name_every_run_once_so_gpu_minutes_are_not_read_as_cpu_minutes():
    cpu = {"command": "a", "finished_at": "t1", "device": "CPU: Xeon (2 cores), Keras backend tensorflow"}
    gpu = {"command": "b", "finished_at": "t2", "device": "1× GPU (NVIDIA H200), Keras backend jax"}
    resumed = {"command": "c", "finished_at": "t3",
               "device": "1× GPU (NVIDIA H200), Keras backend jax then CPU: Xeon (2 cores), Keras backend jax"}
    older = {"command": "d", "finished_at": "t4", "device": "CPU (2 cores, Keras backend tensorflow)"}
    ensemble = {"members": [cpu, gpu, {**gpu, "init_from": older}]}
    assert leaderboard.training_devices(ensemble) == "CPU + 1× GPU (NVIDIA H200)"
    assert leaderboard.training_devices(gpu) == "1× GPU (NVIDIA H200)"
    assert leaderboard.training_devices(resumed) == "1× GPU (NVIDIA H200) + CPU"
    assert leaderboard.training_devices({}) == ""
