"""`evaluate` scores a registered model on a dataset split and saves the results in its card; `models` lists
the registered models with their card summaries (and sets a label set's default model or a model's TTA)."""
from __future__ import annotations

import json
import sys

from ..evaluation.predictions import EVAL_SPLITS
from ..models.tta import add_tta_argument


def add_cli(subparsers) -> None:
    """Add `evaluate` and `models` to the fer_core CLI."""
    p = subparsers.add_parser("evaluate", help="score a registered model on a dataset split and save the results")
    p.add_argument("--model", required=True, help="model id under models/ (see `models`) or a model folder")
    p.add_argument("--data", required=True, help="dataset folder, .zip or fer2013.csv")
    p.add_argument("--split", choices=EVAL_SPLITS, default="test",
                   help="test = PrivateTest where present (else PublicTest, and it says so); default test")
    add_tta_argument(p)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-save", action="store_true", help="do not write the card or eval/<split>.npz")
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
    rows = [model_summary(info) for info in infos]
    if args.json:
        print(json.dumps(rows))
    elif not rows:
        print(f"no models under {registry.default_models_dir()}; train one with `python -m fer_core train`")
    else:
        print(_models_table(rows, model_roles(infos)).to_string(index=False))
    return 0


def _models_table(rows: list[dict], roles: dict[str, str]):
    """The `models` listing: one line per model summary, numbers formatted for reading."""
    import pandas as pd

    def acc(v):
        return "-" if v is None else f"{v:.4f}"

    return pd.DataFrame({"id": r["id"], "name": r["name"], "architecture": r["architecture"],
                         "labels": r["label_set"], "params": f"{r['params']:,}" if r["params"] else "-",
                         "size MB": f"{r['size_mb']:.2f}", "epochs": r["epochs"],
                         "train min": f"{r['train_minutes']:.0f}", "trained on": r["devices"] or "-",
                         "role": roles[r["id"]],
                         "val acc": acc(r["validation_accuracy"]), "test acc": acc(r["test_accuracy"])}
                        for r in rows)
