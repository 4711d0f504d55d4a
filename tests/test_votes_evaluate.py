"""`evaluate` against FER+'s crowd: accuracy on the faces whose majority is in the model's label set,
beside the FER2013 accuracy, in the report, the card, the leaderboard and `evaluate --votes`."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image


from fer_core import cli
from fer_core.models import registry
from fer_core.evaluation import evaluate as ev
from fer_core.evaluation import leaderboard
from fer_core.data.datasets import load_dataset
from tests.ferplus_fixtures import votes_row, write_votes_csv
from tests.model_fixtures import make_dataset, make_model


def test_evaluate_scores_against_the_crowd_majority(env):
    """The brightness model (happy above mid-grey) on faces whose crowd votes are planted: the FER+ figure
    counts only faces with a majority in {happy, sad}, whatever their folder says."""
    data = make_dataset(env / "data")
    info = make_model(env / "models", "bright")
    crowd = {"test/happy/happy_3_60.png": votes_row(sad=8, neutral=2),     # model says sad: right by the crowd
             "test/sad/sad_2_180.png": votes_row(sad=4, happy=4, fear=2),   # no majority
             "test/happy/happy_2_240.png": votes_row(neutral=9, happy=1)}   # neutral: outside the label set
    ds = load_dataset(data)
    rows = [(f, s, crowd.get(f, votes_row(**{f.split("/")[1]: 9, "neutral": 1})))
            for f, s in zip(ds.files, ds.splits) if s != "train"]
    write_votes_csv(data / "ferplus_votes.csv", rows)
    result = ev.evaluate_model(info, ds, split="test", latency=False, save=True)
    assert result["accuracy"] == pytest.approx(5 / 7)  # FER2013 labels: 60 happy and 180 sad wrong
    scores = result["ferplus"]
    assert scores["accuracy"] == 1.0 and scores["n"] == 5 and scores["no_majority"] == 2
    assert scores["ci"][0] < 0.9 and scores["ci"][1] == pytest.approx(1.0)  # 5 faces: a wide interval
    assert "against the FER+ majority (ferplus_votes.csv): accuracy 1.0000" in ev.format_report(result, info)
    board = leaderboard.leaderboard([registry.get_model("bright")], "test")
    assert board.loc[0, "FER+ accuracy"] == 1.0 and board.loc[0, "FER+ faces"] == 5
    (data / "ferplus_votes.csv").unlink()
    assert ev.evaluate_model(info, load_dataset(data), split="test", latency=False)["ferplus"] is None


def test_evaluate_cli_takes_a_votes_file(env, capsys):
    data = make_dataset(env / "data")
    make_model(env / "models", "bright")
    ds = load_dataset(data)
    votes = write_votes_csv(env / "elsewhere.csv", [(f, s, votes_row(sad=10)) for f, s in zip(ds.files, ds.splits)])
    assert cli.main(["evaluate", "--model", "bright", "--data", str(data), "--split", "test", "--no-save",
                     "--json", "--votes", str(votes)]) == 0
    result = json.loads(capsys.readouterr().out)
    # the angry faces are outside the (happy, sad) model; of the 7 others the crowd calls all sad, the model 3
    assert result["ferplus"]["n"] == 7 and result["ferplus"]["accuracy"] == pytest.approx(3 / 7)


def test_rescore_adds_the_crowd_to_a_saved_evaluation_without_running_the_model(env, capsys, monkeypatch):
    """Votes that arrive after an evaluation: `evaluate --rescore` scores the saved predictions against them
    and keeps the run's own accuracy; predictions of another copy of the data are refused."""
    data = make_dataset(env / "data")
    info = make_model(env / "models", "bright")
    saved = ev.evaluate_model(info, load_dataset(data), split="test", latency=False, save=True)
    assert saved["ferplus"] is None
    ds = load_dataset(data)
    write_votes_csv(data / "ferplus_votes.csv", [(f, s, votes_row(sad=10)) for f, s in zip(ds.files, ds.splits)])
    monkeypatch.setattr(ev, "predict_split", lambda *a, **k: pytest.fail("--rescore must not run the model"))
    rescore = ["evaluate", "--model", "bright", "--data", str(data), "--split", "test", "--rescore"]
    assert cli.main(rescore) == 0, capsys.readouterr().err
    assert "against the FER+ majority (ferplus_votes.csv): accuracy 0.4286" in capsys.readouterr().out
    entry = registry.get_model("bright").metrics("test")
    assert entry["ferplus"]["n"] == 7 and entry["accuracy"] == pytest.approx(saved["accuracy"])
    assert entry["evaluated_at"] == saved["evaluated_at"] and entry["rescored_at"]
    changed = data / "test" / "happy" / "happy_3_60.png"  # other data under the same name: one face redrawn
    Image.fromarray(np.full((48, 48), 7, np.uint8)).save(changed)
    assert cli.main(rescore) == 2
    assert "run `evaluate` without --rescore" in capsys.readouterr().err


def make_contempt_model(models_dir, model_id: str = "contempt8"):
    """An 8-class model that answers contempt for every face."""
    import keras
    import numpy as np

    from fer_core.base.labels import EIGHT_CLASS

    inputs = keras.Input((48, 48, 1))
    outputs = keras.layers.Dense(8, activation="softmax")(keras.layers.GlobalAveragePooling2D()(inputs))
    model = keras.Model(inputs, outputs)
    model.layers[-1].set_weights([np.zeros((1, 8), np.float32), 10 * np.eye(8, dtype=np.float32)[7]])
    folder = models_dir / model_id
    folder.mkdir(parents=True)
    model.save(folder / registry.MODEL_FILE)
    registry.write_card(folder, {"id": model_id, "name": "Always contempt", "architecture": "fixture",
                                 "labels": list(EIGHT_CLASS), "params": 16, "default": False,
                                 "preprocessing": {"input_size": 48, "channels": 1, "scale": "unit"},
                                 "dataset": {"label_source": {"label_source": "ferplus-majority"}}})
    return registry.get_model(model_id, models_dir)


@pytest.fixture
def contempt_votes(env):
    data = make_dataset(env / "data")
    ds = load_dataset(data)
    crowd = {"test/happy/happy_0_200.png": votes_row(contempt=8, neutral=2),
             "test/happy/happy_1_220.png": votes_row(disgust=8, neutral=2),
             "test/sad/sad_0_30.png": votes_row(contempt=5, disgust=5)}  # 8 classes: a tie; 7: disgust
    write_votes_csv(data / "ferplus_votes.csv", [(f, s, crowd.get(f, votes_row(**{f.split("/")[1]: 9, "fear": 1})))
                                                 for f, s in zip(ds.files, ds.splits)])
    return load_dataset(data)


def test_an_eight_class_model_also_gets_a_seven_class_view(env, contempt_votes):
    info = make_contempt_model(env / "models")
    bright = make_model(env / "models", "bright")
    scores = ev.evaluate_model(info, contempt_votes, split="test", latency=False, save=True)["ferplus"]
    assert scores["n"] == 8 and scores["accuracy"] == pytest.approx(1 / 8)  # only happy_0's crowd says contempt
    seven = scores["seven_class"]  # contempt answers read as disgust, contempt votes as disgust
    assert seven["n"] == 9 and seven["accuracy"] == pytest.approx(3 / 9) and seven["contempt"] == "counted as disgust"
    ev.evaluate_model(bright, contempt_votes, split="test", latency=False, save=True)
    frame = leaderboard.crowd_frame([registry.get_model("bright"), registry.get_model("contempt8")], "test")
    frame = frame.set_index("model")
    assert frame.loc["contempt8", "FER+ accuracy (7-class view)"] == pytest.approx(3 / 9)
    assert frame.loc["contempt8", "trained on labels"] == "ferplus-majority"
    assert pd.isna(frame.loc["bright", "FER+ accuracy (7-class view)"])  # a 2-class model has no 7-class view
    # bright (happy above mid-grey) on the faces whose majority is happy or sad: 240 happy ✓, 60 happy ✗ (says
    # sad), 50 sad ✓, 180 sad ✗ (says happy); 200 (contempt), 220 and 30 (disgust) are outside its emotions
    assert frame.loc["bright", "own faces"] == 4 and frame.loc["bright", "FER+ accuracy (own emotions)"] == 0.5


def test_comparison_page_shows_the_crowd_beside_fer2013(env, contempt_votes, monkeypatch):
    from tests.page_fixtures import run_comparison_page as run_page

    monkeypatch.setenv("FER_DATA_DIR", str(env / "data"))
    make_contempt_model(env / "models")
    make_model(env / "models", "bright")
    for model_id in ("contempt8", "bright"):
        ev.evaluate_model(model_id, contempt_votes, split="test", latency=False, save=True)
    at = run_page()
    at.radio(key="split").set_value("test").run()
    assert not at.exception, at.exception
    board = at.dataframe[0].value
    assert {"accuracy", "FER+ accuracy", "FER+ faces"} <= set(board.columns) and board["FER+ accuracy"].notna().all()
    assert "Against the crowd (FER+)" in [h.value for h in at.header]
    crowd = next(d.value for d in at.dataframe if "FER+ accuracy (7-class view)" in d.value.columns)
    assert set(crowd["model"]) == {"contempt8", "bright"}


def test_label_issues_json_scores_the_flags_against_the_crowd(env, capsys):
    from fer_core.base.labels import FOUR_CLASS
    from tests.fixtures import write_mislabelled_gratings
    from tests.model_fixtures import make_fixture_model

    root = env / "gratings"
    moved = write_mislabelled_gratings(root, per_class=30, moved=0.1, seed=1)
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    write_votes_csv(root / "ferplus_votes.csv",
                    [(f, "train", votes_row(**{Path(f).name.split("_")[0]: 10})) for f in files])
    make_fixture_model(env / "models", "tiny4", FOUR_CLASS, default=True)
    assert cli.main(["label-issues", "--data", str(root), "--json", "--all"]) == 0
    doc = json.loads(capsys.readouterr().out)
    crowd = doc["crowd"]
    assert crowd["faces_with_majority"] == 120 and crowd["label_differs_from_majority"] == len(moved)
    flagged = {r["file"] for r in doc["files"] if r["label_issue"]}
    assert crowd["flagged"] == len(flagged) and crowd["flagged_and_differs"] == len(flagged & set(moved))
    assert crowd["recall"] == pytest.approx(len(flagged & set(moved)) / len(moved))
