"""`train` and `distill`: train an architecture on a dataset (distill: on a teacher model's probabilities),
register it under models/, and score it on the validation split."""
from __future__ import annotations

import logging
import shlex

from ..data.votes import LABEL_SOURCES
from ..training.config import AUGMENTATIONS, CLASS_WEIGHTS, SCHEDULES, SWA_BATCHNORM, TEACHER_OUTPUTS, TrainConfig

log = logging.getLogger(__name__)


def add_cli(subparsers) -> None:
    """`train`, and `distill` (the same options plus the teacher's)."""
    p = subparsers.add_parser("train", help="train an architecture on a dataset and register it under models/")
    _add_training_arguments(p)
    p = subparsers.add_parser("distill", help="train a fast network on a registered teacher's probabilities")
    p.add_argument("--teacher", required=True, help="registered model whose answers the network learns, "
                                                    "e.g. fer_ensemble_7class")
    p.add_argument("--teacher-tta", default="", choices=("", "none", "flip", "tencrop"),
                   help="the teacher's test-time augmentation (default: its card's; none with --teacher-outputs "
                        "per-batch)")
    p.add_argument("--teacher-outputs", choices=TEACHER_OUTPUTS, default="cached",
                   help="cached: the teacher answers once per clean training face (cheap; augmented copies share "
                        "that answer); per-batch: it answers every augmented batch the student sees (consistent "
                        "teaching: costs the teacher's forward pass on every step, so pick a fast teacher such "
                        "as an int8 export)")
    p.add_argument("--temperature", type=float, default=2.0, help="distillation temperature T (default 2)")
    p.add_argument("--alpha", type=float, default=0.9,
                   help="weight of the teacher's term; 1 − alpha goes to the hard label (default 0.9)")
    _add_training_arguments(p)


def _add_training_arguments(p) -> None:
    from ..models.architectures import ARCHITECTURES

    p.add_argument("--arch", required=True, choices=list(ARCHITECTURES))
    p.add_argument("--data", required=True, help="dataset folder, .zip or fer2013.csv")
    p.add_argument("--labels", default="all", help="all | 4class | comma list, e.g. happy,neutral,sad,surprise")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3, dest="learning_rate")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--schedule", choices=SCHEDULES, default="onecycle")
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--augment", choices=AUGMENTATIONS, default="standard")
    p.add_argument("--color", choices=("grayscale", "rgb"), default="grayscale")
    p.add_argument("--patience", type=int, default=8, help="early-stopping patience in epochs (0 = off)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--limit", type=int, default=0, help="train on at most N images (quick runs)")
    p.add_argument("--mixed-precision", choices=("auto", "off", "bfloat16", "float16"), default="auto")
    p.add_argument("--init-from", default="", help="registered model whose matching layers initialise this one")
    p.add_argument("--erase", type=float, default=0.0, help="random-erasing probability per face (0 = off)")
    p.add_argument("--keep-leaks", dest="exclude_leaks", action="store_false",
                   help="keep training faces that duplicate a validation/test face (dropped by default)")
    p.add_argument("--exclude", default="", help="CSV with a `file` column: training files to leave out")
    p.add_argument("--label-source", choices=LABEL_SOURCES, default="fer2013",
                   help="whose labels to learn: the dataset's own (fer2013), FER+'s crowd majority (faces without "
                        "one left out) or FER+'s vote distribution as soft targets (ferplus-soft); validation "
                        "uses the majority. With FER+ votes, --labels all means FER+'s 8 emotions (with contempt); "
                        "a 7-class set counts contempt votes as disgust")
    p.add_argument("--votes", default="", help="FER+ votes CSV (default: ferplus_votes.csv or fer2013new.csv "
                                               "beside the data)")
    p.add_argument("--class-weight", choices=CLASS_WEIGHTS, default="none",
                   help="balanced: weigh the loss so every emotion counts equally (for imbalanced label sets)")
    p.add_argument("--swa", type=int, default=0,
                   help="ship the mean of the last N epochs' weights (stochastic weight averaging, BatchNorm "
                        "statistics recomputed) instead of the best epoch; 0 = off")
    p.add_argument("--swa-batchnorm", choices=SWA_BATCHNORM, default="clean",
                   help="recompute the SWA mean's BatchNorm statistics on clean training faces (best for plain "
                        "inference) or augmented ones (can suit ten-crop TTA better)")
    p.add_argument("--name", default="", help="display name for the model card")
    p.add_argument("--out", default="", help="output folder (default models/<arch>_<labels>)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    p.add_argument("--finish", action="store_true",
                   help="train no more: ship the best epoch an interrupted run reached "
                        "(e.g. one killed by a time limit)")
    p.add_argument("--no-evaluate", action="store_true", help="skip evaluating on the validation split afterwards")
    p.set_defaults(func=run)


def run(args) -> int:
    """Train (or resume, or finish) the run the arguments describe, then score it on the validation split."""
    from ..training.train import train

    fields = {k: getattr(args, k) for k in TrainConfig.__dataclass_fields__ if hasattr(args, k) and k != "extra"}
    config = TrainConfig(**fields)
    command = "python -m fer_core " + " ".join(shlex.quote(a) for a in args.argv if a not in ("--resume", "--finish"))
    info = train(config, resume=args.resume, finish=args.finish, command=command)
    swa = info.card["training"].get("swa", {})
    shipped = (f"mean of epochs {swa['epochs'][0]}–{swa['epochs'][-1]} (SWA)" if swa.get("epochs")
               else f"best epoch {info.card['training']['best_epoch']}")
    print(f"saved {info.model_file} ({info.card['params']:,} params, {shipped})")
    if not args.no_evaluate:
        _validate(info, config)
    return 0


def _validate(info, config: TrainConfig) -> None:
    """Score the new model on its dataset's validation split (and the FER+ majority) and save it in its card."""
    try:
        from ..evaluation.evaluate import evaluate_model
        from ..evaluation.predictions import save_evaluation
    except ImportError as err:  # a partial install without the evaluation package: the model is saved
        log.warning("validation skipped: cannot import fer_core.evaluation (%s)", err)
        return
    from ..data.datasets import load_dataset

    result = evaluate_model(info, load_dataset(config.data), split="validation", votes=config.votes or None)
    save_evaluation(info, result)
    print(f"validation accuracy {result['accuracy']:.4f}, macro-F1 {result['macro_f1']:.4f} (n={result['n']})")
    crowd = result.get("ferplus") or {}
    if crowd.get("n"):
        print(f"against the FER+ majority: accuracy {crowd['accuracy']:.4f} (n={crowd['n']})")
