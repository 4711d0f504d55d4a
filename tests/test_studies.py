"""The equal-budget and ablation tables group models by the training recipe recorded in their cards."""
from __future__ import annotations

from pathlib import Path

import pytest

from fer_core.models import registry
from fer_core.evaluation import studies
from tests.model_fixtures import register_export
from tests.model_fixtures import register_trained as _register

def test_equal_budget_lists_only_seed_architectures_with_the_shared_recipe(tmp_path):
    infos = [_register(tmp_path, "base", "baseline_cnn", 0.45), _register(tmp_path, "comp", "complex_cnn", 0.50),
             _register(tmp_path, "long", "larger_cnn", 0.60, epochs=30),  # a bigger budget: not comparable
             _register(tmp_path, "ours", "fer_resvgg", 0.70),  # not a seed architecture
             _register(tmp_path, "noaug", "baseline_cnn", 0.40, augment="none"),  # an ablation run
             # trained after --class-weight existed: its card names the default the older cards lack
             _register(tmp_path, "effnet", "efficientnet_transfer", 0.30, class_weight="none")]
    frame = studies.equal_budget_frame(infos)
    assert list(frame["model"]) == ["comp", "base", "effnet"]
    assert list(frame["epochs"]) == [4, 4, 4] and list(frame["accuracy"]) == [0.50, 0.45, 0.30]
    assert set(frame["starts from"]) == {"random"}
    assert studies.missing_seed_architectures(frame) == ["larger_cnn", "vgg16_transfer", "resnet50v2_transfer"]
    assert studies.missing_seed_architectures(studies.equal_budget_frame([])) == list(studies.SEED_ARCHITECTURES)


def test_ablation_rows_differ_only_in_the_ablated_settings(tmp_path):
    infos = [_register(tmp_path, "std", "baseline_cnn", 0.45),
             _register(tmp_path, "none", "baseline_cnn", 0.40, augment="none"),
             _register(tmp_path, "rgb", "baseline_cnn", 0.44, color="rgb"),
             _register(tmp_path, "lr", "baseline_cnn", 0.30, learning_rate=0.1),  # another recipe: left out
             _register(tmp_path, "other", "complex_cnn", 0.5, augment="none")]
    frame = studies.ablation_frame(infos)
    assert sorted(frame["model"]) == ["none", "rgb", "std"]
    row = frame.set_index("model").loc["rgb"]
    assert row["input"] == "rgb" and row["augmentation"] == "standard" and row["accuracy"] == 0.44
    assert studies.ablation_frame(infos[:1]).empty


def test_an_export_stands_in_for_a_parent_that_is_not_registered(tmp_path):
    """A seed too large to ship as Keras ships as its int8 export: the table lists the export, with its
    parent's recipe and budget, and only while the parent itself is absent."""
    infos = [_register(tmp_path, "base", "baseline_cnn", 0.45), _register(tmp_path, "vgg", "vgg16_transfer", 0.35)]
    exported = register_export(tmp_path, infos[1], 0.34)
    both = studies.equal_budget_frame(infos + [exported])
    assert list(both["model"]) == ["base", "vgg"] and set(both["shipped as"]) == {"keras"}
    alone = studies.equal_budget_frame([infos[0], exported]).set_index("model")
    assert list(alone.index) == ["base", "vgg-int8"]
    assert alone.loc["vgg-int8", "shipped as"] == "litert int8" and alone.loc["vgg-int8", "epochs"] == 4
    assert alone.loc["vgg-int8", "accuracy"] == 0.34 and alone.loc["vgg-int8", "size MB"] == 15.0
    assert "vgg16_transfer" not in studies.missing_seed_architectures(alone.reset_index())


def test_a_run_that_answers_one_emotion_for_every_face_is_flagged(tmp_path):
    collapsed = _register(tmp_path, "vgg", "vgg16_transfer", 0.25)
    fine = _register(tmp_path, "base", "baseline_cnn", 0.45)
    for info, matrix in ((collapsed, [[0, 5], [0, 15]]), (fine, [[4, 1], [2, 13]])):
        registry.save_metrics(info, "validation", {"accuracy": 0.5, "macro_f1": 0.3, "n": 20,
                                                   "confusion_matrix": matrix,
                                                   "dataset": {"source": "/data/fer2013", "name": "fer2013"}})
    frame = studies.equal_budget_frame([registry.get_model(i, tmp_path) for i in ("vgg", "base")]).set_index("model")
    assert frame.loc["vgg", "emotions predicted"] == 1 and frame.loc["base", "emotions predicted"] == 2


def test_shipped_models_fit_the_size_limit_and_cover_every_seed_architecture(monkeypatch):
    """What the repo ships: every model file ≤ 25 MB, and each seed architecture at the one equal budget."""
    monkeypatch.delenv("FER_MODELS_DIR", raising=False)
    infos = registry.list_models()
    if not infos:
        pytest.skip("no trained models under models/ in this checkout")
    too_big = {i.id: i.model_file.stat().st_size for i in infos if i.model_file.stat().st_size > 25_000_000}
    assert not too_big
    fair = studies.equal_budget_frame([i for i in infos if len(i.labels) == 7])
    assert fair["epochs"].nunique() == 1
    # a seed architecture whose equal-budget run left models/ (to keep the repo lean) keeps its figures in docs
    unshipped = (Path(__file__).resolve().parents[1] / "docs" / "models.md").read_text().split(
        "## Models no longer shipped")[1]
    for arch in studies.missing_seed_architectures(fair):
        assert f"`{arch}`" in unshipped or f"{arch}_7class" in unshipped, f"{arch}: no equal-budget run anywhere"
