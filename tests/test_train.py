"""Training on a tiny fixture writes a loadable model and a complete card, and resumes after a kill."""
import json
from dataclasses import replace
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fer_core import cli
from fer_core.models import registry
from fer_core.evaluation.model_card import model_card_markdown
from fer_core.models.preprocess import Preprocessing
from fer_core.training import augment, fit, input_pipeline
from fer_core.training.augment import augment_batch
from fer_core.training.card import initial_weights
from fer_core.training.config import TrainConfig
from fer_core.training.input_pipeline import NumpyBatches, make_tf_dataset
from fer_core.training.selection import split_for_training
from fer_core.training.swa import SWA_FILE, apply_swa, recompute_batchnorm
from fer_core.training.train import train
from tests.fixtures import write_course_layout

pytestmark = pytest.mark.slow  # trains models (pyproject.toml's markers; -m 'not slow' skips)


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
    from fer_core.data.datasets import load_dataset

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
    assert card["training"]["initial_weights"] == "random"
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


def test_sigterm_stops_training_and_still_ships_the_best_epoch(tiny_kaggle, tmp_path, monkeypatch, capsys):
    """A time limit (SIGTERM) or Ctrl-C mid-run: the finished epochs are kept and the card says where it stopped."""
    real_callback = fit.checkpoint_callback

    def callback_that_gets_killed(*args):
        checkpoint = real_callback(*args)
        save = checkpoint.on_epoch_end

        def on_epoch_end(epoch, logs=None):
            save(epoch, logs)
            os.kill(os.getpid(), signal.SIGTERM)  # the scheduler's time limit strikes after epoch 1

        checkpoint.on_epoch_end = on_epoch_end
        return checkpoint

    monkeypatch.setattr(fit, "checkpoint_callback", callback_that_gets_killed)
    before = signal.getsignal(signal.SIGTERM)
    info = train(TrainConfig(arch="baseline_cnn", data=str(tiny_kaggle), epochs=3, batch_size=8, patience=0,
                             out=str(tmp_path / "models" / "killed")), verbose=0)
    assert "Stopped after epoch 1 of 3" in capsys.readouterr().out
    assert info.card["training"]["epochs_run"] == 1
    assert info.card["training"]["stopped"] == "interrupted after epoch 1 of 3"
    assert signal.getsignal(signal.SIGTERM) is before  # the previous handler is back once training ends
    assert registry.load_keras_model(info).output_shape == (None, 3)


def test_a_stop_signal_during_a_checkpoint_waits_until_the_files_are_written(tiny_kaggle, tmp_path, monkeypatch):
    real_write = fit.replace_atomically

    def killed_while_writing(path, write):
        if path.name == "best.weights.h5":
            os.kill(os.getpid(), signal.SIGTERM)  # arrives before the best weights are on disk
        real_write(path, write)

    monkeypatch.setattr(fit, "replace_atomically", killed_while_writing)
    info = train(TrainConfig(arch="baseline_cnn", data=str(tiny_kaggle), epochs=3, batch_size=8, patience=0,
                             out=str(tmp_path / "models" / "mid_write")), verbose=0)
    assert info.card["training"]["stopped"] == "interrupted after epoch 1 of 3"
    run_dir = tmp_path / "runs" / "mid_write"
    state = json.loads((run_dir / "state.json").read_text())  # written in full, after the weights
    assert state["epochs_done"] == 1 and state["best_epoch"] == 1
    assert (run_dir / "checkpoint.keras").exists() and not list(run_dir.glob(".partial-*"))


def test_finish_ships_a_run_that_was_killed_for_good(tiny_kaggle, tmp_path):
    config = TrainConfig(arch="baseline_cnn", data=str(tiny_kaggle), epochs=1, batch_size=8, patience=0,
                         out=str(tmp_path / "models" / "cut_short"))
    first = train(config, verbose=0)
    shutil.rmtree(first.path)  # killed before it could write its model: only runs/cut_short/ is left
    config.epochs = 4
    info = train(config, finish=True, verbose=0)
    assert info.card["training"]["epochs_run"] == 1 and len(info.card["training"]["history"]["loss"]) == 1
    assert info.card["training"]["stopped"] == "interrupted after epoch 1 of 4"
    assert "Keras backend" in info.card["training"]["device"]
    with pytest.raises(ValueError, match="nothing to finish"):
        train(replace(config, out=str(tmp_path / "models" / "never_ran")), finish=True, verbose=0)
    assert not (tmp_path / "runs" / "never_ran").exists()


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
    lineage = tuned.card["training"]["init_from"]  # the parent's recipe travels with the fine-tuned card
    assert lineage["id"] == "base" and lineage["command"] == base.card["training"]["command"]
    assert lineage["epochs_run"] == 1 and "init_from" not in base.card["training"]


def test_numpy_augmentation_keeps_shape_range_and_mean():
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (16, 48, 48), dtype=np.uint8)
    np.testing.assert_array_equal(augment_batch(faces, "none", rng), faces.astype(np.float32))
    out = augment_batch(faces, "standard", np.random.default_rng(1))
    assert out.shape == faces.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 255
    assert not np.allclose(out, faces)  # something moved
    np.testing.assert_allclose(out.mean(axis=(1, 2)), faces.mean(axis=(1, 2)), atol=0.12 * 255)
    np.testing.assert_array_equal(out, augment_batch(faces, "standard", np.random.default_rng(1)))  # seeded
    gradient = np.tile(np.arange(48, dtype=np.uint8) * 5, (48, 1))[None]  # left→right ramp
    flipped = [augment_batch(gradient, "light", np.random.default_rng(s))[0] for s in range(12)]
    directions = {bool(f[:, -1].mean() > f[:, 0].mean()) for f in flipped}
    assert directions == {True, False}  # both orientations occur


def test_photo_augmentation_frames_and_degrades_like_a_detector_in_both_pipelines():
    import cv2

    identity = augment._framing_matrix(48, 1.0, 0.0, 0.0, 0.0, False)
    np.testing.assert_allclose(identity, [[1, 0, 0], [0, 1, 0]], atol=1e-6)
    ramp = np.tile(np.arange(48, dtype=np.float32) * 5, (48, 1))  # left→right ramp
    mirror = augment._framing_matrix(48, 1.0, 0.0, 0.0, 0.0, True)
    warped = cv2.warpAffine(ramp, mirror, (48, 48), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    np.testing.assert_allclose(warped, ramp[:, ::-1], atol=1e-3)
    quarter = augment._framing_matrix(48, 1.0, 0.0, 0.0, 90.0, False)  # a quarter turn: the ramp runs vertically
    turned = cv2.warpAffine(ramp, quarter, (48, 48), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    assert np.ptp(turned.mean(axis=1)) > 200 and np.ptp(turned.mean(axis=0)) < 1

    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (16, 48, 48), dtype=np.uint8)
    out = augment_batch(faces, "photo", np.random.default_rng(3))
    assert out.shape == faces.shape and out.dtype == np.float32 and out.min() >= 0 and out.max() <= 255
    assert not np.allclose(out, faces)
    np.testing.assert_array_equal(out, augment_batch(faces, "photo", np.random.default_rng(3)))  # seeded

    ds = make_tf_dataset(np.repeat(ramp.astype(np.uint8)[None], 32, 0), np.zeros(32), Preprocessing(48, 1, "raw"), 3,
                         batch_size=32, augment="photo", seed=2)
    xb = np.asarray(next(iter(ds))[0])[..., 0]
    assert xb.shape == (32, 48, 48) and xb.min() >= 0 and xb.max() <= 255
    directions = {bool(f[:, -8:].mean() > f[:, :8].mean()) for f in xb}
    assert directions == {True, False}  # mirrored and not


def test_numpy_batches_shuffle_scale_and_one_hot():
    images = np.full((10, 48, 48), 255, np.uint8)
    batches = NumpyBatches(images, np.arange(10) % 3, Preprocessing(48, 3, "symmetric"), 3, batch_size=4,
                           shuffle=True, seed=0)
    assert len(batches) == 3
    x, y = batches[2]
    assert x.shape == (2, 48, 48, 3) and y.shape == (2, 3)
    np.testing.assert_allclose(x, 1.0)  # no augmentation: white stays exactly white
    first = batches.order.copy()
    batches.on_epoch_end()
    assert sorted(batches.order) == list(range(10)) and not np.array_equal(first, batches.order)
    labels = np.concatenate([batches[i][1].argmax(1) for i in range(len(batches))])
    assert sorted(labels) == sorted(np.arange(10) % 3)


def test_non_tensorflow_backends_train_through_numpy_batches(tiny_kaggle, tmp_path, monkeypatch):
    """What a JAX/PyTorch backend runs: the whole fit fed by NumpyBatches instead of tf.data."""
    used = []
    monkeypatch.setattr(input_pipeline.keras.backend, "backend", lambda: "jax")
    monkeypatch.setattr(input_pipeline, "NumpyBatches", lambda *a, **k: used.append(a[4:]) or NumpyBatches(*a, **k))
    info = train(TrainConfig(arch="baseline_cnn", data=str(tiny_kaggle), epochs=1, batch_size=8,
                             out=str(tmp_path / "models" / "numpy_fed")), verbose=0)
    assert info.card["training"]["epochs_run"] == 1 and used[0][0] == 8  # the batch size reached it
    assert len(used) == 2  # training and validation batches


def test_training_with_jax_and_without_tensorflow(tiny_kaggle, tmp_path):
    """The GPU machine has JAX but no TensorFlow: training must not import it (skipped without JAX)."""
    pytest.importorskip("jax")
    script = ("import sys; sys.modules['tensorflow'] = None; from fer_core.cli import main; "
              "sys.exit(main(sys.argv[1:]))")
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    run = subprocess.run([sys.executable, "-c", script, "train", "--arch", "baseline_cnn", "--data", str(tiny_kaggle),
                          "--epochs", "1", "--batch-size", "8", "--out", str(tmp_path / "models" / "jax_run")],
                         env=env, cwd=Path(__file__).parent.parent, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    card = json.loads((tmp_path / "models" / "jax_run" / "card.json").read_text())
    assert "Keras backend jax" in card["training"]["device"] and card["evaluations"]


def test_swa_ships_the_mean_of_the_last_epochs_with_fresh_batchnorm_statistics(tiny_kaggle, tmp_path, monkeypatch):
    """--swa N: the shipped trainable weights are the mean of the last N epochs' weights, even across a
    resume, and the card says which epochs and what the averaged model scores."""
    import keras

    seen = []
    real_fold = fit.fold_into_average

    def fold_and_remember(run_dir, state, model, epoch):
        seen.append([keras.ops.convert_to_numpy(v).copy() for v in model.trainable_weights])
        real_fold(run_dir, state, model, epoch)
        if len(seen) == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # a time limit strikes after the first averaged epoch

    monkeypatch.setattr(fit, "fold_into_average", fold_and_remember)
    config = TrainConfig(arch="baseline_cnn", data=str(tiny_kaggle), epochs=3, batch_size=8, patience=0, swa=2,
                         out=str(tmp_path / "models" / "averaged"))
    stopped = train(config, verbose=0)
    assert stopped.card["training"]["swa"]["epochs"] == [2]
    info = train(config, resume=True, verbose=0)
    assert len(seen) == 2  # epochs 2 and 3 (of 3) were averaged; epoch 1 was not
    swa = info.card["training"]["swa"]
    assert swa["epochs"] == [2, 3] and swa["batchnorm_images"] == 18 and 0.0 <= swa["val_accuracy"] <= 1.0
    assert "mean of epochs 2–3 (stochastic weight averaging)" in model_card_markdown(info)
    shipped = registry.load_keras_model(info)
    for got, *epochs in zip(shipped.trainable_weights, *seen):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(got), np.mean(epochs, axis=0), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="--swa"):
        TrainConfig(arch="baseline_cnn", data=".", epochs=2, swa=3)
    with pytest.raises(ValueError, match="--swa-batchnorm"):
        TrainConfig(arch="baseline_cnn", data=".", epochs=2, swa=1, swa_batchnorm="test")


def test_swa_batchnorm_statistics_can_come_from_augmented_faces(tmp_path):
    """--swa-batchnorm augmented: the statistics are those of the faces augmented as training saw them
    (same level, erasing and seed), so they differ from the clean faces' and the card says which."""
    import keras

    from fer_core.models.preprocess import Preprocessing

    keras.utils.set_random_seed(0)
    inputs = keras.Input((48, 48, 1))
    model = keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(inputs))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    np.savez(run_dir / SWA_FILE, **{f"w{i}": keras.ops.convert_to_numpy(w)
                                                 for i, w in enumerate(model.trainable_weights)})
    faces = np.random.default_rng(1).integers(0, 256, (40, 48, 48), dtype=np.uint8)
    faces[:, :, :24] = 20  # a dark left half: flips and shifts move it, so augmented statistics differ
    pre = Preprocessing(input_size=48, channels=1, scale="unit")
    config = TrainConfig(arch="baseline_cnn", data=".", epochs=2, swa=1, augment="strong", erase=0.5, seed=7,
                         swa_batchnorm="augmented")
    record = apply_swa(model, run_dir, {"swa_epochs": [2]}, faces, pre, config)
    augmented = augment.augment_batch(faces, "strong", np.random.default_rng(7), 0.5)
    mean = keras.ops.convert_to_numpy(model.get_layer("bn").moving_mean)
    np.testing.assert_allclose(mean, pre.to_input(augmented).mean(axis=(0, 1, 2)), rtol=1e-4)
    assert record["batchnorm_faces"] == "augmented" and "augmented training faces (strong, erase 0.5)" in record["note"]
    clean = apply_swa(model, run_dir, {"swa_epochs": [2]}, faces, pre,
                                   TrainConfig(arch="baseline_cnn", data=".", epochs=2, swa=1))
    clean_mean = keras.ops.convert_to_numpy(model.get_layer("bn").moving_mean)
    np.testing.assert_allclose(clean_mean, pre.to_input(faces).mean(axis=(0, 1, 2)), rtol=1e-4)
    assert clean["batchnorm_faces"] == "clean" and abs(clean_mean - mean).max() > 1e-3


def test_batchnorm_statistics_are_recomputed_as_the_plain_mean_over_the_inputs():
    import keras

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.BatchNormalization()(inputs))
    x = np.random.default_rng(0).normal(3.0, 2.0, (1000, 4)).astype(np.float32)
    assert recompute_batchnorm(model, x, batch_size=100) == 1
    bn = model.layers[-1]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_mean), x.mean(0), rtol=1e-4)
    batch_vars = x.reshape(10, 100, 4).var(axis=1)  # Keras' per-batch (biased) variance, averaged
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_variance), batch_vars.mean(0), rtol=1e-4)
    assert bn.momentum == 0.99  # restored


def test_bad_arguments_give_one_line_errors(tmp_path, capsys):
    assert cli.main(["train", "--arch", "baseline_cnn", "--data", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(ValueError, match="augment"):
        TrainConfig(arch="baseline_cnn", data=".", augment="wild")


def test_cards_say_what_weights_a_run_started_from():
    from fer_core.models.architectures import get_architecture

    config = TrainConfig(arch="efficientnet_transfer", data=".")
    assert "ImageNet weights not used" in initial_weights(config, get_architecture(config.arch))
    resvgg = get_architecture("fer_resvgg")
    assert initial_weights(replace(config, init_from="m1"), resvgg) == "layers of m1"


def test_random_erasing_paints_one_grey_rectangle_in_both_pipelines():
    faces = np.zeros((64, 48, 48), np.uint8)
    x = augment.erase_batch(faces.astype(np.float32), 1.0, np.random.default_rng(0))
    for face in x:
        rows, cols = np.nonzero(face == 127.5)
        area = len(rows) / 48 ** 2
        assert 0 < area <= 0.3 and len(rows) == (np.ptp(rows) + 1) * (np.ptp(cols) + 1)  # one filled box
    assert not augment.erase_batch(faces.astype(np.float32), 0.0, np.random.default_rng(0)).any()
    ds = make_tf_dataset(faces, np.zeros(64), Preprocessing(48, 1, "raw"), 3, batch_size=64, augment="none",
                         erase=1.0)
    xb, _ = next(iter(ds))
    assert np.all((np.asarray(xb) == 127.5).reshape(64, -1).any(axis=1))
    assert np.isin(np.asarray(xb), (0.0, 127.5)).all()


def test_training_drops_duplicates_of_held_out_faces_and_listed_files(tiny_kaggle, tmp_path):
    from fer_core.data.datasets import load_dataset
    from fer_core.training.selection import exclude_training_rows

    full = load_dataset(tiny_kaggle)
    train_rows, _, _ = split_for_training(full, 0)
    leaked = train_rows.files[0]
    held_out = full.images[full.splits != "train"]
    train_rows.images[0] = held_out[0]  # an exact copy of a held-out face
    listed = tmp_path / "exclude.csv"
    listed.write_text(f"file,given\n{train_rows.files[1]},angry\n")
    config = TrainConfig(arch="baseline_cnn", data=str(tiny_kaggle), exclude=str(listed))
    kept, excluded = exclude_training_rows(train_rows, full, config)
    assert excluded["duplicates_of_held_out"] >= 1 and excluded["listed"] == 1
    assert leaked not in kept.files and train_rows.files[1] not in kept.files
    assert len(kept) == len(train_rows) - excluded["duplicates_of_held_out"] - 1
    config = TrainConfig(arch="baseline_cnn", data=str(tiny_kaggle), exclude_leaks=False)
    assert len(exclude_training_rows(train_rows, full, config)[0]) == len(train_rows)
    with pytest.raises(ValueError, match="cannot read"):
        exclude_training_rows(train_rows, full,
                              TrainConfig(arch="baseline_cnn", data="x", exclude=str(tmp_path / "no.csv")))


def test_balanced_class_weights_reach_the_loss_in_both_pipelines(tiny_kaggle, tmp_path):
    labels = np.array([0] * 6 + [1] * 3 + [2])
    weights = input_pipeline.class_weights(labels, 4, "balanced")
    np.testing.assert_allclose(weights[:3], [10 / 24, 10 / 12, 10 / 4])
    assert weights[3] == 0.0  # a class with no faces gets no weight, not a division by zero
    np.testing.assert_allclose([np.sum(weights[labels] * (labels == k)) for k in range(3)], 10 / 4)
    assert input_pipeline.class_weights(labels, 4, "none") is None
    faces = np.zeros((10, 48, 48), np.uint8)
    x, y, w = next(iter(make_tf_dataset(faces, labels, Preprocessing(48, 1, "unit"), 4, batch_size=10,
                                        weights=weights)))
    np.testing.assert_allclose(np.asarray(w), weights[np.asarray(y).argmax(1)])
    x, y, w = NumpyBatches(faces, labels, Preprocessing(48, 1, "unit"), 4, batch_size=10, weights=weights)[0]
    np.testing.assert_allclose(w, weights[y.argmax(1)])
    with pytest.raises(ValueError, match="class-weight"):
        TrainConfig(arch="baseline_cnn", data=".", class_weight="inverse")
    info = train(TrainConfig(arch="baseline_cnn", data=str(tiny_kaggle), epochs=1, batch_size=8,
                             class_weight="balanced", out=str(tmp_path / "models" / "weighted")), verbose=0)
    assert info.card["training"]["config"]["class_weight"] == "balanced"
