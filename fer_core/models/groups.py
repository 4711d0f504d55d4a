"""Groups of registered models that are worth comparing with each other, read from their cards alone.

Model Comparison draws one group at a time: with 20-odd registered models one chart of all of them says
little. A model may belong to several groups (a default that is also an ensemble member).
"""
from __future__ import annotations

from .card import ModelInfo
from .roles import featured_models, model_roles, validation_accuracy

DEFAULTS, ARCHITECTURES, ABLATIONS, MEMBERS, EXPORTS, STUDENTS, ALL = (
    "defaults", "architectures", "ablations", "ensemble members", "exports", "distilled students", "all")
GROUPS = (DEFAULTS, ARCHITECTURES, ABLATIONS, MEMBERS, EXPORTS, STUDENTS, ALL)
GROUP_HELP = {
    DEFAULTS: "each label set's default model and its most accurate one (and that one's best edge export)",
    ARCHITECTURES: "the best registered network of each architecture (a network shipped only as its export "
                   "counts as that export)",
    ABLATIONS: "runs of one architecture and budget that vary the augmentation or input colour, beside the "
               "standard run",
    MEMBERS: "each ensemble beside the models it averages",
    EXPORTS: "each LiteRT / ONNX export beside its parent",
    STUDENTS: "each distilled student beside its teacher",
    ALL: "every registered model",
}
STANDARD_RECIPE = {"augment": "standard", "color": "grayscale"}  # what an ablation varies from


def _parent(info: ModelInfo) -> str | None:
    return info.model_card.export_parent


def _members(info: ModelInfo) -> list[str]:
    ensemble = info.card.get("ensemble")
    members = ensemble.get("members") if isinstance(ensemble, dict) else ensemble
    return [m for m in members or [] if isinstance(m, str)]


def _config(info: ModelInfo) -> dict:
    """The training config of the run that made the weights (an export keeps its parent's under `init_from`)."""
    training = info.card.get("training") or {}
    if _parent(info):
        training = training.get("init_from") or {}
    config = training.get("config")
    return config if isinstance(config, dict) else {}


def _accuracy(info: ModelInfo) -> float:
    found = validation_accuracy(info)
    return -1.0 if found is None else float(found)


def model_groups(infos: list[ModelInfo]) -> dict[str, list[str]]:
    """Group name → ids of `infos` in it (in `infos` order), for every group in `GROUPS`; groups may be empty.
    Pure: reads only the cards."""
    ids = [i.id for i in infos]
    by_id = {i.id: i for i in infos}
    chosen: dict[str, set[str]] = {g: set() for g in GROUPS}
    chosen[ALL] = set(ids)
    chosen[DEFAULTS] = {m for m, role in model_roles(infos).items() if role} | {m.id for m in featured_models(infos)}
    varied = [i for i in infos if _config(i) and not _config(i).get("init_from")
              and any(_config(i).get(k, v) != v for k, v in STANDARD_RECIPE.items())]
    best: dict[tuple, ModelInfo] = {}  # (architecture, labels) → best trained network
    for info in infos:
        parent = _parent(info)
        if parent:
            chosen[EXPORTS] |= {info.id} | ({parent} & by_id.keys())
        members = _members(info)
        if members:
            chosen[MEMBERS] |= {info.id} | (set(members) & by_id.keys())
        teacher = info.model_card.teacher
        if isinstance(teacher, str) and teacher:
            chosen[STUDENTS] |= {info.id} | ({teacher} & by_id.keys())
        if members or teacher or (parent and parent in by_id) or info in varied:
            continue  # not a network of its own, or not its architecture's standard recipe
        key = (info.card.get("architecture", ""), info.labels)
        if key not in best or _accuracy(info) > _accuracy(best[key]):
            best[key] = info
    chosen[ARCHITECTURES] = {i.id for i in best.values()}
    for info in varied:
        config = _config(info)
        same_run = [o for o in infos if _config(o).get("arch") == config.get("arch")
                    and _config(o).get("epochs") == config.get("epochs") and not _config(o).get("init_from")]
        chosen[ABLATIONS] |= {info.id} | {o.id for o in same_run
                                          if all(_config(o).get(k, v) == v for k, v in STANDARD_RECIPE.items())}
    return {g: [m for m in ids if m in chosen[g]] for g in GROUPS}


def non_empty_groups(infos: list[ModelInfo]) -> dict[str, list[str]]:
    """`model_groups` without the empty groups (what a page offers), `defaults` first."""
    return {g: members for g, members in model_groups(infos).items() if members}
