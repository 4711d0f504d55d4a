"""`batch`: every face in folders, zips and videos → one Parquet/CSV row per face, resumable, on this
machine or on Ray."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..inference.faces import CROP_POLICIES, crop_help, DEFAULT_CROP, DEFAULT_DETECTOR, DEFAULT_MIN_SIZE
from ..serving.batch_ray import parse_ray_address
from ..serving.scoring import DETECTOR_CHOICES, ScoreOptions


def add_cli(subparsers) -> None:
    """`batch`: every face in folders, zips and videos → one Parquet/CSV row per face, resumable."""
    from ..models.tta import add_tta_argument

    p = subparsers.add_parser("batch", help="score every face in folders, zips and videos into Parquet/CSV")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders (recursive), .zip files, videos")
    p.add_argument("--out", required=True, help="results file: .parquet or .csv (rerun to resume)")
    p.add_argument("--model", help="registered model id or model folder (default: the default model)")
    p.add_argument("--crop", choices=tuple(CROP_POLICIES), default=DEFAULT_CROP,
                   help=crop_help())
    p.add_argument("--detector", choices=DETECTOR_CHOICES, default=DEFAULT_DETECTOR,
                   help="face detector; none = every image is one pre-cropped face (e.g. FER2013's 48×48)")
    p.add_argument("--min-size", type=int, default=DEFAULT_MIN_SIZE, help="smallest face side in pixels")
    add_tta_argument(p)
    p.add_argument("--whole-image", action=argparse.BooleanOptionalAction, default=None,
                   help="classify the whole image as one face when none is detected: always (--whole-image), "
                        "never (--no-whole-image); default: when it looks like a face crop itself (at most 160 px, "
                        "about square, as FER2013's 48×48 faces)")
    p.add_argument("--every-nth-frame", type=int, default=10, metavar="N", help="videos: score every N-th frame")
    p.add_argument("--workers", type=int, help="threads on this machine (default: 2 per core)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on Ray Data: a local Ray instance, or the cluster at ADDRESS (auto, ray://HOST:10001)")
    p.add_argument("--ray-actors", type=int, help="Ray actors (default: one per CPU of the cluster)")
    p.set_defaults(func=run)


def run(args) -> int:
    """Score the inputs into --out, then report unreadable files (also into <out>.errors.csv) and the totals."""
    from ..base.progress import stderr_progress
    from ..serving.batch import run_batch

    if args.ray is not None:
        parse_ray_address(args.ray)  # a bad address fails before anything is loaded
    if args.workers is not None and args.workers < 1:
        raise ValueError("--workers must be 1 or more")
    options = ScoreOptions(args.detector, args.tta, args.whole_image, args.min_size, args.every_nth_frame, args.crop)
    result = run_batch(args.inputs, args.out, args.model, options, args.workers, args.ray, args.ray_actors,
                       progress=stderr_progress)
    _report_errors(result.errors, args.out)
    rate = (f" in {result.seconds:.1f} s ({result.files_per_second:.1f} files/s, {result.engine})"
            if result.scored else "")
    print(f"{result.scored:,} file(s) scored{rate}, {result.skipped:,} already done; "
          f"{len(result.table):,} face rows in {args.out}")
    return 0


def _report_errors(errors: list[tuple[str, str]], out: str) -> None:
    """The first 20 unreadable files on stderr, and all of them in `<out stem>.errors.csv`."""
    import pandas as pd

    for file, reason in errors[:20]:
        print(f"  unreadable: {file}: {reason}", file=sys.stderr)
    if len(errors) > 20:
        print(f"  … {len(errors) - 20} more unreadable files", file=sys.stderr)
    if errors:
        errors_file = Path(out).with_name(Path(out).stem + ".errors.csv")
        pd.DataFrame(errors, columns=["file", "error"]).to_csv(errors_file, index=False)
        print(f"{len(errors)} unreadable file(s) listed in {errors_file}", file=sys.stderr)
