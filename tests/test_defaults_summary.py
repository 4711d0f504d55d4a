"""The defaults table (Home, Responsible Use): each label set's default, whose labels it learned, its saved scores."""
from pathlib import Path

from fer_core.base.labels import EMOTIONS, FOUR_CLASS
from fer_core.evaluation.defaults import defaults_rows, learned_from
from fer_core.models.registry import ModelInfo

DATASET = {"name": "fer2013", "id": "abc"}


def _info(model_id, labels, source=None, default=False, accuracy=None, crowd=None):
    card = {"id": model_id, "labels": list(labels), "default": default, "dataset": {"name": "fer2013"}}
    if source:
        card["dataset"]["label_source"] = {"label_source": source}
    if accuracy is not None:
        card["evaluations"] = {"abc/validation": {"split": "validation", "accuracy": accuracy, "dataset": DATASET,
                                                  "split_description": "validation",
                                                  **({"ferplus": {"accuracy": crowd}} if crowd else {})}}
    return ModelInfo(model_id, Path("/nowhere") / model_id, card)


def test_each_label_set_shows_its_default_and_whose_labels_it_learned():
    infos = [_info("single7", EMOTIONS, accuracy=0.68, crowd=0.70),
             _info("crowd7", EMOTIONS, "ferplus-soft", default=True, accuracy=0.58, crowd=0.85),
             _info("crowd4", FOUR_CLASS, "ferplus-majority", default=True)]
    rows = {r["label set"]: r for r in defaults_rows(infos)}
    assert [r["default model"] for r in rows.values()] == ["crowd7", "crowd4"]
    seven = rows[infos[0].label_set]
    assert seven["FER+ crowd accuracy"] == 0.85 and seven["FER2013-label accuracy"] == 0.58
    assert "ten annotators" in seven["learned from"]
    four = rows[infos[2].label_set]
    assert four["FER+ crowd accuracy"] is None and "majority" in four["learned from"]
    assert four["real-photo accuracy"] is None  # never measured with `evaluate --photos`
    assert "one annotator" in learned_from(infos[0])  # no label source recorded: FER2013's own labels


def test_most_accurate_is_measured_against_the_labels_the_default_learned_from():
    from fer_core.models.roles import featured_models, model_roles, most_accurate

    single = _info("single7", EMOTIONS, accuracy=0.70, crowd=0.70)
    crowd_ensemble = _info("crowd_ensemble7", EMOTIONS, "ferplus-soft", accuracy=0.60, crowd=0.87)
    crowd_default = _info("crowd7", EMOTIONS, "ferplus-soft", default=True, accuracy=0.58, crowd=0.85)
    infos = [single, crowd_ensemble, crowd_default]
    assert most_accurate(infos, EMOTIONS).id == "crowd_ensemble7"  # best against the crowd, not one annotator
    assert model_roles(infos) == {"single7": "", "crowd_ensemble7": "most accurate, slower", "crowd7": "default"}
    assert [m.id for m in featured_models(infos)] == ["crowd7", "crowd_ensemble7"]
    single_default = _info("single7", EMOTIONS, default=True, accuracy=0.70, crowd=0.70)
    assert most_accurate([single_default, crowd_ensemble], EMOTIONS).id == "single7"  # its default: one annotator
