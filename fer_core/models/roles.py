"""Which registered models play which part: a label set's default, its most accurate model, and the
fastest file that answers like it (an edge export of it). Pages label models with these roles and compare
the featured ones by default; all of it is read from the cards, nothing is run."""
from __future__ import annotations

from .card import ModelInfo
from .lookup import pick_default


def validation_accuracy(info: ModelInfo) -> float | None:
    """The model's saved accuracy on its home dataset's validation split (its default inference), or None."""
    found = info.metrics("validation")
    return found.get("accuracy") if found else None


def most_accurate(infos: list[ModelInfo], labels) -> ModelInfo | None:
    """The model of label set `labels` with the best saved validation accuracy (real evaluations only)."""
    scored = [(validation_accuracy(m), m) for m in infos if m.labels == tuple(labels)]
    scored = [(acc, m) for acc, m in scored if acc is not None]
    return max(scored, key=lambda pair: pair[0])[1] if scored else None


def fastest_equivalent(infos: list[ModelInfo], model: ModelInfo) -> ModelInfo:
    """`model`, or its best-scoring registered edge export of the same label set: it answers (almost) the same
    without TensorFlow, so a page that only compares answers can run it instead."""
    exports = [m for m in infos if m.model_card.export_parent == model.id and m.labels == model.labels
               and validation_accuracy(m) is not None]
    return max(exports, key=validation_accuracy) if exports else model


def model_roles(infos: list[ModelInfo]) -> dict[str, str]:
    """Each model's role in its label set, for tables: "default", "most accurate, slower" (the best saved
    validation accuracy, when that is not the default) or ""."""
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
