"""`python -m fer_core <command>`: one CLI that mirrors the Python API.

Commands: data (inspect a dataset), train, evaluate, models, predict, video. Every command
prints a clear one-line error and exits with status 2 on bad input, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys

from .data import DataError
from .registry import RegistryError

USER_ERRORS = (DataError, RegistryError, FileNotFoundError, ValueError)


def _cmd_data(args) -> int:
    from .data import load_dataset

    ds = load_dataset(args.data, progress=_stderr_progress)
    if args.labels:
        from .labels import parse_label_set
        ds = ds.subset(parse_label_set(args.labels))
    summary = {"source": ds.source, "layout": ds.layout, "fingerprint": ds.fingerprint, "n": len(ds),
               "classes": list(ds.classes), "splits": {s: int((ds.splits == s).sum()) for s in ds.split_names},
               "counts": ds.counts().to_dict(orient="index"), "problems": len(ds.problems)}
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"{ds.source}: {len(ds):,} images, layout {ds.layout}, fingerprint {ds.fingerprint}")
        print(ds.counts().to_string())
        for p in ds.problems[:20]:
            print(f"  skipped/altered {p.file}: {p.reason}")
        if len(ds.problems) > 20:
            print(f"  … {len(ds.problems) - 20} more problems")
    return 0


def _stderr_progress(done: int, total: int, message: str) -> None:
    if sys.stderr.isatty():
        print(f"\r{message}", end="\n" if done == total else "", file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fer_core", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("data", help="load a dataset and print its counts and problems")
    p.add_argument("--data", required=True, help="dataset folder, .zip or fer2013.csv")
    p.add_argument("--labels", help="all | 4class | comma list of emotions")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_data)

    from . import evaluate, predict, train, video
    for stage in (train, evaluate, predict, video):
        stage.add_cli(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded in model cards
    try:
        return args.func(args) or 0
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
