"""`evaluate` against FER+'s crowd: accuracy on the faces whose majority is in the model's label set,
beside the FER2013 accuracy, in the report, the card, the leaderboard and `evaluate --votes`."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fer_core import cli, registry  # noqa: E402
from fer_core import evaluate as ev  # noqa: E402
from fer_core.data import load_dataset  # noqa: E402
from tests.ferplus_fixtures import votes_row, write_votes_csv  # noqa: E402
from test_evaluate import make_dataset, make_model  # noqa: E402


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "models").mkdir()
    return tmp_path


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
    board = ev.leaderboard([registry.get_model("bright")], "test")
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
