"""Batch scoring: inputs (folders, zips, videos), rows equal to `predict`, unreadable files listed,
resuming after an interruption, the shared batching classifier, and Ray Data equal to one machine."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data as skdata

from fer_core.serving import batch
from fer_core.models import registry
from fer_core.serving import scoring
from fer_core.serving.batch import run_batch
from fer_core.serving.batch_inputs import expand_inputs
from fer_core.serving.batching import BatchingClassifier
from fer_core.serving.scoring import ScoreOptions
from fer_core.cli import main as cli_main
from fer_core.inference.predict import Classifier, analyze_image
from fer_core.video.files import write_mp4
from fer_core.video.sample import sample_clip
from tests.fixtures import encode, make_face_images
from tests.model_fixtures import make_fixture_model

FACES = 6  # pre-cropped 48×48 faces in the folder


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    make_fixture_model(root, "tiny7")
    make_fixture_model(root, "tiny7b", default=False, seed=3)
    return root


@pytest.fixture()
def env_models(models_dir, monkeypatch):
    monkeypatch.setenv("FER_MODELS_DIR", str(models_dir))
    return models_dir


@pytest.fixture(scope="module")
def clf(models_dir) -> Classifier:
    return Classifier.from_registry(registry.get_model("tiny7", models_dir))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Faces, the astronaut photo, a zip of faces, a short clip of real faces, one broken file, clutter."""
    root = tmp_path_factory.mktemp("photos")
    faces = make_face_images(FACES + 3, seed=2)
    (root / "crops").mkdir()
    for i, face in enumerate(faces[:FACES]):
        (root / "crops" / f"face_{i}.png").write_bytes(encode(face, "png"))
    Image.fromarray(skdata.astronaut()).save(root / "astronaut.jpg", quality=92)
    with zipfile.ZipFile(root / "more.zip", "w") as zf:
        for i, face in enumerate(faces[FACES:]):
            zf.writestr(f"inner/z{i}.jpg", encode(face, "jpg"))
        zf.writestr("__MACOSX/inner/._z0.jpg", b"resource fork")
        zf.writestr("inner/notes.txt", "not an image")
    (root / "clip.mp4").write_bytes(write_mp4(sample_clip(8, size=(320, 240)), fps=8))
    (root / "broken.jpg").write_bytes(b"\xff\xd8 this is not really a JPEG")
    (root / "readme.txt").write_text("ignored")
    (root / ".hidden.png").write_bytes(encode(faces[0], "png"))
    return root


def test_inputs_are_images_zip_members_and_videos(folder):
    items, problems = expand_inputs([folder, folder / "missing.jpg"])
    by_kind = {k: sorted(Path(it.file).name for it in items if it.kind == k) for k in ("image", "zip", "video")}
    assert by_kind["image"] == sorted([*(f"face_{i}.png" for i in range(FACES)), "astronaut.jpg", "broken.jpg"])
    members = [it.file.split("!")[1] for it in items if it.kind == "zip"]
    assert members == ["inner/z0.jpg", "inner/z1.jpg", "inner/z2.jpg"]
    assert by_kind["video"] == ["clip.mp4"]
    assert problems == [(str(folder / "missing.jpg"), "does not exist")]
    with pytest.raises(ValueError, match="every-nth-frame"):
        ScoreOptions(every_nth_frame=0)
    with pytest.raises(ValueError, match="unknown face detector"):
        ScoreOptions(detector="yolo")


def test_rows_are_what_predict_finds(folder, clf):
    item = next(it for it in expand_inputs([folder])[0] if it.file.endswith("astronaut.jpg"))
    rows, error = scoring.score_item(item, clf, ScoreOptions(tta="flip"))
    ref = analyze_image(skdata.astronaut(), clf, tta="flip")  # JPEG vs raw pixels: same face, close probs
    assert error is None and len(rows) == len(ref.faces) == 1
    face = ref.faces[0].to_dict()
    assert abs(rows[0]["x"] - face["box"][0]) <= 2 and abs(rows[0]["w"] - face["box"][2]) <= 2
    assert rows[0]["frame"] is None and rows[0]["whole_image"] is False and rows[0]["model"] == "tiny7"
    for label in clf.labels:
        assert rows[0][label] == pytest.approx(face["probabilities"][label], abs=0.05)

    crop = next(it for it in expand_inputs([folder / "crops"])[0])
    rows, _ = scoring.score_item(crop, clf, ScoreOptions(detector="none"))
    pixels = np.asarray(Image.open(crop.path).convert("RGB"))
    exact = analyze_image(pixels, clf, "none")  # the detector `none`: the whole image is the face
    assert len(rows) == 1 and rows[0]["whole_image"] and (rows[0]["w"], rows[0]["h"]) == (48, 48)
    assert [rows[0][e] for e in clf.labels] == pytest.approx(list(exact.faces[0].probabilities.values()), abs=1e-6)


def test_cli_scores_a_folder_lists_unreadable_files_and_skips_done_ones(folder, env_models, tmp_path, capsys):
    out = tmp_path / "results.csv"
    assert cli_main(["batch", str(folder), "--out", str(out), "--whole-image", "--every-nth-frame", "4"]) == 0
    table = pd.read_csv(out)
    err = capsys.readouterr().err
    assert "broken.jpg" in err and (tmp_path / "results.errors.csv").exists()
    assert pd.read_csv(tmp_path / "results.errors.csv")["file"].str.endswith("broken.jpg").all()
    files = set(table["file"])
    assert len([f for f in files if "face_" in f]) == FACES and len([f for f in files if "!" in f]) == 3
    video = table[table["file"].str.endswith("clip.mp4")]
    assert set(video["frame"]) == {0, 4} and video["face"].max() >= 2  # two real faces per frame
    assert (video["time"] == video["frame"] / 8).all()
    assert np.allclose(table[list(registry.get_model("tiny7").labels)].sum(axis=1), 1.0, atol=1e-5)
    assert table["label"].notna().all() and set(table["model"]) == {"tiny7"}

    assert cli_main(["batch", str(folder), "--out", str(out), "--whole-image", "--every-nth-frame", "4"]) == 0
    assert "1 file(s) scored" in capsys.readouterr().out  # only the broken file is tried again
    pd.testing.assert_frame_equal(pd.read_csv(out), table)
    assert cli_main(["batch", str(folder), "--out", str(out), "--model", "tiny7b"]) == 2
    assert "holds results of model tiny7" in capsys.readouterr().err
    assert cli_main(["batch", str(folder), "--out", str(tmp_path / "x.json")]) == 2
    assert cli_main(["batch", str(tmp_path / "empty"), "--out", str(out), "--ray", str(folder)]) == 2
    assert "not a Ray address" in capsys.readouterr().err


def test_interrupted_run_resumes_where_it_stopped(folder, env_models, tmp_path, monkeypatch):
    options = ScoreOptions(detector="none")
    full = run_batch([folder / "crops"], tmp_path / "full.parquet", "tiny7", options)
    real = batch.score_many
    calls = []

    def flaky(items, *args, **kw):
        calls.append(len(items))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(items, *args, **kw)

    monkeypatch.setattr(batch, "score_many", flaky)
    out = tmp_path / "resumed.parquet"
    with pytest.raises(KeyboardInterrupt):
        run_batch([folder / "crops"], out, "tiny7", options, chunk=2)
    assert not out.exists() and len(list(out.with_name(out.name + ".partial").glob("part-*.json"))) == 1
    with pytest.raises(ValueError, match="other settings"):
        run_batch([folder / "crops"], out, "tiny7", ScoreOptions(detector="haar"), chunk=2)
    monkeypatch.setattr(batch, "score_many", real)
    lock = out.with_name(out.name + ".partial") / "lock"
    lock.write_text(str(os.getppid()))  # a live process holds it
    with pytest.raises(ValueError, match=f"another batch run \\(pid {os.getppid()}\\)"):
        run_batch([folder / "crops"], out, "tiny7", options, chunk=2)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(gone.stdout.strip())  # left behind by a process that has ended: taken over
    again = run_batch([folder / "crops"], out, "tiny7", options, chunk=2)
    assert (again.skipped, again.scored) == (2, FACES - 2)
    assert not out.with_name(out.name + ".partial").exists()
    pd.testing.assert_frame_equal(again.table, full.table)
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(tmp_path / "full.parquet"))


def test_batching_classifier_merges_concurrent_calls_and_matches_the_classifier(clf):
    batched = BatchingClassifier(clf)
    crops = [np.asarray(f) for f in make_face_images(24, seed=5)]
    expected = clf.predict(crops, tta="flip")
    results, barrier = {}, threading.Barrier(8)

    def worker(k):
        barrier.wait()
        results[k] = batched.predict(crops[3 * k:3 * k + 3], tta="flip")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    np.testing.assert_allclose(np.concatenate([results[k] for k in range(8)]), expected, atol=1e-6)
    assert batched.calls < 8  # at least two callers shared a forward pass
    assert batched.labels == clf.labels and batched.resolve_tta(None) == clf.resolve_tta(None)
    assert batched.predict([]).shape == (0, len(clf.labels))
    batched.close()


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")
def test_ray_data_gives_the_single_machine_results(folder, env_models, tmp_path):
    import ray

    try:
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 runtime_env={"py_modules": [str(Path(batch.__file__).parents[1])]})
    except Exception as err:  # noqa: BLE001 — no shared memory, ports or /tmp space for Ray here
        pytest.skip(f"a local Ray instance could not start: {err}")
    try:
        inputs = [folder / "crops", folder / "more.zip", folder / "astronaut.jpg", folder / "broken.jpg"]
        local = run_batch(inputs, tmp_path / "local.parquet", "tiny7", ScoreOptions(whole_image=True))
        remote = run_batch(inputs, tmp_path / "ray.parquet", "tiny7", ScoreOptions(whole_image=True),
                           ray_address="", ray_actors=1)
    finally:
        ray.shutdown()
    assert remote.engine == "ray" and local.engine == "threads"
    assert remote.errors == local.errors and len(local.errors) == 1
    assert len(local.table) == FACES + 3 + 1
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "ray.parquet"),
                                  pd.read_parquet(tmp_path / "local.parquet"),
                                  check_exact=False, rtol=1e-6, atol=1e-6)
