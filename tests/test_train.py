"""Training on a tiny fixture writes a loadable model and a complete card, and resumes after a kill."""
import json

import numpy as np
import pytest

from fer_core import cli, registry
from fer_core.preprocess import Preprocessing
from fer_core.train import TrainConfig, make_tf_dataset, split_for_training, train
from tests.fixtures import write_course_layout, write_kaggle_layout


@pytest.fixture
def tiny_kaggle(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FER_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("FER_MODELS_DIR", str(tmp_path / "models"))
    root = tmp_path / "fer"
    write_kaggle_layout(root, {"angry": (6, 3, 2), "happy": (6, 3, 2), "sad": (6, 3, 2)})
    return root


def test_pipeline_scales_augments_and_one_hots():
    images = np.full((10, 48, 48), 255, np.uint8)
    ds = make_tf_dataset(images, np.arange(10) % 3, Preprocessing(48, 1, "unit"), 3, batch_size=4, augment="standard",
                         shuffle=True, seed=1)
    x, y = next(iter(ds))
    assert x.shape == (4, 48, 48, 1) and y.shape == (4, 3)
    assert float(np.max(x)) <= 1.0 and float(np.min(x)) >= 0.0
    np.testing.assert_allclose(np.sum(y, axis=1), 1.0)
    x3, _ = next(iter(make_tf_dataset(images, np.zeros(10), Preprocessing(48, 3, "symmetric"), 3, batch_size=2)))
    assert x3.shape == (2, 48, 48, 3)
    np.testing.assert_allclose(x3, 1.0)  # no augmentation: white stays exactly white


def test_validation_never_comes_from_test_rows(tiny_kaggle):
    from fer_core.data import load_dataset

    ds = load_dataset(tiny_kaggle)
    train_rows, val_rows, source = split_for_training(ds, seed=0)
    assert set(train_rows.splits) == {"train"} and set(val_rows.splits) == {"validation"}
    assert source == "validation"


def test_train_writes_loadable_model_and_complete_card(tiny_kaggle, tmp_path):
    out = tmp_path / "models" / "tiny"
    code = cli.main(["train", "--arch", "baseline_cnn", "--data", str(tiny_kaggle), "--epochs", "2",
                     "--batch-size", "8", "--out", str(out), "--no-evaluate"])
    assert code == 0
    info = registry.get_model("tiny")
    card = info.card
    for key in ("architecture", "labels", "preprocessing", "params", "file_size_bytes", "dataset", "training"):
        assert key in card
    assert card["labels"] == ["angry", "happy", "sad"]
    assert card["dataset"]["split_sizes"] == {"train": 18, "validation": 9}
    assert card["training"]["epochs_run"] == 2
    assert len(card["training"]["history"]["val_accuracy"]) == 2
    assert card["training"]["command"].startswith("python -m fer_core train --arch baseline_cnn")
    assert card["training"]["config"]["epochs"] == 2
    model = registry.load_keras_model(info)
    probs = np.asarray(model(info.preprocessing.apply(np.zeros((2, 48, 48), np.uint8))))
    assert probs.shape == (2, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_resume_continues_after_the_last_checkpoint(tiny_kaggle, tmp_path, capsys):
    config = TrainConfig(arch="baseline_cnn", data=str(tiny_kaggle), epochs=1, batch_size=8, patience=0,
                         out=str(tmp_path / "models" / "resumable"))
    train(config, verbose=0)
    config.epochs = 3  # the run was "killed" after epoch 1 of 3
    info = train(config, resume=True, verbose=0)
    assert "Resuming resumable after epoch 1" in capsys.readouterr().out
    history = info.card["training"]["history"]
    assert len(history["loss"]) == 3 and info.card["training"]["epochs_run"] == 3
    state = json.loads((tmp_path / "runs" / "resumable" / "state.json").read_text())
    assert state["epochs_done"] == 3


def test_four_class_training_on_course_layout_with_init_from(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FER_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("FER_MODELS_DIR", str(tmp_path / "models"))
    root = tmp_path / "course"
    write_course_layout(root, {"train": 4, "validation": 2, "test": 2})
    base = train(TrainConfig(arch="fer_resvgg", data=str(root), epochs=1, batch_size=8,
                             out=str(tmp_path / "models" / "base")), verbose=0)
    assert base.labels == ("happy", "sad", "surprise", "neutral")
    tuned = train(TrainConfig(arch="fer_resvgg", data=str(root), labels="happy,sad", epochs=1, batch_size=8,
                              init_from="base", out=str(tmp_path / "models" / "tuned")), verbose=0)
    assert tuned.labels == ("happy", "sad")
    assert tuned.card["dataset"]["split_sizes"]["validation"] == 4


def test_bad_arguments_give_one_line_errors(tmp_path, capsys):
    assert cli.main(["train", "--arch", "baseline_cnn", "--data", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(ValueError, match="augment"):
        TrainConfig(arch="baseline_cnn", data=".", augment="wild")
