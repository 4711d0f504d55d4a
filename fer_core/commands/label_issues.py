"""`label-issues`: a dataset's files ranked by how likely their label is wrong, as a table, JSON or a CSV that
`train --exclude` reads."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..evaluation.embeddings import DEFAULT_SAMPLE, SPLIT_CHOICES
from ..evaluation.label_issues import COLUMNS, DEFAULT_FOLDS


def add_cli(subparsers) -> None:
    """Add `label-issues` to the fer_core CLI."""
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
    p.set_defaults(func=run)


def run(args) -> int:
    from ..base.labels import parse_label_set
    from ..data.crowd import finder_vs_crowd
    from ..data.datasets import load_dataset
    from ..data.votes import attach_votes
    from ..evaluation.label_issues import find_label_issues

    if args.folds < 2:
        raise ValueError("--folds must be at least 2")
    out = Path(args.out) if args.out else None
    if out is not None and not out.parent.is_dir():
        raise ValueError(f"cannot write {out}: folder {out.parent} does not exist")
    dataset = attach_votes(load_dataset(args.data, progress=_progress_bar), args.votes)
    if args.labels:
        dataset = dataset.subset(parse_label_set(args.labels))
    frame = find_label_issues(dataset, args.model, args.split, sample=args.sample, folds=args.folds,
                              seed=args.seed, progress=_progress_bar)
    shown = frame if args.all else frame[frame["label_issue"]]
    if out is not None:
        shown.to_csv(out, index=False)
    crowd = finder_vs_crowd(frame, dataset)  # None without FER+ votes
    if args.json:
        print(json.dumps({**frame.attrs, "data": dataset.source, "split": args.split,
                          "csv": str(out) if out else None, "crowd": crowd, "files": shown.to_dict(orient="records")},
                         indent=1, default=_json_value))
        return 0
    _print_summary(frame.attrs, crowd, args.split)
    _print_table(shown.head(max(args.top, 0)))
    if out is not None:
        print(f"wrote {len(shown):,} rows to {out} (train without them: `python -m fer_core train ... "
              f"--exclude {out}`)")
    return 0


def _print_summary(meta: dict, crowd: dict | None, split: str) -> None:
    print(f"{meta['flagged']:,} of {meta['n']:,} {split} images likely mislabelled ({meta['method']})")
    if crowd and crowd["faces_with_majority"]:
        print(f"against the FER+ majority ({crowd['faces_with_majority']:,} faces with one, "
              f"{crowd['label_differs_from_majority']:,} labelled otherwise): precision {crowd['precision']:.3f}, "
              f"recall {crowd['recall']:.3f} (flagging at random: precision {crowd['base_rate']:.3f})")
    if meta["caveat"]:
        print(f"note: {meta['caveat']}")
    if meta["skipped_classes"]:
        print(f"note: left out (fewer than 2 images): {', '.join(meta['skipped_classes'])}")


def _print_table(top) -> None:
    if not len(top):
        return
    print(f"{'rank':>5} {'score':>6}  {'given → suggested':<22} file")
    for rank, row in enumerate(top.itertuples(), start=1):
        print(f"{rank:>5} {row.score:>6.3f}  {row.given_label + ' → ' + row.suggested_label:<22} {row.file}")


def _progress_bar(done: int, total: int, message: str) -> None:
    """A text progress bar on stderr (only when stderr is a terminal)."""
    from ..base.progress import stderr_progress

    width = 24
    filled = int(width * done / max(total, 1))
    stderr_progress(done, total, f"[{'#' * filled}{'.' * (width - filled)}] {message}".ljust(90))


def _json_value(value):
    return value.item() if isinstance(value, np.generic) else str(value)
