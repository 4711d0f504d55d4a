"""Likely label errors: images whose given emotion a model's view of them disagrees with (cleanlab).

Confident learning needs out-of-sample class probabilities. They come from a logistic regression on
a registered model's penultimate-layer features (`fer_core.evaluation.embeddings`), fitted K times on K−1
folds and applied to the held-out fold, so no image is scored by a classifier that saw its label.
cleanlab then flags the likely errors (`label_issue`) and scores every label (`score` = 1 − its
self-confidence, higher = more likely wrong); the ranking lists flagged files first, most doubtful
first. Its `file` column matches `FerDataset.files`, so a saved CSV feeds `train --exclude`.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..data.datasets import FerDataset
from ..base.progress import ProgressFn
from .embeddings import DEFAULT_SAMPLE, SPLIT_CHOICES, Features, dataset_features, sample_rows

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


# ----------------------------------------------------------------------------- CLI

def add_cli(subparsers) -> None:
    """`label-issues`: files ranked by how likely their label is wrong; CSV for `train --exclude`."""
    p = subparsers.add_parser(
        "label-issues", help="rank files whose label is probably wrong (cleanlab on a model's features)",
        description="Rank a dataset's images by how likely their label is wrong: cleanlab confident learning on "
                    "out-of-sample probabilities from a K-fold logistic regression on a registered model's "
                    "penultimate-layer features. The CSV's `file` column matches the dataset's files, so "
                    "`python -m fer_core train ... --exclude FILE.csv` trains without them.")
    p.add_argument("--data", required=True, help="dataset folder, .zip or fer2013.csv")
    p.add_argument("--model", help="registered model id or folder whose features are used (default: the default "
                                   "model of the dataset's label set)")
    p.add_argument("--split", choices=SPLIT_CHOICES, default="all", help="which images to check (default all)")
    p.add_argument("--labels", help="all | 4class | comma list of emotions (default: every emotion of the dataset)")
    p.add_argument("--sample", type=int, default=0,
                   help=f"check a stratified sample of N images instead of the whole split (e.g. {DEFAULT_SAMPLE})")
    p.add_argument("--folds", type=int, default=DEFAULT_FOLDS, help="cross-validation folds (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--all", action="store_true", help="list every checked file, not only the flagged ones")
    p.add_argument("--top", type=int, default=20, help="rows printed in the table (default 20)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    p.add_argument("--votes", help="FER+ votes CSV to score the flags against the crowd's majority (default: "
                                   "ferplus_votes.csv or fer2013new.csv beside the data)")
    p.add_argument("--out", metavar="FILE.csv",
                   help="write the ranked files as CSV (columns: " + ", ".join(COLUMNS) + "); feed it to "
                        "`train --exclude FILE.csv` to train without them")
    p.set_defaults(func=_cmd_label_issues)


def _cmd_label_issues(args) -> int:
    from ..data.datasets import load_dataset

    if args.folds < 2:
        raise ValueError("--folds must be at least 2")
    out = Path(args.out) if args.out else None
    if out is not None and not out.parent.is_dir():
        raise ValueError(f"cannot write {out}: folder {out.parent} does not exist")
    from ..data.votes import attach_votes, finder_vs_crowd

    dataset = attach_votes(load_dataset(args.data, progress=_progress_bar), args.votes)
    if args.labels:
        from ..base.labels import parse_label_set
        dataset = dataset.subset(parse_label_set(args.labels))
    frame = find_label_issues(dataset, args.model, args.split, sample=args.sample, folds=args.folds,
                              seed=args.seed, progress=_progress_bar)
    shown = frame if args.all else frame[frame["label_issue"]]
    if out is not None:
        shown.to_csv(out, index=False)
    meta = frame.attrs
    crowd = finder_vs_crowd(frame, dataset)  # None without FER+ votes
    if args.json:
        print(json.dumps({**meta, "data": dataset.source, "split": args.split, "csv": str(out) if out else None,
                          "crowd": crowd, "files": shown.to_dict(orient="records")}, indent=1, default=_json_value))
        return 0
    print(f"{meta['flagged']:,} of {meta['n']:,} {args.split} images likely mislabelled "
          f"({meta['method']})")
    if crowd and crowd["faces_with_majority"]:
        print(f"against the FER+ majority ({crowd['faces_with_majority']:,} faces with one, "
              f"{crowd['label_differs_from_majority']:,} labelled otherwise): precision {crowd['precision']:.3f}, "
              f"recall {crowd['recall']:.3f} (flagging at random: precision {crowd['base_rate']:.3f})")
    if meta["caveat"]:
        print(f"note: {meta['caveat']}")
    if meta["skipped_classes"]:
        print(f"note: left out (fewer than 2 images): {', '.join(meta['skipped_classes'])}")
    top = shown.head(max(args.top, 0))
    if len(top):
        print(f"{'rank':>5} {'score':>6}  {'given → suggested':<22} file")
        for rank, row in enumerate(top.itertuples(), start=1):
            print(f"{rank:>5} {row.score:>6.3f}  {row.given_label + ' → ' + row.suggested_label:<22} {row.file}")
    if out is not None:
        print(f"wrote {len(shown):,} rows to {out} (train without them: `python -m fer_core train ... "
              f"--exclude {out}`)")
    return 0


def _progress_bar(done: int, total: int, message: str) -> None:
    """A text progress bar on stderr (only when stderr is a terminal)."""
    from ..base.progress import stderr_progress

    width = 24
    filled = int(width * done / max(total, 1))
    stderr_progress(done, total, f"[{'#' * filled}{'.' * (width - filled)}] {message}".ljust(90))


def _json_value(value):
    return value.item() if isinstance(value, np.generic) else str(value)
