"""fer_core.evaluation.robustness: corruptions, the seeded stratified subset, the report's clean point and the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest


from fer_core.evaluation import evaluate as ev
from fer_core.models import registry
from fer_core.evaluation import robustness as rb
from fer_core.data.datasets import load_dataset
from tests.fixtures import make_face_images
from tests.model_fixtures import make_model, write_gray_faces

# the brightness model says happy above gray 127.5: every clean validation face is right
VALIDATION = {"happy": [200, 220, 240], "sad": [30, 50], "angry": [128]}


def make_data(root):
    return write_gray_faces(root, {"validation": VALIDATION, "train": {"happy": [250], "sad": [5]}})


def test_corruptions_grow_with_severity_and_are_deterministic():
    faces = make_face_images(12, seed=1, distinct=True)
    for name in rb.CORRUPTIONS:
        np.testing.assert_array_equal(rb.corrupt(faces, name, 0), faces)  # severity 0 is the clean face
        change = [np.abs(rb.corrupt(faces, name, s).astype(float) - faces).mean() for s in rb.SEVERITIES]
        assert change[0] == 0 and all(b > a for a, b in zip(change, change[1:])), (name, change)
        again = rb.corrupt(faces, name, 3)
        np.testing.assert_array_equal(again, rb.corrupt(faces, name, 3))
        assert again.dtype == np.uint8 and again.shape == faces.shape
    assert not np.array_equal(rb.corrupt(faces, "noise", 2, seed=0), rb.corrupt(faces, "noise", 2, seed=1))
    with pytest.raises(ValueError, match="unknown corruption"):
        rb.corrupt(faces, "fog", 1)
    with pytest.raises(ValueError, match="severity"):
        rb.corrupt(faces, "blur", 9)


def test_stratified_subset_is_fixed_and_proportional(env):
    ds = load_dataset(make_data(env / "data"), cache=False)
    images, y, files, description = rb.stratified_subset(ds, ("happy", "sad"), n=3)
    assert description == "validation" and len(y) == 3
    assert np.bincount(y).tolist() == [2, 1]  # 3 × 3/5 = 1.8 happy, 1.2 sad → 2 + 1
    assert rb.stratified_subset(ds, ("happy", "sad"), n=3)[2].tolist() == files.tolist()
    everything = rb.stratified_subset(ds, ("happy", "sad"), n=100)
    assert len(everything[1]) == 5 and not any("angry" in f for f in everything[2])
    with pytest.raises(ValueError, match="none of the model's emotions"):
        rb.stratified_subset(ds, ("fear",), n=3)


def test_report_clean_point_equals_the_clean_score_and_strong_corruption_differs(env):
    info = make_model(env / "models", "bright")
    ds = load_dataset(make_data(env / "data"), cache=False)
    report = rb.robustness_report(info, ds, n=100)
    full = ev.evaluate_model(info, ds, "validation", latency=False)  # n ≥ split: the subset is the split
    assert report["n"] == full["n"] == 5 and report["clean"]["accuracy"] == full["accuracy"] == 1.0
    assert report["clean"]["log_loss"] == pytest.approx(full["log_loss"], rel=1e-6)
    for name, curve in report["corruptions"].items():
        assert curve["severity"] == [0, 1, 2, 3, 4] and len(curve["accuracy"]) == 5
        assert [curve[k][0] for k in ("accuracy", "macro_f1", "log_loss")] == \
            [report["clean"][k] for k in ("accuracy", "macro_f1", "log_loss")]
    dark = report["corruptions"]["low_light"]
    assert dark["accuracy"][-1] == pytest.approx(2 / 5)  # every face goes dark: all called sad
    assert dark["log_loss"][-1] > dark["log_loss"][0]
    again = rb.robustness_report(info, ds, n=100)
    assert again["corruptions"] == report["corruptions"]  # deterministic
    assert not (info.path / "card.json").read_text().count("robustness")  # save=False writes nothing
    json.dumps(report)


def test_saved_report_frames_and_cli(env, capsys):
    from fer_core import cli

    info = make_model(env / "models", "bright")
    data = make_data(env / "data")
    assert cli.main(["robustness", "--model", "bright", "--data", str(data), "--n", "4"]) == 0
    out = capsys.readouterr().out
    assert "low_light" in out and "Saved into" in out
    info = registry.get_model("bright")
    (saved,) = info.card["robustness"].values()
    assert saved["n"] == 4 and saved["per_class_n"] == {"happy": 2, "sad": 2}
    assert rb.report_of(info)["corruptions"] == saved["corruptions"]
    frame = rb.robustness_frame([info])
    assert len(frame) == len(rb.CORRUPTIONS) * len(rb.SEVERITIES) and set(frame["n"]) == {4}
    summary = rb.summary_frame([info])
    row = summary[summary["corruption"] == "low_light"].iloc[0]
    assert row["clean"] == 1.0 and row["worst"] == 0.5 and row["drop"] == 0.5

    assert cli.main(["robustness", "--model", "bright", "--data", str(data), "--n", "4", "--no-save",
                     "--json", "--seed", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["seed"] == 3
    assert registry.get_model("bright").card["robustness"] == info.card["robustness"]
    assert cli.main(["robustness", "--model", "nope", "--data", str(data)]) == 2
    assert cli.main(["robustness", "--model", "bright", "--data", str(data), "--n", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 2 and "Traceback" not in err
