"""What each label set's default model learned from, and how it scores against one annotator and against the
crowd: the table Home, Model Comparison and Responsible Use show so that a person knows whose labels a default
repeats. Read from the cards; nothing is run."""
from __future__ import annotations

from ..models.registry import ModelInfo, pick_default
from ..models.roles import label_source

LEARNED_FROM = {  # a training run's `--label-source` → what its labels are: (in words, the leaderboard's short form)
    "fer2013": ("FER2013's own labels (one annotator per face)", "FER2013 (1 annotator)"),
    "ferplus-majority": ("FER+ crowd majority (ten annotators per face)", "FER+ crowd majority (10)"),
    "ferplus-soft": ("FER+ crowd votes (ten annotators per face, as vote shares)", "FER+ crowd votes (10)"),
}


def learned_from(info: ModelInfo, short: bool = False) -> str:
    """Whose labels the model learned, in words (`short`: the leaderboard column's form)."""
    source = label_source(info)
    return LEARNED_FROM[source][short] if source in LEARNED_FROM else source


def defaults_rows(infos: list[ModelInfo]) -> list[dict]:
    """One row per label set: its default model, what it learned from, its accuracy against FER2013's single
    labels and against the FER+ crowd majority (on its own emotions) on the validation split of its home
    dataset, and on real photos through the default photo pipeline (`evaluate --photos`, the photo set most
    models were measured on), as saved in its card (None when not measured)."""
    from .photo_store import default_pipeline, photo_datasets, photo_result

    photos = next((g["id"] for g in photo_datasets(infos)), None)
    rows = []
    for labels in dict.fromkeys(m.labels for m in infos):
        default = pick_default(infos, labels)
        if default is None:
            continue
        saved = default.metrics("validation") or {}
        rows.append({"label set": default.label_set, "default model": default.id,
                     "learned from": learned_from(default),
                     "FER+ crowd accuracy": (saved.get("ferplus") or {}).get("accuracy"),
                     "FER2013-label accuracy": saved.get("accuracy"),
                     "real-photo accuracy": (photo_result(default, photos, default_pipeline()) or {}).get("accuracy"),
                     "measured on": saved.get("split_description")})
    return rows
