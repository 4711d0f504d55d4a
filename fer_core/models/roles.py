"""Which registered models play which part: a label set's default, its most accurate model, and the
fastest file that answers like it (an edge export of it). Pages label models with these roles and compare
the featured ones by default; all of it is read from the cards, nothing is run."""
from __future__ import annotations

from .card import ModelInfo
from .lookup import pick_default


def label_source(info: ModelInfo) -> str:
    """The `--label-source` of the run behind `info` (an export or view inherits its parent's dataset record):
    `fer2013` (one annotator per face) or a FER+ crowd source (`ferplus-majority`, `ferplus-soft`)."""
    record = (info.card.get("dataset") or {}).get("label_source") or {}
    return str(record.get("label_source", "fer2013")) if isinstance(record, dict) else str(record)


def validation_accuracy(info: ModelInfo, against: str = "fer2013") -> float | None:
    """The model's saved accuracy on its home dataset's validation split (its default inference), against
    FER2013's own labels or, with `against` a FER+ source, the FER+ crowd majority; None when not measured."""
    found = info.metrics("validation")
    if found and against != "fer2013":
        found = found.get("ferplus") or {}
    return found.get("accuracy") if found else None


def ranking_source(infos: list[ModelInfo], labels) -> str:
    """Whose labels "most accurate" is measured against in a label set: those its default learned from, so a
    crowd-labelled default is compared with other models on the crowd's labels, not on one annotator's."""
    default = pick_default(infos, tuple(labels))
    return label_source(default) if default is not None else "fer2013"


def most_accurate(infos: list[ModelInfo], labels) -> ModelInfo | None:
    """The model of label set `labels` with the best saved validation accuracy against the labels of the set's
    default (`ranking_source`; real evaluations only)."""
    against = ranking_source(infos, labels)
    scored = [(validation_accuracy(m, against), m) for m in infos if m.labels == tuple(labels)]
    scored = [(acc, m) for acc, m in scored if acc is not None]
    return max(scored, key=lambda pair: pair[0])[1] if scored else None


def fastest_equivalent(infos: list[ModelInfo], model: ModelInfo) -> ModelInfo:
    """`model`, or its best-scoring registered edge export of the same label set: it answers (almost) the same
    without TensorFlow, so a page that only compares answers can run it instead."""
    against = ranking_source(infos, model.labels)
    exports = [m for m in infos if m.model_card.export_parent == model.id and m.labels == model.labels
               and validation_accuracy(m, against) is not None]
    return max(exports, key=lambda m: validation_accuracy(m, against)) if exports else model


def model_roles(infos: list[ModelInfo]) -> dict[str, str]:
    """Each model's role in its label set, for tables: "default", "most accurate, slower" (the best saved
    validation accuracy, against the labels the default learned from, when that is not the default) or ""."""
    roles = {m.id: "default" if m.is_default() else "" for m in infos}
    for labels in {m.labels for m in infos}:
        best = most_accurate(infos, labels)
        if best is not None and not roles[best.id]:
            roles[best.id] = "most accurate, slower"
    return roles


def featured_models(infos: list[ModelInfo], accurate_for=None) -> list[ModelInfo]:
    """What a page compares by default: every label set's default model and its most accurate one (run as its
    best edge export when one is registered), defaults first. `accurate_for` (a label set) keeps only that
    label set's most accurate model: a ten-crop ensemble is the costliest thing a page can run."""
    out: list[ModelInfo] = []
    for labels in dict.fromkeys(m.labels for m in infos):
        default = pick_default(infos, labels)
        best = most_accurate(infos, labels) if accurate_for is None or tuple(accurate_for) == labels else None
        for m in (default, fastest_equivalent(infos, best) if best else None):
            if m is not None and m not in out:
                out.append(m)
    return out
