"""Edge exports beside their parents, as one table for the Model Comparison page: size, accuracy, macro-F1,
top-label agreement and latency of each export next to its parent's (`fer_core.training.export` makes the
exports; `parents` holds the per-export comparison that evaluation records)."""
from __future__ import annotations

from ..models import registry
from .latency import LATENCY_BATCH
from .parents import agreement, parent_figures, parent_of
from .predictions import load_predictions

FORMAT_NAMES = {"keras": "Keras", "litert": "LiteRT", "onnx": "ONNX"}  # card `format` → how pages name it


def is_export(info: registry.ModelInfo) -> bool:
    return info.format != "keras"


def agreement_with_parent(info: registry.ModelInfo, split: str, dataset: dict | None = None
                          ) -> tuple[float | None, int]:
    """Top-label agreement of an export with its parent on `split` of `dataset` (a selector; default the
    home dataset), from both models' saved per-image predictions; (None, 0) when either lacks them."""
    parent = parent_of(info)
    mine = load_predictions(info, split, dataset)
    theirs = load_predictions(parent, split, dataset) if parent else None
    return agreement(mine, theirs) if mine is not None and theirs is not None else (None, 0)


def exports_frame(infos, split: str, dataset: dict | None = None):
    """DataFrame: each export among `infos` beside its parent — size, accuracy and macro-F1 on `split` of
    `dataset` (from the cards), top-label agreement (from saved predictions) and latency per face / per
    batch (the export's evaluation measured both in one run)."""
    import pandas as pd

    rows = []
    for info in filter(is_export, infos):
        export, parent = info.card["export"], parent_of(info)
        mine = info.metrics(split, dataset) or {}
        if parent is not None:
            theirs = parent_figures(info, parent, split, dataset) or {}
            share, n = agreement_with_parent(info, split, dataset)
        elif mine.get("parent_scores"):  # a parent not shipped: its figures as this evaluation recorded them
            theirs = mine["parent_scores"]
            share, n = theirs.get("agreement"), theirs.get("images_compared") or 0
        else:
            continue
        base = mine.get("parent_latency") or {}
        rows.append({
            "export": info.id, "parent": export.get("parent", "") + ("" if parent else " (not shipped)"),
            "format": FORMAT_NAMES.get(info.format, info.format),
            "quantization": export.get("quantization"), "size MB": export["file_size_bytes"] / 1e6,
            "parent size MB": (export.get("parent_file_size_bytes") or 0) / 1e6,
            "size vs parent": export.get("size_ratio"),
            "accuracy": mine.get("accuracy"), "parent accuracy": theirs.get("accuracy"),
            "Δ accuracy (points)": (100 * (mine["accuracy"] - theirs["accuracy"])
                                    if mine.get("accuracy") is not None and theirs.get("accuracy") is not None
                                    else None),
            "macro-F1": mine.get("macro_f1"), "parent macro-F1": theirs.get("macro_f1"),
            "agreement": share, "images compared": n,
            "ms/face": mine.get("latency_ms_per_face"), "parent ms/face": base.get("latency_ms_per_face"),
            f"ms/batch of {LATENCY_BATCH}": mine.get("latency_ms_per_batch"),
            f"parent ms/batch of {LATENCY_BATCH}": base.get("latency_ms_per_batch"),
            "note": export.get("note", "")})
    return pd.DataFrame(rows)
