"""`data`: load a dataset and print its counts per class and split, and the files it skipped or altered."""
from __future__ import annotations

import json


def add_cli(subparsers) -> None:
    """Add `data` to the fer_core CLI."""
    p = subparsers.add_parser("data", help="load a dataset and print its counts and problems")
    p.add_argument("--data", required=True, help="dataset folder, .zip or fer2013.csv")
    p.add_argument("--labels", help="all | 4class | comma list of emotions")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..base.labels import parse_label_set
    from ..base.progress import stderr_progress
    from ..data.datasets import load_dataset

    ds = load_dataset(args.data, progress=stderr_progress)
    if args.labels:
        ds = ds.subset(parse_label_set(args.labels))
    if args.json:
        print(json.dumps(_summary(ds), indent=1))
        return 0
    print(f"{ds.source}: {len(ds):,} images, layout {ds.layout}, fingerprint {ds.fingerprint}")
    print(ds.counts().to_string())
    for p in ds.problems[:20]:
        print(f"  skipped/altered {p.file}: {p.reason}")
    if len(ds.problems) > 20:
        print(f"  … {len(ds.problems) - 20} more problems")
    return 0


def _summary(ds) -> dict:
    return {"source": ds.source, "layout": ds.layout, "fingerprint": ds.fingerprint, "n": len(ds),
            "classes": list(ds.classes), "splits": {s: int((ds.splits == s).sum()) for s in ds.split_names},
            "counts": ds.counts().to_dict(orient="index"), "problems": len(ds.problems)}
