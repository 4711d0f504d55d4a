"""FER+ labels end to end on generated data: `train --label-source ferplus-soft|ferplus-majority` (a tiny
1-epoch run), the card's record of the mode and votes file, and the crowd score of its evaluation."""
from __future__ import annotations


import numpy as np
import pytest


from fer_core import cli
from fer_core.models import registry
from fer_core.base.labels import EIGHT_CLASS, EMOTIONS
from tests.ferplus_fixtures import votes_row, write_votes_csv
from tests.fixtures import write_kaggle_layout


@pytest.fixture
def env(tmp_path, monkeypatch):
    for name, sub in (("FER_CACHE_DIR", "cache"), ("FER_RUNS_DIR", "runs"), ("FER_MODELS_DIR", "models")):
        monkeypatch.setenv(name, str(tmp_path / sub))
    (tmp_path / "models").mkdir()
    return tmp_path


@pytest.fixture
def voted(env):
    """Kaggle folders whose votes mostly agree with the folder; a quarter of the angry faces are
    contempt by the crowd, and one face per split has no votes."""
    root = env / "fer"
    written = write_kaggle_layout(root, {"angry": (8, 4, 0), "happy": (8, 4, 0), "sad": (8, 4, 0)})
    rows = []
    for (emotion, split), files in written.items():
        for i, f in enumerate(files[1:] if emotion == "sad" else files):
            crowd = "contempt" if emotion == "angry" and i % 4 == 0 else emotion
            rows.append((f, split, votes_row(**{crowd: 7, "neutral": 3})))
    write_votes_csv(root / "ferplus_votes.csv", rows)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("source, labels, expected", [
    ("ferplus-soft", "all", EIGHT_CLASS),
    ("ferplus-majority", ",".join(EMOTIONS), EMOTIONS),  # contempt counted as disgust
])
def test_train_on_ferplus_labels_records_mode_and_votes(voted, env, source, labels, expected, capsys, monkeypatch):
    from fer_core.training import fit

    fed = []
    make_input = fit.make_input
    monkeypatch.setattr(fit, "make_input",
                        lambda *a, **kw: fed.append(kw.get("targets")) or make_input(*a, **kw))
    code = cli.main(["train", "--arch", "baseline_cnn", "--data", str(voted), "--epochs", "1", "--batch-size", "8",
                     "--limit", "20", "--label-source", source, "--labels", labels, "--patience", "0"])
    assert code == 0
    model_id = f"baseline_cnn_ferplus_{'8class' if len(expected) == 8 else '7class'}"
    info = registry.get_model(model_id)
    assert tuple(info.labels) == expected
    record = info.card["dataset"]["label_source"]
    fingerprint = __import__("hashlib").sha1((voted / "ferplus_votes.csv").read_bytes()).hexdigest()[:16]
    assert record["label_source"] == source and record["votes_fingerprint"] == fingerprint
    assert record["faces_without_votes"] == 2 and record["faces_left_out"] == 0
    assert record["contempt"] == ("its own class" if len(expected) == 8 else "counted as disgust")
    assert info.card["training"]["config"]["label_source"] == source
    if source == "ferplus-soft":  # training faces learn their vote distribution: 7 for one emotion, 3 neutral
        assert fed[0].shape == (20, 8) and np.allclose(np.sort(fed[0], axis=1)[:, -2:], [0.3, 0.7])
    else:
        assert fed[0] is None  # one-hot majority labels
    assert fed[1] is None  # validation: the majority
    assert info.card["dataset"]["split_sizes"] == {"train": 20, "validation": 11}
    # the validation evaluation after training scores against FER2013's folders and the crowd
    crowd = info.metrics("validation")["ferplus"]
    assert crowd["n"] == 11 and crowd["without_votes"] == 1 and crowd["votes_fingerprint"] == fingerprint
    assert "against the FER+ majority" in capsys.readouterr().out
    probs = np.asarray(registry.load_keras_model(info)(np.zeros((1, 48, 48, 1), np.float32)))
    assert probs.shape == (1, len(expected))


def test_ferplus_source_without_votes_is_a_clear_error(env, capsys):
    write_kaggle_layout(env / "plain")
    code = cli.main(["train", "--arch", "baseline_cnn", "--data", str(env / "plain"), "--epochs", "1",
                     "--label-source", "ferplus-majority", "--no-evaluate"])
    assert code != 0
    err = capsys.readouterr().err
    assert "needs FER+ votes" in err and "Traceback" not in err
