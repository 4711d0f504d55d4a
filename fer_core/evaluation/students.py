"""Distilled students beside their teachers, as one table for the Model Comparison page: accuracy, latency
and top-label agreement of each model that learnt from a teacher (`fer_core.training.distill` trains them)."""
from __future__ import annotations

from ..models import registry
from .parents import agreement
from .predictions import load_predictions


def teacher_of(info: registry.ModelInfo) -> str | None:
    """The teacher a model learnt from: its own card's, or for an edge export its parent's (None if neither)."""
    if info.model_card.teacher:
        return info.model_card.teacher
    parent = info.model_card.export_parent
    if not parent:
        return None
    try:
        return registry.get_model(parent, info.path.parent).model_card.teacher
    except registry.RegistryError:
        return None


def students_frame(infos, split: str, dataset: dict | None = None):
    """DataFrame: every distilled model among `infos` (and its edge exports) beside its teacher on `split` of
    `dataset` — accuracy, latency per face (each with its default TTA, from the cards' evaluations) and the
    share of faces where both give the same top label (from their saved predictions)."""
    import pandas as pd

    by_id = {m.id: m for m in infos}
    rows = []
    for info in infos:
        teacher = by_id.get(teacher_of(info) or "")
        if teacher is None:
            continue
        mine, theirs = info.metrics(split, dataset) or {}, teacher.metrics(split, dataset) or {}
        pred, ref = load_predictions(info, split, dataset), load_predictions(teacher, split, dataset)
        share, n = agreement(pred, ref) if pred is not None and ref is not None else (None, 0)
        ms, teacher_ms = mine.get("latency_ms_per_face"), theirs.get("latency_ms_per_face")
        rows.append({"student": info.id, "teacher": teacher.id,
                     "TTA": info.model_card.tta, "teacher TTA": teacher.model_card.tta,
                     "accuracy": mine.get("accuracy"), "teacher accuracy": theirs.get("accuracy"),
                     "ms/face": ms, "teacher ms/face": teacher_ms,
                     "speed-up": teacher_ms / ms if ms and teacher_ms else None,
                     "agreement": share, "faces compared": n})
    return pd.DataFrame(rows)
