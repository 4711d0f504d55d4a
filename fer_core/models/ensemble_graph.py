"""An ensemble's Keras graph and its by-reference file, below the registry (which loads an ensemble through
`load_ensemble`; `fer_core.models.ensemble` creates them and imports the registry).

`ensemble.json` names each member by id and the SHA-256 of its model file; `load_ensemble` finds the members,
refuses one that changed or is missing, and builds one graph that feeds the same input to every member (each
a nested sub-model named `member_<i>`, its softmax head cut to the ensemble's emotions where it has more) and
averages their probabilities.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

SPEC_FORMAT = "fer_core ensemble by reference"
SPEC_VERSION = 1
CARD_FILE = "card.json"


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
    how an export (`fer_core.training.export`) and Grad-CAM on an export (`fer_core.inference.gradcam`)
    narrow a parent."""
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


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_ensemble(info, roots: list[Path], load, error: type[Exception] = ValueError):
    """The Keras model of the ensemble `info` (a registry ModelInfo whose `model_file` is its `ensemble.json`):
    each member found under the first of `roots` that has it, its file checked against the recorded hash,
    loaded with `load(member_info)`; a missing or changed member raises `error`."""
    try:
        spec = json.loads(info.model_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise error(f"ensemble {info.id!r}: cannot read {info.model_file}: {err}") from None
    if spec.get("format") != SPEC_FORMAT or not spec.get("members"):
        raise error(f"ensemble {info.id!r}: {info.model_file} is not an ensemble file")
    models = []
    for entry in spec["members"]:
        member = _find_member(info, entry["id"], roots)
        if member is None:
            raise error(f"ensemble {info.id!r} needs member {entry['id']!r}, which is not registered (looked in "
                        f"{', '.join(str(r) for r in dict.fromkeys(roots))}); restore it or rebuild the ensemble")
        digest = file_sha256(member.model_file)
        if digest != entry.get("sha256"):
            command = (info.card.get("training") or {}).get("command")
            raise error(f"ensemble {info.id!r}: member {member.id!r} has changed since the ensemble was built "
                        f"({member.model_file.name} sha256 {digest[:12]}, expected {str(entry.get('sha256'))[:12]}); "
                        "restore it, or rebuild the ensemble" + (f": {command}" if command else ""))
        models.append(load(member))
    return build_ensemble(models, [e.get("classes") for e in spec["members"]])


def _find_member(info, member_id: str, roots: list[Path]):
    for root in dict.fromkeys(Path(r) for r in roots):
        folder = root / member_id
        try:
            card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        member = type(info)(member_id, folder, card)
        if member.model_file.exists():
            return member
    return None
