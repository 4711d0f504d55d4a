"""`ensemble`: register an ensemble of registered models (the mean of their probabilities) as a model folder."""
from __future__ import annotations

from ..models.tta import tta_mode


def add_cli(subparsers) -> None:
    """Add `ensemble` to the fer_core CLI."""
    p = subparsers.add_parser("ensemble", help="register an ensemble of models (mean of their probabilities)")
    p.add_argument("--members", required=True, help="comma-separated model ids with the same label set")
    p.add_argument("--out", required=True, help="output folder, e.g. models/my_ensemble")
    p.add_argument("--tta", default="none", type=tta_mode, metavar="{none,flip,tencrop}",
                   help="the ensemble's default test-time augmentation (recorded in its card)")
    p.add_argument("--labels", default="", help="serve a subset of the members' emotions, e.g. 4class or "
                                                "happy,sad,surprise,neutral (probabilities renormalised)")
    p.add_argument("--name", default="", help="display name for the model card")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..base.labels import parse_label_set
    from ..models.ensemble import create_ensemble

    ids = [m.strip() for m in args.members.split(",") if m.strip()]
    labels = parse_label_set(args.labels) if args.labels else None
    info = create_ensemble(ids, args.out, labels=labels, name=args.name, tta=args.tta)
    print(f"saved {info.model_file}: {len(ids)} members, {info.card['params']:,} params, "
          f"default TTA {info.card['inference']['tta']}")
    print(f"evaluate it with: python -m fer_core evaluate --model {info.id} --data DIR --split validation")
    return 0
