"""Ensembles: several registered models of one label set served as one model.

An ensemble's folder holds no weights of its own: `models/<id>/ensemble.json` names each member by id
and the SHA-256 of its model file, and loading it (`registry.load_keras_model`) builds one Keras graph
from the members' own files that feeds the same input to every member (each a nested sub-model named
`member_<i>`) and averages their probabilities — so the Classifier, `evaluate`, every page, Grad-CAM and
the exports treat it like any model, its latency is real, and rebuilding it adds a few kB to git. A
member that changed or disappeared since the ensemble was built is refused with a `RegistryError`
(its old evaluations would describe other weights). Its card lists the members and how they are combined,
and may set a default test-time augmentation (`inference.tta`) that the app and `evaluate` apply unless
told otherwise. (Older ensembles were one `model.keras` holding copies of the members' weights; they
still load, and `to_reference` converts one.)

An ensemble may also serve a smaller label set than its members (e.g. the 4-class happy/sad/surprise/
neutral task from 7-class models): each member's softmax head is cut to the kept emotions, which gives
exactly its probabilities restricted to them and renormalised, in plain Keras layers.
"""
from __future__ import annotations

import json
import shlex
from datetime import datetime, timezone
from pathlib import Path

from . import registry
from ..base.labels import label_set_name, sort_emotions
from .ensemble_graph import SPEC_FORMAT, SPEC_VERSION, build_ensemble, file_sha256
from .tta import tta_mode

COMBINE = "mean of the members' class probabilities"


def _check_members(infos: list[registry.ModelInfo], labels: tuple[str, ...]) -> None:
    narrowing = any(i.labels != labels for i in infos)
    if len(infos) < 2 and not narrowing:
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
    model = build_ensemble([registry.load_keras_model(i) for i in infos], keep)  # checks the members load
    spec = ensemble_spec(infos, keep, labels)
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
        "file_size_bytes": members_size(infos),  # what serving it loads: the members' files
        "default": False,
        "dataset": first.card.get("dataset", {}),
        "ensemble": {"members": ids, "combine": COMBINE, "file": registry.ENSEMBLE_FILE,
                     "restricted": {i.id: list(i.labels) for i, k in zip(infos, keep) if k is not None}},
        "inference": {"tta": tta},
        "training": {"command": command or _command_line(ids, out, name, tta, labels, infos[0].labels),
                     "members": [registry.training_record(m) for m in ids],
                     "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")},
        "metrics": {},
    }
    if (out / registry.CARD_FILE).exists():
        card["default"] = registry.read_card(out).get("default", False)
    _write_spec(out, card, spec)
    registry.forget_predictions(out)
    return registry.ModelInfo(out.name, out, card)


def ensemble_spec(infos: list[registry.ModelInfo], keep: list, labels) -> dict:
    """What `ensemble.json` holds: each member's id, model file and its SHA-256, and the member's output
    classes kept (None: all of them, in the ensemble's order)."""
    return {"format": SPEC_FORMAT, "version": SPEC_VERSION, "combine": "mean", "labels": list(labels),
            "members": [{"id": i.id, "file": i.model_file.name, "sha256": file_sha256(i.model_file),
                         "classes": k} for i, k in zip(infos, keep)]}


def members_size(infos: list[registry.ModelInfo]) -> int:
    """Bytes of the weights an ensemble of `infos` loads (a nested ensemble's own members counted)."""
    return sum(int(i.card.get("file_size_bytes") or 0) if i.model_file.name == registry.ENSEMBLE_FILE
               else i.model_file.stat().st_size for i in infos)


def _write_spec(out: Path, card: dict, spec: dict) -> None:
    """Write `ensemble.json` and the card together (`registry.save_model_files`), then drop any old
    `model.keras` (an ensemble that copied its members' weights)."""
    def write(path: Path) -> None:
        path.write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")

    registry.save_model_files(out, card, write, registry.ENSEMBLE_FILE)
    (Path(out) / registry.MODEL_FILE).unlink(missing_ok=True)


def to_reference(model_id: str, *, faces=None, atol: float = 1e-5) -> registry.ModelInfo:
    """Convert an old ensemble (a `model.keras` copying its members' weights) to the by-reference form,
    keeping its card, evaluations and saved predictions: refused unless the ensemble built from the
    members' files gives the old file's probabilities (within `atol`) on `faces` (preprocessed N×H×W×C,
    default random ones)."""
    import numpy as np

    info = registry.get_model(model_id)
    if info.model_file.name == registry.ENSEMBLE_FILE:
        return info
    members = [registry.get_model(m, info.path.parent) for m in info.card["ensemble"]["members"]]
    labels = info.labels
    keep = [None if m.labels == labels else [m.labels.index(e) for e in labels] for m in members]
    old = registry.load_keras_model(info)
    new = build_ensemble([registry.load_keras_model(m) for m in members], keep)
    if faces is None:
        faces = np.random.default_rng(0).random((64, *old.input_shape[1:]), dtype=np.float32)
    gap = float(np.max(np.abs(np.asarray(old.predict(faces, verbose=0)) - np.asarray(new.predict(faces, verbose=0)))))
    if gap > atol:
        raise ValueError(f"{model_id}: the members' files give other probabilities than its model.keras "
                         f"(largest difference {gap:.2e}); rebuild it with `python -m fer_core ensemble`")
    card = dict(info.card)
    card["ensemble"] = {**card["ensemble"], "file": registry.ENSEMBLE_FILE}
    card["file_size_bytes"] = members_size(members)
    _write_spec(info.path, card, ensemble_spec(members, keep, labels))
    return registry.get_model(model_id, info.path.parent)


def _command_line(ids: list[str], out: Path, name: str, tta: str, labels, first_labels) -> str:
    cmd = f"python -m fer_core ensemble --members {','.join(ids)} --out {shlex.quote(str(out))} --tta {tta}"
    cmd += f" --labels {','.join(labels)}" if tuple(labels) != tuple(first_labels) else ""
    return cmd + (f" --name {shlex.quote(name)}" if name else "")
