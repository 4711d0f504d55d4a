"""Ensembles: several registered models of one label set served as one model.

An ensemble is an ordinary `models/<id>/model.keras` — one Keras graph that feeds the same input to
every member (each a nested sub-model named `member_<i>`) and averages their probabilities — so the
Classifier, `evaluate`, every page and the exports treat it like any model, and its latency is real.
Its card lists the members and how they are combined, and may set a default test-time augmentation
(`inference.tta`) that the app and `evaluate` apply unless told otherwise.

An ensemble may also serve a smaller label set than its members (e.g. the 4-class happy/sad/surprise/
neutral task from 7-class models): each member's softmax head is cut to the kept emotions, which gives
exactly its probabilities restricted to them and renormalised, in plain Keras layers.
"""
from __future__ import annotations

import shlex
from datetime import datetime, timezone
from pathlib import Path

from . import registry
from ..base.labels import label_set_name, sort_emotions
from .tta import tta_mode

COMBINE = "mean of the members' class probabilities"


def member_models(model) -> list:
    """The nested member sub-models of an ensemble's Keras graph, in card order (empty for a plain model)."""
    return [layer for layer in model.layers if layer.name.startswith("member_") and hasattr(layer, "layers")]


def restricted_head(model, keep: list[int], name: str):
    """`model` with its softmax head cut to the classes `keep` (a new Dense layer holding those columns):
    softmax over a subset of logits = the full probabilities restricted to it and renormalised."""
    import keras

    head = model.layers[-1]
    if not (isinstance(head, keras.layers.Dense) and head.get_config().get("activation") == "softmax"):
        raise ValueError(f"{model.name} does not end in a softmax Dense layer, so its label set cannot be narrowed")
    kernel, bias = head.get_weights()
    narrow = keras.layers.Dense(len(keep), activation="softmax", dtype="float32", name="probabilities")
    out = narrow(head.input)
    narrow.set_weights([kernel[:, keep], bias[keep]])
    return keras.Model(model.input, out, name=name)


def narrowed(model, keep: list[int] | None):
    """`model`, or its softmax head cut to the classes `keep` (sharing the parent's weights, not copying them):
    how an export (`fer_core.training.export`) and Grad-CAM on an export (`fer_core.inference.gradcam`) narrow a parent."""
    if keep is None:
        return model
    return restricted_head(model, keep, f"{model.name}_narrowed")


def build_ensemble(members: list, keep: list[list[int] | None] | None = None):
    """One Keras model averaging the probability outputs of `members` (loaded Keras models, same input);
    `keep[i]`, where given, narrows member i to those output classes first."""
    import keras

    keep = keep or [None] * len(members)
    inputs = keras.Input(members[0].input_shape[1:], name="face")
    outputs = []
    for i, (member, classes) in enumerate(zip(members, keep)):
        # re-wrap so every member has a unique top-level name; the layers (and weights) are the member's own
        name = f"member_{i}"
        wrapped = (restricted_head(member, classes, name) if classes is not None
                   else keras.Model(member.input, member.output, name=name))
        outputs.append(wrapped(inputs))
    if len(outputs) == 1:
        mean = keras.layers.Identity(name="probabilities", dtype="float32")(outputs[0])
    else:
        mean = keras.layers.Average(name="probabilities", dtype="float32")(outputs)
    return keras.Model(inputs, mean, name="ensemble")


def _check_members(infos: list[registry.ModelInfo], labels: tuple[str, ...]) -> None:
    narrowed = any(i.labels != labels for i in infos)
    if len(infos) < 2 and not narrowed:
        raise ValueError("an ensemble needs at least two members (--members ID,ID,...), or one model and a "
                         "smaller --labels set")
    if len({i.id for i in infos}) != len(infos):
        raise ValueError("each member may appear only once")
    first = infos[0]
    for info in infos:
        missing = [e for e in labels if e not in info.labels]
        if missing:
            raise ValueError(f"member {info.id} has no {', '.join(missing)} output; its emotions are "
                             f"{', '.join(info.labels)}")
    for info in infos[1:]:
        if info.preprocessing != first.preprocessing:
            raise ValueError(f"members must share one preprocessing: {first.id} uses {first.preprocessing}, "
                             f"{info.id} uses {info.preprocessing}")
        if info.card.get("ensemble"):
            raise ValueError(f"{info.id} is itself an ensemble; list its members instead")


def create_ensemble(member_ids: list[str], out: str | Path, *, labels=None, name: str = "", tta: str = "none",
                    command: str | None = None) -> registry.ModelInfo:
    """Register an ensemble of `member_ids` at `out` (model.keras + card) and return it.

    `labels` (default: the first member's) may be a subset of the members' emotions: each member's
    probabilities are then restricted to it and renormalised.
    """
    infos = [registry.get_model(m) for m in member_ids]
    if not infos:
        raise ValueError("name the members with --members ID,ID,...")
    labels = tuple(labels) if labels else infos[0].labels
    labels = sort_emotions(labels)
    _check_members(infos, labels)
    tta = tta_mode(tta)
    out = Path(out)
    if out.resolve() in {i.path.resolve() for i in infos}:
        raise ValueError("--out must be a new folder, not one of the members")
    keep = [None if i.labels == labels else [i.labels.index(e) for e in labels] for i in infos]
    model = build_ensemble([registry.load_keras_model(i) for i in infos], keep)
    first = infos[0]
    ids = [i.id for i in infos]
    card = {
        "id": out.name,
        "name": name or f"Ensemble of {len(infos)} ({label_set_name(labels)})",
        "architecture": "ensemble",
        "description": f"Ensemble: {COMBINE} of {', '.join(ids)}"
                       + (f", restricted to {label_set_name(labels)} and renormalised"
                          if any(k is not None for k in keep) else "")
                       + (f"; {tta} test-time augmentation by default" if tta != "none" else ""),
        "labels": list(labels),
        "preprocessing": first.preprocessing.to_dict(),
        "params": int(model.count_params()),
        "file_size_bytes": None,  # set once the file is written
        "default": False,
        "dataset": first.card.get("dataset", {}),
        "ensemble": {"members": ids, "combine": COMBINE,
                     "restricted": {i.id: list(i.labels) for i, k in zip(infos, keep) if k is not None}},
        "inference": {"tta": tta},
        "training": {"command": command or _command_line(ids, out, name, tta, labels, infos[0].labels),
                     "members": [registry.training_record(m) for m in ids],
                     "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")},
        "metrics": {},
    }
    if (out / registry.CARD_FILE).exists():
        card["default"] = registry.read_card(out).get("default", False)

    def write(path: Path) -> None:
        model.save(path)
        card["file_size_bytes"] = path.stat().st_size

    registry.save_model_files(out, card, write)  # weights and card replace the old ones together
    registry.forget_predictions(out)
    return registry.ModelInfo(out.name, out, card)


def _command_line(ids: list[str], out: Path, name: str, tta: str, labels, first_labels) -> str:
    cmd = f"python -m fer_core ensemble --members {','.join(ids)} --out {shlex.quote(str(out))} --tta {tta}"
    cmd += f" --labels {','.join(labels)}" if tuple(labels) != tuple(first_labels) else ""
    return cmd + (f" --name {shlex.quote(name)}" if name else "")
