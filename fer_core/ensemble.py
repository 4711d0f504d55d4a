"""Ensembles: several registered models of one label set served as one model.

An ensemble is an ordinary `models/<id>/model.keras` — one Keras graph that feeds the same input to
every member (each a nested sub-model named `member_<i>`) and averages their probabilities — so the
Classifier, `evaluate`, every page and the exports treat it like any model, and its latency is real.
Its card lists the members and how they are combined, and may set a default test-time augmentation
(`inference.tta`) that the app and `evaluate` apply unless told otherwise.
"""
from __future__ import annotations

import shlex
from datetime import datetime, timezone
from pathlib import Path

from . import registry
from .predict import tta_mode

COMBINE = "mean of the members' class probabilities"


def member_models(model) -> list:
    """The nested member sub-models of an ensemble's Keras graph, in card order (empty for a plain model)."""
    return [layer for layer in model.layers if layer.name.startswith("member_") and hasattr(layer, "layers")]


def build_ensemble(members: list) -> "keras.Model":
    """One Keras model averaging the probability outputs of `members` (loaded Keras models, same input)."""
    import keras

    shape = members[0].input_shape[1:]
    inputs = keras.Input(shape, name="face")
    outputs = []
    for i, member in enumerate(members):
        # re-wrap so every member has a unique top-level name; the layers (and weights) are the member's own
        wrapped = keras.Model(member.input, member.output, name=f"member_{i}")
        outputs.append(wrapped(inputs))
    mean = keras.layers.Average(name="probabilities", dtype="float32")(outputs)
    return keras.Model(inputs, mean, name="ensemble")


def _check_members(infos: list[registry.ModelInfo]) -> None:
    if len(infos) < 2:
        raise ValueError("an ensemble needs at least two members (--members ID,ID,...)")
    if len({i.id for i in infos}) != len(infos):
        raise ValueError("each member may appear only once")
    first = infos[0]
    for info in infos[1:]:
        if info.labels != first.labels:
            raise ValueError(f"members must share one label set: {first.id} has {', '.join(first.labels)}, "
                             f"{info.id} has {', '.join(info.labels)}")
        if info.preprocessing != first.preprocessing:
            raise ValueError(f"members must share one preprocessing: {first.id} uses {first.preprocessing}, "
                             f"{info.id} uses {info.preprocessing}")
        if info.card.get("ensemble"):
            raise ValueError(f"{info.id} is itself an ensemble; list its members instead")


def create_ensemble(member_ids: list[str], out: str | Path, *, name: str = "", tta: str = "none",
                    command: str | None = None) -> registry.ModelInfo:
    """Register an ensemble of `member_ids` at `out` (model.keras + card) and return it."""
    from .train import _lineage

    infos = [registry.get_model(m) for m in member_ids]
    _check_members(infos)
    tta = tta_mode(tta)
    out = Path(out)
    if out.resolve() in {i.path.resolve() for i in infos}:
        raise ValueError("--out must be a new folder, not one of the members")
    model = build_ensemble([registry.load_keras_model(i) for i in infos])
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / registry.MODEL_FILE)
    first = infos[0]
    ids = [i.id for i in infos]
    card = {
        "id": out.name,
        "name": name or f"Ensemble of {len(infos)} ({first.label_set})",
        "architecture": "ensemble",
        "description": f"Ensemble: {COMBINE} of {', '.join(ids)}"
                       + (f"; {tta} test-time augmentation by default" if tta != "none" else ""),
        "labels": list(first.labels),
        "preprocessing": first.preprocessing.to_dict(),
        "params": int(model.count_params()),
        "file_size_bytes": (out / registry.MODEL_FILE).stat().st_size,
        "default": False,
        "dataset": first.card.get("dataset", {}),
        "ensemble": {"members": ids, "combine": COMBINE},
        "inference": {"tta": tta},
        "training": {"command": command or _command_line(ids, out, name, tta),
                     "members": [_lineage(m) for m in ids],
                     "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")},
        "metrics": {},
    }
    if (out / registry.CARD_FILE).exists():
        card["default"] = registry.read_card(out).get("default", False)
    registry.write_card(out, card)
    return registry.ModelInfo(out.name, out, card)


def _command_line(ids: list[str], out: Path, name: str, tta: str) -> str:
    cmd = f"python -m fer_core ensemble --members {','.join(ids)} --out {shlex.quote(str(out))} --tta {tta}"
    return cmd + (f" --name {shlex.quote(name)}" if name else "")


# ----------------------------------------------------------------------------- CLI

def add_cli(subparsers) -> None:
    p = subparsers.add_parser("ensemble", help="register an ensemble of models (mean of their probabilities)")
    p.add_argument("--members", required=True, help="comma-separated model ids with the same label set")
    p.add_argument("--out", required=True, help="output folder, e.g. models/my_ensemble")
    p.add_argument("--tta", default="none", type=tta_mode, metavar="{none,flip,tencrop}",
                   help="the ensemble's default test-time augmentation (recorded in its card)")
    p.add_argument("--name", default="", help="display name for the model card")
    p.set_defaults(func=_cmd_ensemble)


def _cmd_ensemble(args) -> int:
    ids = [m.strip() for m in args.members.split(",") if m.strip()]
    info = create_ensemble(ids, args.out, name=args.name, tta=args.tta)
    print(f"saved {info.model_file}: {len(ids)} members, {info.card['params']:,} params, "
          f"default TTA {info.card['inference']['tta']}")
    print(f"evaluate it with: python -m fer_core evaluate --model {info.id} --data DIR --split validation")
    return 0
