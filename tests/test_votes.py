"""FER+ crowd votes (fer_core.data.votes): reading both file formats, FER+'s majority and soft-label protocols,
clear errors for files that do not fit, the Explorer's agreement views, and scoring against the crowd."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fer_core.data import crowd as C, votes as V
from fer_core.data.datasets import load_dataset
from fer_core.base.labels import EIGHT_CLASS, EMOTIONS, FOUR_CLASS
from tests.ferplus_fixtures import votes_row, write_fer2013new, write_votes_csv
from tests.fixtures import write_fer_csv, write_kaggle_layout


def counts(**kw) -> np.ndarray:
    """One face's votes in the dataset's column order (VOTE_ORDER)."""
    row = np.zeros(len(V.VOTE_ORDER), np.int16)
    for name, n in kw.items():
        row[V.VOTE_ORDER.index({"nf": "not a face"}.get(name, name))] = n
    return row


# ----------------------------------------------------------------------------- protocols

def test_majority_follows_ferplus_protocol():
    faces = np.stack([
        counts(neutral=5, happy=4, fear=1),                 # 5 of 9 after the single fear vote is dropped
        counts(neutral=4, happy=4, fear=2),                 # a tie: no majority
        counts(happy=5, sad=1, fear=1, angry=1, neutral=1, surprise=1),  # 5 of 10, but single votes go: 5 of 5
        counts(unknown=6, happy=4),                         # unknown wins: left out
        counts(nf=10),                                      # not a face
        counts(contempt=6, angry=4),                        # contempt: own class or disgust
        counts(),                                           # no votes
    ])
    assert V.majority(faces, EIGHT_CLASS).tolist() == [6, -1, 3, -1, -1, 7, -1]
    assert V.majority(faces, EMOTIONS).tolist() == [6, -1, 3, -1, -1, 1, -1]   # contempt counted as disgust
    assert V.majority(faces, FOUR_CLASS).tolist() == [3, -1, 0, -1, -1, -1, -1]  # happy is index 0 of 4class


def test_soft_targets_are_the_vote_distribution_without_single_votes():
    faces = np.stack([counts(happy=6, surprise=3, fear=1), counts(unknown=6, happy=4), counts(contempt=2, disgust=2)])
    targets, usable = V.soft_targets(faces, EIGHT_CLASS)
    np.testing.assert_allclose(targets[0, [EIGHT_CLASS.index("happy"), EIGHT_CLASS.index("surprise")]], [2 / 3, 1 / 3])
    assert targets[0].sum() == pytest.approx(1.0) and targets[0, EIGHT_CLASS.index("fear")] == 0
    assert usable.tolist() == [True, False, True]  # unknown holds more than half of face 1's votes
    seven, _ = V.soft_targets(faces, EMOTIONS)
    assert seven[2, EMOTIONS.index("disgust")] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- reading and attaching

@pytest.fixture
def kaggle(tmp_path, monkeypatch):
    """Kaggle folders with a ferplus_votes.csv beside them: most faces agree with their folder, a few
    planted cases do not, and one file has no votes."""
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "fer"
    written = write_kaggle_layout(root, {"angry": (4, 3, 0), "happy": (4, 3, 0), "sad": (4, 3, 0)})
    planted = {written[("angry", "train")][0]: votes_row(happy=7, angry=3),        # crowd: happy
               written[("sad", "train")][0]: votes_row(sad=4, neutral=4, fear=2),  # no majority
               written[("happy", "train")][0]: votes_row(unknown=6, happy=4),      # unknown
               written[("angry", "validation")][0]: votes_row(contempt=6, angry=4)}
    missing = written[("sad", "validation")][2]
    rows = [(f, split, planted.get(f, votes_row(**{emotion: 8, "neutral": 2})))
            for (emotion, split), files in written.items() for f in files if f != missing]
    write_votes_csv(root / "ferplus_votes.csv", rows)
    return root, written, missing


def test_votes_beside_kaggle_folders_are_found_and_aligned(kaggle):
    root, written, missing = kaggle
    ds = V.attach_votes(load_dataset(root))
    assert ds.votes.shape == (21, 10)
    assert ds.votes_info["format"] == "file-keyed" and ds.votes_info["faces_without_votes"] == 1
    assert len(ds.votes_info["fingerprint"]) == 16
    names = dict(zip(ds.files, V.majority_names(ds)))
    assert names[written[("angry", "train")][0]] == "happy"
    assert names[written[("sad", "train")][0]] == V.NO_MAJORITY
    assert names[written[("angry", "validation")][0]] == "contempt"
    assert names[missing] == V.NO_VOTES
    assert names[written[("happy", "validation")][1]] == "happy"
    part = ds.split("validation").subset(["angry", "sad"])  # votes follow every row selection
    assert part.votes.shape == (len(part), 10)
    assert (part.votes.sum(axis=1) > 0).sum() == len(part) - 1


def test_no_votes_file_leaves_the_dataset_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    write_kaggle_layout(tmp_path / "fer")
    ds = V.attach_votes(load_dataset(tmp_path / "fer"))
    assert ds.votes is None and ds.votes_info is None


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace(",8,", ",x,", 1), "row 3: column anger holds 'x'"),
    (lambda t: t.replace("train/", "elsewhere/", 1), "row 2 names elsewhere/"),
    (lambda t: t.replace(",Training,", ",PublicTest,", 1),
     "row 2: train/angry/Training_10007.jpg is PublicTest there but in the train split"),
    (lambda t: t + t.splitlines()[1] + "\n", "repeats"),
    (lambda t: t.replace("contempt,", "", 1), "lacks the vote column(s) contempt"),
])
def test_bad_votes_files_name_the_first_offending_row(kaggle, edit, message):
    root, _, _ = kaggle
    path = root / "ferplus_votes.csv"
    path.write_text(edit(path.read_text()))
    with pytest.raises(V.VotesError, match=message.replace("(", r"\(").replace(")", r"\)")):
        V.attach_votes(load_dataset(root))


def test_votes_named_explicitly_and_a_missing_path(kaggle, tmp_path):
    root, _, _ = kaggle
    elsewhere = tmp_path / "votes.csv"
    (root / "ferplus_votes.csv").rename(elsewhere)
    ds = load_dataset(root)
    assert V.attach_votes(ds).votes is None
    assert V.attach_votes(ds, elsewhere).votes_info["file"] == str(elsewhere)
    with pytest.raises(V.VotesError, match="does not exist"):
        V.attach_votes(ds, tmp_path / "nope.csv")


def test_official_fer2013new_is_row_aligned_with_fer2013_csv(tmp_path, monkeypatch, kaggle):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    csv = tmp_path / "csv" / "fer2013.csv"
    write_fer_csv(csv, {("angry", "Training"): 2, ("happy", "PublicTest"): 2})
    write_fer2013new(csv.parent / "fer2013new.csv", [
        ("train", votes_row(angry=9, sad=1)), ("train", None),
        ("validation", votes_row(sad=6, happy=4)), ("validation", votes_row(happy=10))])
    ds = V.attach_votes(load_dataset(csv))
    assert ds.votes_info["format"] == "fer2013new" and ds.votes_info["faces_without_votes"] == 1
    assert V.majority_names(ds).tolist() == ["angry", V.NO_VOTES, "sad", "happy"]
    write_fer2013new(csv.parent / "fer2013new.csv",
                     [("train", votes_row(angry=9))] * 2 + [("train", votes_row(happy=9))] * 2)
    with pytest.raises(V.VotesError, match="row 4: fer2013.csv:row 4 is Training there but in the validation split"):
        V.attach_votes(load_dataset(csv))
    write_fer2013new(csv.parent / "fer2013new.csv", [("train", votes_row(angry=9))])
    with pytest.raises(V.VotesError, match="has 1 rows"):
        V.attach_votes(load_dataset(csv))
    root, _, _ = kaggle
    with pytest.raises(V.VotesError, match="keyed by row of fer2013.csv"):
        V.attach_votes(load_dataset(root), csv.parent / "fer2013new.csv")


# ----------------------------------------------------------------------------- relabelling for training

def test_relabel_majority_and_soft(kaggle):
    root, written, missing = kaggle
    ds = V.attach_votes(load_dataset(root))
    majority, record = V.relabel(ds, EIGHT_CLASS, "ferplus-majority")
    assert majority.classes == EIGHT_CLASS
    assert record["faces_without_votes"] == 1 and record["faces_left_out"] == 2  # no majority, unknown
    assert record["votes_fingerprint"] == ds.votes_info["fingerprint"] and record["contempt"] == "its own class"
    relabelled = dict(zip(majority.files, majority.label_names()))
    assert relabelled[written[("angry", "train")][0]] == "happy"
    assert relabelled[written[("angry", "validation")][0]] == "contempt"
    assert missing not in relabelled
    seven, record7 = V.relabel(ds, EMOTIONS, "ferplus-majority")
    assert dict(zip(seven.files, seven.label_names()))[written[("angry", "validation")][0]] == "disgust"
    assert record7["contempt"] == "counted as disgust"

    soft, _ = V.relabel(ds, EIGHT_CLASS, "ferplus-soft")
    train = soft.split("train")
    assert written[("sad", "train")][0] in train.files  # no majority, but a usable distribution
    targets = V.training_targets(train, EIGHT_CLASS, "ferplus-soft")
    assert targets.shape == (len(train), 8)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, rtol=1e-6)
    row = list(train.files).index(written[("sad", "train")][0])
    assert targets[row, EIGHT_CLASS.index("sad")] == pytest.approx(0.4)
    assert written[("sad", "train")][0] not in soft.split("validation").files
    assert V.training_targets(train, EIGHT_CLASS, "ferplus-majority") is None
    with pytest.raises(V.VotesError, match="needs FER\\+ votes"):
        V.relabel(load_dataset(root), EIGHT_CLASS, "ferplus-soft")


def test_training_label_sets():
    assert V.training_labels("all", "ferplus-soft") == EIGHT_CLASS
    assert V.training_labels("4class", "ferplus-majority") == FOUR_CLASS
    assert V.training_labels("angry,disgust,fear,happy,sad,surprise,neutral", "ferplus-majority") == EMOTIONS
    assert V.training_labels("8class", "ferplus-majority") == EIGHT_CLASS
    assert V.training_labels("all", "fer2013") is None


# ----------------------------------------------------------------------------- the Explorer's views

def test_agreement_matrix_and_disputed_faces(kaggle):
    root, written, _ = kaggle
    ds = V.attach_votes(load_dataset(root))
    table = C.agreement_frame(ds).set_index("emotion")
    assert table.loc["angry", "faces with votes"] == 7
    # angry: 5 faces with 8 of 10 votes for angry, one with 3, one with 4 contempt-as-disgust … and 4 angry
    assert table.loc["angry", "votes for the label"] == pytest.approx((5 * 0.8 + 0.3 + 0.4) / 7)
    assert table.loc["angry", "majority agrees"] == pytest.approx(5 / 7)
    assert table.loc["sad", "no majority"] == pytest.approx(1 / 6)
    matrix = C.label_vs_majority(ds)
    assert matrix.loc["angry", "happy"] == 1 and matrix.loc["angry", "contempt"] == 1
    assert matrix.loc["sad", V.NO_MAJORITY] == 1 and matrix.loc["happy", V.NO_MAJORITY] == 1
    assert int(matrix.to_numpy().sum()) == 20
    disputed = C.disputed_faces(ds, k=2)
    assert disputed["file"].tolist()[0] == written[("sad", "train")][0]  # 4/4/2: the most spread
    assert disputed["votes"].iloc[0] == "sad 4 · neutral 4 · fear 2"


def test_finder_precision_and_recall_against_the_crowd(kaggle):
    root, written, _ = kaggle
    ds = V.attach_votes(load_dataset(root))
    index = {f: i for i, f in enumerate(ds.files)}
    wrong = written[("angry", "train")][0]  # labelled angry, crowd says happy
    contempt = written[("angry", "validation")][0]  # disgust is not in this label set: no majority here
    fine = written[("happy", "train")][1]
    no_majority = written[("sad", "train")][0]
    issues = pd.DataFrame({"given_label": ["angry", "angry", "happy", "sad", "happy"],
                           "suggested_label": ["happy", "sad", "sad", "happy", "happy"],
                           "label_issue": [True, False, True, True, False]},
                          index=[index[wrong], index[contempt], index[fine], index[no_majority],
                                 index[written[("happy", "train")][2]]])
    crowd = C.finder_vs_crowd(issues, ds)
    assert crowd["faces_with_majority"] == 3 and crowd["label_differs_from_majority"] == 1
    assert crowd["flagged"] == 2 and crowd["flagged_and_differs"] == 1
    assert crowd["precision"] == pytest.approx(0.5) and crowd["recall"] == pytest.approx(1.0)
    assert crowd["base_rate"] == pytest.approx(1 / 3) and crowd["suggestion_matches_majority"] == 1.0
    assert crowd["contempt"] == "outside the label set"
    assert C.finder_vs_crowd(issues, load_dataset(root)) is None


def test_crowd_scores_use_the_majority_of_the_scored_faces(kaggle):
    root, written, missing = kaggle
    ds = V.attach_votes(load_dataset(root)).split("validation").subset(["angry", "sad"])
    labels = ("angry", "sad")
    truth = {f: e for (e, s), files in written.items() for f in files if s == "validation"}
    y_pred = np.array([labels.index(truth[f]) for f in ds.files])  # the FER2013 label every time
    scores = C.crowd_scores(ds, ds.files, y_pred, labels)
    # 6 faces: one without votes, the contempt one has no majority among angry/sad (disgust is outside)
    assert scores["n"] == 4 and scores["without_votes"] == 1 and scores["no_majority"] == 1
    assert scores["accuracy"] == 1.0 and scores["contempt"] == "outside the label set"
