"""Likely label errors: images whose given emotion a model's view of them disagrees with (cleanlab).

Confident learning needs out-of-sample class probabilities. They come from a logistic regression on
a registered model's penultimate-layer features (`fer_core.evaluation.embeddings`), fitted K times on K−1
folds and applied to the held-out fold, so no image is scored by a classifier that saw its label.
cleanlab then flags the likely errors (`label_issue`) and scores every label (`score` = 1 − its
self-confidence, higher = more likely wrong); the ranking lists flagged files first, most doubtful
first. Its `file` column matches `FerDataset.files`, so a saved CSV feeds `train --exclude`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.fer_dataset import FerDataset
from ..base.progress import ProgressFn
from .embeddings import Features, dataset_features, sample_rows

DEFAULT_FOLDS = 5
COLUMNS = ("file", "split", "given_label", "suggested_label", "score", "label_issue")
METHOD = ("cleanlab confident learning on out-of-sample probabilities of a {folds}-fold logistic regression "
          "on {model}'s penultimate-layer features")


def find_label_issues(dataset: FerDataset, model_id=None, split: str = "all", *, sample: int = 0,
                      folds: int = DEFAULT_FOLDS, seed: int = 0, cache: bool = True,
                      progress: ProgressFn | None = None):
    """Rank the images of `split` ("all", "train", "validation" or "test") by how likely their label is
    wrong, using the features of `model_id` (id, ModelInfo or Classifier; None = the default model).

    `sample` > 0 analyses a stratified sample of that many images instead of the whole split.
    Returns `rank_label_issues`' DataFrame (index: row in `dataset`).
    """
    rows = sample_rows(dataset, split, sample, seed)
    feats = dataset_features(dataset, rows, model_id, cache=cache, progress=progress)
    return rank_label_issues(dataset, feats, folds=folds, seed=seed, progress=progress)


def rank_label_issues(dataset: FerDataset, feats: Features, *, folds: int = DEFAULT_FOLDS, seed: int = 0,
                      progress: ProgressFn | None = None):
    """A DataFrame of `feats.rows` ranked by likely label error: file, split, given_label,
    suggested_label, score and label_issue (cleanlab's flag), indexed by row in `dataset`.

    Classes with fewer than two images cannot be cross-validated and are left out (listed in
    `.attrs["skipped_classes"]`); `.attrs` also holds the method, fold count and any caveat.
    """
    import pandas as pd
    from cleanlab.filter import find_label_issues as confident_learning
    from cleanlab.rank import get_label_quality_scores

    given = dataset.labels[feats.rows].astype(np.int64)
    counts = np.bincount(given, minlength=len(dataset.classes))
    usable = counts >= 2
    if usable.sum() < 2:
        raise ValueError("finding label errors needs at least two emotions with two or more images each; "
                         f"these images have {_describe_counts(dataset.classes, counts)}")
    keep = usable[given]
    present = np.flatnonzero(usable)
    remap = np.full(len(dataset.classes), -1)
    remap[present] = np.arange(len(present))
    y = remap[given[keep]]
    k = int(min(folds, counts[present].min()))
    if k < 2:
        raise ValueError("--folds must be at least 2")
    probs = out_of_sample_probabilities(feats.features[keep], y, k, seed, progress)
    flagged = np.zeros(len(y), dtype=bool)
    flagged[confident_learning(y, probs, n_jobs=1)] = True
    score = 1.0 - get_label_quality_scores(y, probs)
    names = np.asarray(dataset.classes)[present]
    rows = feats.rows[keep]
    frame = pd.DataFrame({"file": dataset.files[rows], "split": dataset.splits[rows], "given_label": names[y],
                          "suggested_label": names[probs.argmax(axis=1)], "score": np.round(score, 4),
                          "label_issue": flagged}, index=pd.Index(rows, name="row"))
    frame = frame.sort_values(["label_issue", "score"], ascending=[False, False], kind="stable")
    frame.attrs.update({"model": feats.model_id, "folds": k, "n": int(len(frame)),
                        "flagged": int(flagged.sum()), "method": METHOD.format(folds=k, model=feats.model_id),
                        "skipped_classes": [dataset.classes[c] for c in np.flatnonzero((counts > 0) & ~usable)],
                        "caveat": training_caveat(dataset, feats)})
    return frame


def out_of_sample_probabilities(features: np.ndarray, labels: np.ndarray, folds: int = DEFAULT_FOLDS,
                                seed: int = 0, progress: ProgressFn | None = None) -> np.ndarray:
    """(N, K) class probabilities, each row from a standardised logistic regression fitted on the
    other folds (stratified K-fold); labels are 0…K−1 with at least `folds` images per class.

    BLAS runs on one thread here: these small fits gain nothing from more, and on a busy 2-core
    machine two spinning BLAS threads made each fit about 40× slower.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    n_classes = int(labels.max()) + 1
    probs = np.zeros((len(labels), n_classes), np.float64)
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for i, (fit, held) in enumerate(splitter.split(features, labels), start=1):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=500))
        with threadpool_limits(1):
            model.fit(features[fit], labels[fit])
            probs[np.ix_(held, model.classes_)] = model.predict_proba(features[held])
        if progress:
            progress(i, folds, f"cross-validated probabilities: fold {i} of {folds}")
    return probs


def training_caveat(dataset: FerDataset, feats: Features) -> str | None:
    """A warning when training images of the dataset the model was trained on are analysed: its
    features have partly learnt those images' given labels, so errors among them are under-found."""
    trained = feats.trained_on
    if not trained or "train" not in set(dataset.splits[feats.rows].tolist()):
        return None
    same = trained.get("fingerprint") == dataset.fingerprint or (
        Path(str(trained.get("source", ""))).name.lower() == Path(dataset.source).name.lower() != "")
    if not same:
        return None
    return (f"{feats.model_id} was trained on this dataset's train images, so its features partly learnt "
            "their labels (wrong ones included): errors among train images are under-found. The validation "
            "split gives an unbiased ranking.")


def _describe_counts(classes, counts) -> str:
    return ", ".join(f"{c}: {n}" for c, n in zip(classes, counts) if n) or "no images"
