"""`video`: emotions over time in a video file → a summary, a per-face timeline CSV and an annotated MP4."""
from __future__ import annotations

from pathlib import Path

from ..inference.faces import CROP_POLICIES, crop_help, DEFAULT_CROP, DEFAULT_DETECTOR, DETECTORS


def add_cli(subparsers) -> None:
    """`video`: emotions over time in a video file → summary, timeline CSV, annotated MP4."""
    p = subparsers.add_parser("video", help="emotions over time in a video file (timeline CSV, annotated mp4)")
    p.add_argument("video", help="video file (mp4, webm, mov, avi, mkv)")
    p.add_argument("--model", help="registered model id or folder (default: the registry's default model)")
    p.add_argument("--detector", choices=DETECTORS, default=DEFAULT_DETECTOR)
    p.add_argument("--crop", choices=tuple(CROP_POLICIES), default=DEFAULT_CROP,
                   help=crop_help())
    p.add_argument("--every", type=int, default=5, help="analyse every N-th frame (default 5)")
    p.add_argument("--smoothing", type=float, default=0.5, help="moving-average weight of the past, 0–<1")
    p.add_argument("--out", help="write the annotated video here (.mp4)")
    p.add_argument("--csv", help="write the per-face timeline here (.csv)")
    p.set_defaults(func=run)


def run(args) -> int:
    """Analyse the video with a registered model: print the summary, write the timeline CSV and annotated MP4."""
    from ..base.progress import stderr_progress
    from ..inference.loader import load_classifier
    from ..models import registry
    from ..video.files import analyze_video

    if args.out and Path(args.out).suffix.lower() != ".mp4":
        raise ValueError("--out must name an .mp4 file (the annotated video is H.264 MP4)")
    info = registry.resolve_model(args.model)
    classifier = load_classifier(info)

    result = analyze_video(args.video, classifier, every_n=args.every, detector=args.detector, crop=args.crop,
                           smoothing=args.smoothing, annotate=bool(args.out), progress=stderr_progress)
    print(f"{args.video}: {result.frames} frames ({result.duration:.1f} s at {result.fps:.1f} fps), "
          f"{result.analyzed} analysed with model {info.id}; {result.timeline['face'].nunique()} face(s), "
          f"{len(result.timeline)} face-frames")
    summary = result.summary.assign(share=lambda d: (d["share"] * 100).round(1).astype(str) + " %")
    print(summary.to_string())
    if args.csv:
        Path(args.csv).write_bytes(result.csv())
        print(f"timeline written to {args.csv}")
    if args.out:
        Path(args.out).write_bytes(result.video)
        print(f"annotated video written to {args.out}")
    return 0
