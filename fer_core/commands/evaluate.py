"""`evaluate` scores a registered model on a dataset split, or through the whole photo pipeline on class folders
of real photos (`--photos`), and saves the results in its card; `models` lists the registered models with their
card summaries (and sets a label set's default model or a model's TTA)."""
from __future__ import annotations

import json
import sys

from ..evaluation.predictions import EVAL_SPLITS
from ..inference.faces import (CROP_POLICIES, crop_help, DEFAULT_CROP, DEFAULT_DETECTOR, DETECTOR_CHOICES, DETECTORS,
                               WHOLE_IMAGE)
from ..models.tta import add_tta_argument

ALL = "all"  # --detector all / --crop all: every detector or crop policy, one row each


def add_cli(subparsers) -> None:
    """Add `evaluate` and `models` to the fer_core CLI."""
    p = subparsers.add_parser("evaluate", help="score a registered model on a dataset split and save the results")
    p.add_argument("--model", required=True, help="model id under models/ (see `models`) or a model folder")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="dataset folder, .zip or fer2013.csv")
    source.add_argument("--photos", metavar="DIR",
                        help="class folders of real photos (DIR/<emotion>/*.jpg or DIR/test/<emotion>/): run the "
                             "whole pipeline (detect, crop, classify); a photo with no face found counts as wrong")
    p.add_argument("--split", choices=EVAL_SPLITS, default=None,
                   help="test = PrivateTest where present (else PublicTest, and it says so); default test")
    p.add_argument("--detector", choices=DETECTOR_CHOICES + (ALL,), default=None,
                   help=f"--photos: the face detector (default {DEFAULT_DETECTOR}); {WHOLE_IMAGE} = each photo is "
                        "one face, classified whole (the classifier alone, as on face crops); all = compare the "
                        "detectors, one row each")
    p.add_argument("--crop", choices=tuple(CROP_POLICIES) + (ALL,), default=None,
                   help=f"--photos (default {DEFAULT_CROP}): " + crop_help("; all = compare them"))
    p.add_argument("--limit", type=int, metavar="N", help="--photos: at most N photos per emotion (a quick look)")
    add_tta_argument(p)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-save", action="store_true",
                   help="do not write the card or the per-image predictions under eval/")
    p.add_argument("--votes", help="FER+ votes CSV (ferplus_votes.csv or fer2013new.csv) to also score against the "
                                   "crowd's majority; default: one found beside the data")
    p.add_argument("--rescore", action="store_true",
                   help="score the saved per-image predictions again (e.g. against FER+ votes added since) "
                        "instead of running the model")
    p.set_defaults(func=run_evaluate)

    p = subparsers.add_parser("models", help="list registered models with their card summaries")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.add_argument("--set-default", metavar="ID", help="make ID the default model of its label set first")
    p.add_argument("--set-tta", nargs=2, metavar=("ID", "MODE"),
                   help="record MODE (none, flip or tencrop) as ID's default test-time augmentation")
    p.set_defaults(func=run_models)


def run_evaluate(args) -> int:
    if args.photos:
        return run_photos(args)
    for flag in ("detector", "crop", "limit"):
        if getattr(args, flag) is not None:
            raise ValueError(f"--{flag} applies to --photos (the photo pipeline), not to --data")
    args.split = args.split or "test"
    from ..base.progress import stderr_progress
    from ..data.datasets import load_dataset
    from ..evaluation.evaluate import evaluate_model, format_report, rescore_saved
    from ..evaluation.predictions import predictions_path
    from ..models import eval_datasets, registry

    info = registry.get_model(args.model)
    dataset = load_dataset(args.data, progress=stderr_progress)
    if args.rescore:
        result = rescore_saved(info, dataset, args.split, save=not args.no_save, votes=args.votes)
    else:
        result = evaluate_model(info, dataset, args.split, tta=args.tta, batch_size=args.batch_size,
                                progress=stderr_progress, save=not args.no_save, votes=args.votes)
    if args.json:
        print(json.dumps(result))
        return 0
    print(format_report(result, info))
    if not args.no_save:
        desc = result["dataset"]
        print(f"\nSaved into {info.path / registry.CARD_FILE} (evaluations, {desc['name']} id {desc['id']}, "
              f"{args.split}; results on other datasets are kept) and "
              f"{predictions_path(info, args.split, eval_datasets.dataset_selector(desc))}")
    return 0


def run_photos(args) -> int:
    """`evaluate --photos`: every asked pipeline (detector × crop policy) on the folder, one table row each."""
    from ..base.progress import stderr_progress
    from ..evaluation.photo_report import format_photo_report
    from ..evaluation.photo_store import save_photo_evaluation
    from ..evaluation.photos import WHOLE_CROP, evaluate_photos, list_photos
    from ..inference.loader import load_classifier
    from ..models import registry

    for flag, what in (("split", "--split"), ("rescore", "--rescore"), ("votes", "--votes")):
        if getattr(args, flag):
            raise ValueError(f"{what} applies to --data; --photos evaluates the folder's test/ photos where it has "
                             "them, else all of its emotion folders")
    if args.limit is not None and args.limit < 1:
        raise ValueError("--limit must be at least 1 (photos per emotion)")
    info = registry.get_model(args.model)
    photos = list_photos(args.photos, args.limit)
    clf = load_classifier(info)
    detectors = DETECTORS if args.detector == ALL else (args.detector or DEFAULT_DETECTOR,)
    crops = tuple(CROP_POLICIES) if args.crop == ALL else (args.crop or DEFAULT_CROP,)
    pipelines = dict.fromkeys((d, WHOLE_CROP if d == WHOLE_IMAGE else c) for d in detectors for c in crops)
    results = [evaluate_photos(info, photos, detector, crop, args.tta, progress=stderr_progress, classifier=clf)
               for detector, crop in pipelines]
    saved = [] if args.no_save else [save_photo_evaluation(info, r) for r in results]
    if args.json:
        print(json.dumps(results if len(results) > 1 else results[0]))
        return 0
    print(format_photo_report(results))
    if saved:
        desc = results[0]["dataset"]
        print(f"\nSaved into {info.path / registry.CARD_FILE} (photo_metrics, {desc['name']} id {desc['id']}; "
              f"other photo sets and pipelines are kept) and {', '.join(str(p) for p in saved)}")
    return 0


def run_models(args) -> int:
    from ..evaluation.leaderboard import model_summary
    from ..models import registry
    from ..models.roles import model_roles

    if args.set_default:
        info = registry.set_default(args.set_default)
        print(f"{info.id} is now the default model for label set {info.label_set!r}", file=sys.stderr)
    if args.set_tta:
        info = registry.set_default_tta(*args.set_tta)
        print(f"{info.id} now uses {info.card['inference']['tta']} test-time augmentation by default; re-run "
              f"`evaluate` to score it that way", file=sys.stderr)
    infos = registry.list_models()
    rows = [{**model_summary(info), "source": registry.model_source(info), "path": str(info.path)} for info in infos]
    if args.json:
        print(json.dumps(rows))
    elif not rows:
        print(f"no models under {registry.default_models_dir()}; train one with `python -m fer_core train`")
    else:
        print(_models_table(rows, model_roles(infos)))
        print("\nval acc, test acc: against FER2013's own labels (one annotator per face); val FER+: against the FER+ "
              "crowd majority on the validation split. A label set's most accurate model is ranked on the labels its "
              "default learned from.")
    return 0


def _models_table(rows: list[dict], roles: dict[str, str]) -> str:
    """The `models` listing as plain text (no pandas: it runs on the core install), one line per model summary,
    numbers formatted for reading and right-aligned; `from` says where the model was found."""
    def acc(v):
        return "-" if v is None else f"{v:.4f}"

    table = [{"id": r["id"], "name": r["name"], "architecture": r["architecture"] or "-",
              "labels": r["label_set"], "params": f"{r['params']:,}" if r["params"] else "-",
              "size MB": f"{r['size_mb']:.2f}", "epochs": str(r["epochs"]),
              "train min": f"{r['train_minutes']:.0f}", "trained on": r["devices"] or "-",
              "role": roles[r["id"]] or "-", "val acc": acc(r["validation_accuracy"]),
              "test acc": acc(r["test_accuracy"]), "val FER+": acc(r["validation_ferplus_accuracy"]),
              "from": r["source"]} for r in rows]
    columns = list(table[0])
    numeric = {"params", "size MB", "epochs", "train min", "val acc", "test acc", "val FER+"}
    widths = {c: max(len(c), *(len(row[c]) for row in table)) for c in columns}

    def line(cells: dict) -> str:
        return "  ".join(cells[c].rjust(widths[c]) if c in numeric else cells[c].ljust(widths[c])
                         for c in columns).rstrip()

    return "\n".join([line({c: c for c in columns}), *(line(row) for row in table)])
