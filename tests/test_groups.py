"""fer_core.models.groups: which models Model Comparison draws together, from the cards alone."""
from __future__ import annotations

from pathlib import Path

from fer_core.base.labels import EMOTIONS, FOUR_CLASS
from fer_core.models import groups
from fer_core.models.registry import ModelInfo

DATA = {"id": "d1", "name": "fer2013"}


def model(model_id: str, accuracy: float | None = None, labels=EMOTIONS, **card) -> ModelInfo:
    evaluations = ({"d1/validation": {"split": "validation", "accuracy": accuracy, "dataset": DATA}}
                   if accuracy is not None else {})
    return ModelInfo(model_id, Path("/nowhere") / model_id,
                     {"id": model_id, "labels": list(labels), "evaluations": evaluations, **card})


def config(**changes) -> dict:
    return {"training": {"config": {"arch": "baseline_cnn", "epochs": 4, "augment": "standard", "color": "grayscale",
                                    "init_from": "", **changes}}}


def test_models_are_grouped_from_their_cards():
    infos = [
        model("net", 0.66, architecture="fer_resvgg", default=True),
        model("seed2", 0.65, architecture="fer_resvgg"),
        model("ens", 0.70, architecture="ensemble", ensemble={"members": ["net", "seed2"], "file": "ensemble.json"}),
        model("ens-int8", 0.69, architecture="ensemble", format="litert", export={"parent": "ens"}),
        model("student", 0.67, architecture="fer_resvgg", teacher="ens"),
        model("base", 0.45, architecture="baseline_cnn", **config()),
        model("noaug", 0.52, architecture="baseline_cnn", **config(augment="none")),
        model("rgb", 0.47, architecture="baseline_cnn", **config(color="rgb")),
        model("vgg-int8", 0.49, architecture="vgg16_transfer", format="litert", export={"parent": "vgg"}),
        model("head4", 0.79, FOUR_CLASS, architecture="fer_resvgg"),
    ]
    found = groups.model_groups(infos)
    assert list(found) == list(groups.GROUPS)
    # the default, the most accurate (ens) and its best edge export; the 4-class set's only model
    assert found[groups.DEFAULTS] == ["net", "ens", "ens-int8", "head4"]
    # one network per architecture and label set: the best standard-recipe run (an ablation never stands in)
    assert found[groups.ARCHITECTURES] == ["net", "base", "vgg-int8", "head4"]
    assert found[groups.ABLATIONS] == ["base", "noaug", "rgb"]
    assert found[groups.MEMBERS] == ["net", "seed2", "ens"]
    assert found[groups.EXPORTS] == ["ens", "ens-int8", "vgg-int8"]  # the parent beside its export
    assert found[groups.STUDENTS] == ["ens", "student"]
    assert found[groups.ALL] == [i.id for i in infos]


def test_empty_groups_are_not_offered():
    infos = [model("a", 0.5, default=True), model("b", 0.6)]
    offered = groups.non_empty_groups(infos)
    assert list(offered) == [groups.DEFAULTS, groups.ARCHITECTURES, groups.ALL]
    assert offered[groups.DEFAULTS] == ["a", "b"] and offered[groups.ARCHITECTURES] == ["b"]
    assert groups.model_groups([]) == {g: [] for g in groups.GROUPS}
