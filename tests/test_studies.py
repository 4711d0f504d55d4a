"""The equal-budget and ablation tables group models by the training recipe recorded in their cards."""
from __future__ import annotations

from fer_core import registry, studies
from tests.test_predict import make_fixture_model

RECIPE = {"labels": "all", "epochs": 4, "batch_size": 128, "learning_rate": 0.002, "weight_decay": 1e-4,
          "schedule": "onecycle", "label_smoothing": 0.0, "augment": "standard", "color": "grayscale", "erase": 0.0,
          "init_from": "", "data": "fer", "seed": 42}


def _register(root, model_id, arch, accuracy, **changes):
    info = make_fixture_model(root, model_id, default=False)
    card = registry.read_card(info.path)
    card["architecture"] = arch
    card["dataset"] = {"source": "/data/fer2013", "name": "fer2013"}
    card["training"] = {"config": {**RECIPE, "arch": arch, "out": str(info.path), **changes},
                        "epochs_run": RECIPE["epochs"] if "epochs" not in changes else changes["epochs"],
                        "wall_time_s": 600.0, "finished_at": f"t-{model_id}"}
    registry.write_card(info.path, card)
    info = registry.get_model(model_id, root)
    registry.save_metrics(info, "validation", {"accuracy": accuracy, "macro_f1": accuracy - 0.1, "n": 100,
                                               "dataset": {"source": "/data/fer2013", "name": "fer2013"}})
    return registry.get_model(model_id, root)


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
    infos = [_register(tmp_path, "std", "baseline_cnn", 0.45), _register(tmp_path, "none", "baseline_cnn", 0.40, augment="none"),
             _register(tmp_path, "rgb", "baseline_cnn", 0.44, color="rgb"),
             _register(tmp_path, "lr", "baseline_cnn", 0.30, learning_rate=0.1),  # another recipe: left out
             _register(tmp_path, "other", "complex_cnn", 0.5, augment="none")]
    frame = studies.ablation_frame(infos)
    assert sorted(frame["model"]) == ["none", "rgb", "std"]
    row = frame.set_index("model").loc["rgb"]
    assert row["input"] == "rgb" and row["augmentation"] == "standard" and row["accuracy"] == 0.44
    assert studies.ablation_frame(infos[:1]).empty
