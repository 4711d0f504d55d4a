"""What FER+'s crowd says about a dataset's labels and a model's answers: predictions scored against the
majority of the ten annotators, and the Dataset Explorer's views of the votes (agreement per emotion, label
against majority, the most disputed faces, how well the label-issue finder finds the faces the crowd
labels otherwise). The votes themselves are read and attached by `fer_core.data.votes`."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..base.labels import EIGHT_CLASS
from .fer_dataset import FerDataset
from .votes import (MAJORITY_PROTOCOL, NO_MAJORITY, VOTE_ORDER, contempt_handling, fold_contempt, majority,
                    majority_names, vote_columns)

def crowd_scores(dataset: FerDataset, files, y_pred, labels) -> dict | None:
    """Accuracy and macro-F1 of predictions (`y_pred`, indices into `labels`, for the dataset's `files`)
    against the FER+ majority, on the faces that have one within `labels`; None without votes."""
    from sklearn.metrics import accuracy_score, f1_score

    if dataset.votes is None:
        return None
    index = {f: i for i, f in enumerate(dataset.files.tolist())}
    rows = np.array([index[f] for f in np.asarray(files).tolist()], dtype=np.int64)
    votes = dataset.votes[rows]
    has = votes.sum(axis=1) > 0
    truth = majority(votes, labels)
    ok = truth >= 0
    y_pred = np.asarray(y_pred)
    info = dataset.votes_info or {}
    return {"accuracy": float(accuracy_score(truth[ok], y_pred[ok])) if ok.any() else None,
            "macro_f1": float(f1_score(truth[ok], y_pred[ok], average="macro")) if ok.any() else None,
            "n": int(ok.sum()), "without_votes": int((~has).sum()), "no_majority": int((has & ~ok).sum()),
            "protocol": MAJORITY_PROTOCOL, "contempt": contempt_handling(labels),
            "votes_file": Path(str(info.get("file", ""))).name, "votes_fingerprint": info.get("fingerprint")}


def votes_text(counts) -> str:
    """One face's votes, most first: `neutral 4 · sad 3 · unknown 1`."""
    order = np.argsort(-np.asarray(counts), kind="stable")
    return " · ".join(f"{VOTE_ORDER[c]} {int(counts[c])}" for c in order if counts[c] > 0)


def agreement_frame(dataset: FerDataset):
    """Per FER2013 emotion, over faces with votes: how many, the mean share of annotators who chose the
    given label, how often the FER+ majority is that label or there is none, and the mean share of the
    most-voted answer (how much annotators agree among themselves). Contempt counts as disgust here."""
    import pandas as pd

    has = dataset.votes.sum(axis=1) > 0
    votes, given = fold_contempt(dataset.votes[has], dataset.classes), dataset.labels[has]
    share = votes / votes.sum(axis=1, keepdims=True)
    own = share[np.arange(len(given)), np.array(vote_columns(dataset.classes))[given]]
    maj = majority(votes, dataset.classes)
    rows = []
    for k, emotion in enumerate(dataset.classes):
        mine = given == k
        n = int(mine.sum())
        rows.append({"emotion": emotion, "faces with votes": n,
                     "votes for the label": float(own[mine].mean()) if n else None,
                     "majority agrees": float((maj[mine] == k).mean()) if n else None,
                     "no majority": float((maj[mine] < 0).mean()) if n else None,
                     "top answer's share": float(share[mine].max(axis=1).mean()) if n else None})
    return pd.DataFrame(rows)


def label_vs_majority(dataset: FerDataset):
    """Counts of faces with votes: rows = the dataset's label, columns = FER+'s 8-emotion majority
    (contempt its own column) or `no majority`."""
    import pandas as pd

    has = dataset.votes.sum(axis=1) > 0
    names = majority_names(dataset)[has]
    columns = [e for e in EIGHT_CLASS if e in set(names)] + [NO_MAJORITY]
    table = pd.crosstab(pd.Categorical(dataset.label_names()[has], categories=dataset.classes),
                        pd.Categorical(names, categories=columns), dropna=False)
    table.index, table.columns = list(table.index), list(table.columns)
    table.index.name, table.columns.name = "label", "FER+ majority"
    return table


def disputed_faces(dataset: FerDataset, k: int = 30):
    """The `k` faces annotators disagreed on most (highest entropy of their ten answers), with the
    dataset's label, FER+'s majority and the votes; indexed by dataset row."""
    import pandas as pd

    has = np.flatnonzero(dataset.votes.sum(axis=1) > 0)
    v = dataset.votes[has].astype(np.float64)
    p = v / v.sum(axis=1, keepdims=True)
    entropy = -(p * np.log(np.where(p > 0, p, 1))).sum(axis=1) / np.log(len(VOTE_ORDER))
    order = np.lexsort((p.max(axis=1), -entropy))[:k]
    rows = has[order]
    return pd.DataFrame({"file": dataset.files[rows], "split": dataset.splits[rows],
                         "label": dataset.label_names()[rows], "FER+ majority": majority_names(dataset)[rows],
                         "disagreement": np.round(entropy[order], 3),
                         "votes": [votes_text(dataset.votes[r]) for r in rows]}, index=pd.Index(rows, name="row"))


def finder_vs_crowd(issues, dataset: FerDataset) -> dict | None:
    """How well the label-issue finder's flags (`label_issues.rank_label_issues`' frame, indexed by
    dataset row) find the faces whose label differs from the FER+ majority: precision, recall, and the
    share of disagreeing faces (the precision of flagging at random). Only faces with a majority in the
    label set count; contempt votes count as disgust without a contempt class. None without votes."""
    from sklearn.metrics import precision_score, recall_score

    if dataset.votes is None:
        return None
    rows = np.asarray(issues.index, dtype=np.int64)
    crowd = majority(dataset.votes[rows], dataset.classes)
    ok = crowd >= 0
    names = np.asarray(dataset.classes)[crowd[ok]]
    wrong = issues["given_label"].to_numpy()[ok] != names
    flagged = issues["label_issue"].to_numpy(bool)[ok]
    caught = flagged & wrong
    suggested = issues["suggested_label"].to_numpy()[ok]
    return {"faces_with_majority": int(ok.sum()), "label_differs_from_majority": int(wrong.sum()),
            "flagged": int(flagged.sum()), "flagged_and_differs": int(caught.sum()),
            "precision": float(precision_score(wrong, flagged, zero_division=0)),
            "recall": float(recall_score(wrong, flagged, zero_division=0)),
            "base_rate": float(wrong.mean()) if ok.any() else None,
            "suggestion_matches_majority": float((suggested[caught] == names[caught]).mean()) if caught.any() else None,
            "protocol": MAJORITY_PROTOCOL, "contempt": contempt_handling(dataset.classes)}
