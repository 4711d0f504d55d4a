"""`robustness`: a model's accuracy under blur, noise, low light, occlusion … on a validation subset, saved
in its card."""
from __future__ import annotations

import json

from ..evaluation.robustness import DEFAULT_N, SEED
from ..models.tta import add_tta_argument


def add_cli(subparsers) -> None:
    """Add `robustness` to the fer_core CLI."""
    p = subparsers.add_parser("robustness", help="accuracy under blur, noise, low light, occlusion … "
                                                 "(validation subset) saved in the model's card")
    p.add_argument("--model", required=True, help="model id under models/ (see `models`) or a model folder")
    p.add_argument("--data", required=True, help="dataset folder, .zip or fer2013.csv (its validation split is used)")
    p.add_argument("--n", type=int, default=DEFAULT_N, help=f"images in the stratified subset (default {DEFAULT_N})")
    p.add_argument("--seed", type=int, default=SEED, help="seed of the subset and of random corruptions")
    add_tta_argument(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-save", action="store_true", help="do not write the card")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..base.progress import stderr_progress
    from ..data.datasets import load_dataset
    from ..evaluation.robustness import format_report, robustness_report
    from ..models import registry

    info = registry.get_model(args.model)
    dataset = load_dataset(args.data, progress=stderr_progress)
    report = robustness_report(info, dataset, n=args.n, seed=args.seed, tta=args.tta, progress=stderr_progress,
                               save=not args.no_save)
    if args.json:
        print(json.dumps(report))
        return 0
    print(format_report(report))
    if not args.no_save:
        print(f"\nSaved into {info.path / registry.CARD_FILE} (robustness, {report['dataset']['name']} "
              f"id {report['dataset']['id']})")
    return 0
