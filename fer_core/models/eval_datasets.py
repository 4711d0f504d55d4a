"""Which dataset a saved evaluation is on: a card keeps one result per (dataset, split), keyed by the
dataset's content id, and results saved before datasets had content ids are matched by name. These say
what a dataset is called, how a selector picks it, and how an old card's `metrics` reads as evaluations."""
from __future__ import annotations

from pathlib import Path

LEGACY_KEY = "legacy-"  # key prefix of results saved before datasets had content ids


def dataset_name(desc: dict) -> str:
    """A dataset's display name: its recorded name, else the last part of its source path."""
    if desc.get("name"):
        return str(desc["name"])
    source = str(desc.get("source") or "").rstrip("/\\")
    return Path(source).name or source or "unknown dataset"


def dataset_selector(desc: dict) -> dict:
    """The part of a dataset description that identifies it: content id (when recorded) and name."""
    return {"id": desc.get("id"), "name": dataset_name(desc)}


def same_dataset(desc: dict, selector: dict) -> bool:
    """Whether a recorded dataset is the selected one: by content id when both have one, else by name
    (results saved before content ids were recorded, whose file fingerprint changes with every copy)."""
    if desc.get("id") and selector.get("id"):
        return desc["id"] == selector["id"]
    return dataset_name(desc).lower() == dataset_name(selector).lower()


def evaluation_key(desc: dict, split: str) -> str:
    """The card key of an evaluation: `<content id>/<split>` (old results: `legacy-<fingerprint>/<split>`)."""
    return f"{desc.get('id') or LEGACY_KEY + str(desc.get('fingerprint') or 'unknown')}/{split}"


def split_rows(result: dict) -> int | None:
    """Images in the evaluated split (scored + skipped), the size check for replacing an old result."""
    return int(result["n"]) + int(result.get("skipped") or 0) if "n" in result else None


def migrated_card(card: dict) -> dict:
    """A card with an old `metrics` {split: result} section moved into `evaluations` (a copy when changed)."""
    legacy = card.get("metrics")
    if not legacy:
        return card
    card = {k: v for k, v in card.items() if k != "metrics"}
    evaluations = dict(card.get("evaluations") or {})
    for split, result in legacy.items():
        if isinstance(result, dict):
            desc = {**(result.get("dataset") or {}), "id": None}
            desc["name"] = dataset_name(desc)
            entry = {**result, "split": result.get("split", split), "dataset": desc,
                     "predictions": result.get("predictions", f"eval/{split}.npz")}
            evaluations.setdefault(evaluation_key(desc, split), entry)
    card["evaluations"] = evaluations
    return card
