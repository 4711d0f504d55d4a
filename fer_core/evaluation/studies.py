"""Comparisons across training runs, read from model cards: architectures at an equal training budget,
and ablations (one architecture, one recipe, a single setting varied).

A comparison is only fair when everything but the compared setting is equal, so both tables group
registered models by their recorded training recipe (`training.config` in each card) and say which
recipe and budget the rows share.
"""
from __future__ import annotations

from ..models import registry

SEED_ARCHITECTURES = ("baseline_cnn", "larger_cnn", "complex_cnn", "vgg16_transfer", "resnet50v2_transfer",
                      "efficientnet_transfer")
ABLATED = ("augment", "color", "erase")  # the settings an ablation varies
ABLATION_ARCH = "baseline_cnn"  # the architecture the shipped ablation runs use (the cheapest seed CNN)
_NOT_RECIPE = {"arch", "out", "name", "data", "seed", "mixed_precision", "extra", "exclude_leaks", "limit",
               "patience"}
# settings added to the trainer after some cards were written: a card without one used its default
_LATER_DEFAULTS = {"erase": 0.0, "exclude": "", "class_weight": "none"}


def weights_run(info: registry.ModelInfo) -> dict:
    """The training record of the run that made a model's weights: its own, or for an edge export (converted,
    not trained) its parent's, which the export's card keeps."""
    training = info.card.get("training") or {}
    return (training.get("init_from") or {}) if info.format != "keras" else training


def recipe(info: registry.ModelInfo) -> dict:
    """The training settings that shape a model's result (not its name, folder or data path)."""
    config = {**_LATER_DEFAULTS, **(weights_run(info).get("config") or {})}
    return {k: v for k, v in config.items() if k not in _NOT_RECIPE}


def _accuracy(info: registry.ModelInfo, split: str) -> tuple[float | None, float | None, int | None]:
    m = info.metrics(split) or {}
    return m.get("accuracy"), m.get("macro_f1"), m.get("n")


def _from_scratch(info: registry.ModelInfo) -> bool:
    training = weights_run(info)
    return bool(training.get("config")) and not training.get("init_from")


def _trained_models(infos) -> list[registry.ModelInfo]:
    """One entry per trained network: Keras models, and an edge export only where its parent is not
    registered (a network too large to ship as Keras is shipped as its compressed export alone)."""
    ids = {i.id for i in infos}
    return [i for i in infos if i.format == "keras" or i.model_card.export_parent not in ids]


def equal_budget_frame(infos, split: str = "validation", reference: tuple[str, str] = ("standard", "grayscale")):
    """The seed studies' architectures trained from scratch with one recipe: a row per model with its
    budget (epochs, wall-clock minutes), size and accuracy on `split`. Only models whose recipe equals
    the most common one among them (ignoring the architecture) are listed, so the budget is equal."""
    import pandas as pd

    from .leaderboard import training_budget

    candidates = [i for i in _trained_models(infos) if i.card.get("architecture") in SEED_ARCHITECTURES
                  and _from_scratch(i)
                  and (recipe(i).get("augment"), recipe(i).get("color")) == reference]
    if not candidates:
        return pd.DataFrame()
    keys = [str(sorted(recipe(i).items())) for i in candidates]
    common = max(set(keys), key=keys.count)
    rows = []
    for info, key in zip(candidates, keys):
        if key != common:
            continue
        epochs, minutes = training_budget(info.card.get("training") or {})
        saved = info.metrics(split) or {}
        matrix = saved.get("confusion_matrix")
        rows.append({"model": info.id, "architecture": info.card.get("architecture"),
                     "starts from": weights_run(info).get("initial_weights", "random"),
                     "params": info.card.get("params"), "shipped as": _shipped_as(info),
                     "size MB": round((info.card.get("file_size_bytes") or 0) / 1e6, 2), "epochs": epochs,
                     "train min": minutes, "accuracy": saved.get("accuracy"), "macro-F1": saved.get("macro_f1"),
                     "images": saved.get("n"),
                     # a run that never left the class prior answers one emotion for every face: say so
                     "emotions predicted": sum(1 for col in zip(*matrix) if sum(col)) if matrix else None})
    return pd.DataFrame(rows).sort_values("accuracy", ascending=False, na_position="last").reset_index(drop=True)


def _shipped_as(info: registry.ModelInfo) -> str:
    export = info.model_card.export
    return f"{info.format} {export.get('quantization', '')}".strip() if export else "keras"


def missing_seed_architectures(fair) -> list[str]:
    """Seed architectures with no row in an `equal_budget_frame`, so a page can say which are absent."""
    present = set(fair["architecture"]) if len(fair) else set()
    return [arch for arch in SEED_ARCHITECTURES if arch not in present]


def ablation_frame(infos, arch: str = ABLATION_ARCH, split: str = "validation"):
    """Runs of one architecture from scratch that share a recipe except for the ablated settings
    (augmentation level, input colour, random erasing): a row per run with those settings and its scores."""
    import pandas as pd

    from .leaderboard import training_budget

    runs = [i for i in _trained_models(infos) if i.card.get("architecture") == arch and _from_scratch(i)]
    if len(runs) < 2:
        return pd.DataFrame()
    shared = [str(sorted((k, v) for k, v in recipe(i).items() if k not in ABLATED)) for i in runs]
    common = max(set(shared), key=shared.count)
    rows = []
    for info, rest in zip(runs, shared):
        if rest != common:
            continue
        r = recipe(info)
        acc, f1, n = _accuracy(info, split)
        rows.append({"model": info.id, "augmentation": r.get("augment"), "input": r.get("color"),
                     "random erasing": r.get("erase", 0.0), "epochs": training_budget(info.card["training"])[0],
                     "accuracy": acc, "macro-F1": f1, "images": n})
    frame = pd.DataFrame(rows)
    return frame if len(frame) >= 2 else pd.DataFrame()
