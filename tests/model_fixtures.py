"""Registered fixture models shared by the tests (tiny untrained nets, closed-form brightness models, fake exports).

    from tests.model_fixtures import make_fixture_model, make_model
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fer_core.models import registry
from fer_core.base.labels import EMOTIONS

# ----------------------------------------------------------------------------- tiny untrained nets


def make_fixture_model(models_dir: Path, model_id: str = "tiny7", labels=EMOTIONS, channels: int = 1,
                       scale: str = "unit", default: bool = True, seed: int = 0) -> registry.ModelInfo:
    """A tiny untrained conv net saved as a registered model (model.keras + card.json)."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((48, 48, channels))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv_a")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv_b")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(len(labels), activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name=model_id)
    folder = Path(models_dir) / model_id
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / registry.MODEL_FILE)
    registry.write_card(folder, {
        "id": model_id, "name": f"Tiny {model_id}", "architecture": "fixture", "description": "test fixture",
        "labels": list(labels), "preprocessing": {"input_size": 48, "channels": channels, "scale": scale},
        "params": int(model.count_params()), "default": default})
    return registry.get_model(model_id, models_dir)


def crops(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.random((int(rng.integers(30, 90)),) * 2 + (3,)) * 255).astype(np.uint8) for _ in range(n)]


def make_parent(models_dir, model_id: str = "tiny") -> registry.ModelInfo:
    """A small random conv net (BatchNorm, a conv big enough to be quantized, a confident softmax head)."""
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="conv_a")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu", name="conv_b")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(len(EMOTIONS), activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs)
    dense = model.get_layer("probabilities")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel * 40, bias])  # well-separated scores: top labels are not coin flips
    folder = models_dir / model_id
    folder.mkdir(parents=True)
    model.save(folder / registry.MODEL_FILE)
    registry.write_card(folder, {"id": model_id, "name": "Tiny", "architecture": "fixture", "labels": list(EMOTIONS),
                                 "preprocessing": {"input_size": 48, "channels": 1, "scale": "unit"},
                                 "params": int(model.count_params()), "default": True})
    return registry.get_model(model_id, models_dir)


VIDEO_MODEL_ID = "tiny_video"


def make_tiny_model(models_dir: Path, model_id: str = VIDEO_MODEL_ID) -> Path:
    """A tiny 7-class Keras model with a card, registered under `models_dir`."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Conv2D(8, 3, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(7, activation="softmax")])
    folder = models_dir / model_id
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / registry.MODEL_FILE)
    registry.write_card(folder, {"id": model_id, "name": "Tiny video test net", "architecture": "tiny",
                                 "description": "untrained fixture", "labels": list(EMOTIONS),
                                 "preprocessing": {"input_size": 48, "channels": 1, "scale": "unit"},
                                 "params": model.count_params(), "default": True})
    return folder


# ----------------------------------------------------------------------------- brightness models (closed-form answers)

# Gray levels of the generated faces: brightness decides the fixture models' answers.
TEST_FACES = {"happy": [200, 220, 240, 60], "sad": [30, 50, 180], "angry": [120, 130]}
VALIDATION_FACES = {"happy": [210, 90], "sad": [40, 230], "angry": [100]}
STEEPNESS = 10.0


def write_gray_faces(root, splits: dict):
    """<split>/<emotion>/*.png folders of constant-gray faces: `splits` maps split → emotion → gray levels."""
    for split, faces in splits.items():
        for emotion, levels in faces.items():
            folder = root / split / emotion
            folder.mkdir(parents=True, exist_ok=True)
            for i, v in enumerate(levels):
                Image.fromarray(np.full((48, 48), v, np.uint8)).save(folder / f"{emotion}_{i}_{v}.png")
    return root


def make_dataset(root):
    """train/validation/test/<emotion>/*.png folders of constant-gray faces."""
    train_faces = {"happy": [250], "sad": [5], "angry": [128]}
    return write_gray_faces(root, {"test": TEST_FACES, "validation": VALIDATION_FACES, "train": train_faces})


def p_happy(level: float, threshold: float = 0.5) -> float:
    """The closed-form answer of the brightness model: sigmoid of 2k(mean − threshold)."""
    return 1 / (1 + np.exp(-2 * STEEPNESS * (level / 255 - threshold)))


def make_model(models_dir, model_id: str, threshold: float = 0.5, default: bool = False):
    """A (happy, sad) model that says happy for faces brighter than `threshold`, with a card."""
    import keras

    inputs = keras.Input((48, 48, 1))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    k = STEEPNESS
    model.layers[-1].set_weights([np.array([[k, -k]], np.float32),
                                  np.array([-k * threshold, k * threshold], np.float32)])
    folder = models_dir / model_id
    folder.mkdir(parents=True)
    model.save(folder / registry.MODEL_FILE)
    epochs = 4
    card = {"id": model_id, "name": f"Brightness {threshold}", "architecture": "brightness_fixture",
            "description": "fixture", "labels": ["happy", "sad"],
            "preprocessing": {"input_size": 48, "channels": 1, "scale": "unit"}, "params": model.count_params(),
            "file_size_bytes": (folder / registry.MODEL_FILE).stat().st_size, "default": default,
            "training": {"history": {"loss": list(np.linspace(1.0, 0.5, epochs)),
                                     "accuracy": list(np.linspace(0.5, 0.8, epochs)),
                                     "val_loss": list(np.linspace(1.1, 0.7, epochs)),
                                     "val_accuracy": list(np.linspace(0.45, 0.7, epochs))}}}
    registry.write_card(folder, card)
    return registry.get_model(model_id, models_dir)


# ----------------------------------------------------------------------------- cards of training runs and exports

RECIPE = {"labels": "all", "epochs": 4, "batch_size": 128, "learning_rate": 0.002, "weight_decay": 1e-4,
          "schedule": "onecycle", "label_smoothing": 0.0, "augment": "standard", "color": "grayscale", "erase": 0.0,
          "init_from": "", "data": "fer", "seed": 42}


def register_trained(root, model_id, arch, accuracy, **changes):
    """A fixture model whose card records a training run of `arch` with RECIPE (plus `changes`) and a
    validation `accuracy`: what the studies and the comparison page group and rank."""
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


def register_export(root, parent, accuracy, split="validation"):
    """A (fake-file) int8 LiteRT export of `parent` with a saved result on `split`, as `export` writes its card."""
    card = {"id": f"{parent.id}-int8", "architecture": parent.card["architecture"], "format": "litert",
            "labels": list(parent.labels), "preprocessing": parent.card["preprocessing"],
            "file_size_bytes": 15_000_000, "export": {"parent": parent.id, "quantization": "int8"},
            "training": {"epochs_run": 0, "wall_time_s": 0.0, "init_from": parent.card["training"]}}
    folder = root / card["id"]
    folder.mkdir()
    (folder / registry.MODEL_FILES["litert"]).write_bytes(b"tflite")
    registry.write_card(folder, card)
    registry.save_metrics(registry.get_model(card["id"], root), split, {
        "accuracy": accuracy, "macro_f1": 0.2, "n": 100, "dataset": {"source": "/data/fer2013", "name": "fer2013"}})
    return registry.get_model(card["id"], root)
