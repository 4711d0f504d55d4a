"""The one build step pyproject.toml cannot declare: each label set's default model ships inside the wheel.

Which models are the defaults is read from the cards at build time: every `models/<id>/card.json` with
`"default": true` (one per label set; `python -m fer_core models --set-default ID` moves the flag). Its card and
model file (an ensemble's `ensemble.json` and its members too) are copied into the built package as
`fer_core/default_models/<id>/`, where `fer_core.models.lookup` finds them after the models folder. The files
live in `models/` only, so git keeps one copy of each; an sdist carries them in its own `models/`. The
responsible-use text every model card quotes (`docs/responsible_use.md`) is copied the same way, to
`fer_core/docs/`. Everything else about the package is in pyproject.toml.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

ROOT = Path(__file__).resolve().parent
MODELS = ROOT / "models"
PACKAGED = Path("fer_core") / "default_models"  # in the built package (fer_core.models.lookup.PACKAGED_MODELS_DIR)
MODEL_FILES = {"keras": "model.keras", "litert": "model.tflite", "onnx": "model.onnx"}  # as fer_core.models.card
STATEMENT = Path("docs") / "responsible_use.md"  # fer_core.evaluation.model_card.PACKAGED_STATEMENT in the package


def default_model_files(models: Path = MODELS) -> list[Path]:
    """The files of every default model under `models` (card, model file, an ensemble's members), relative to it.
    Refuses two defaults for one label set, and a default whose files are missing."""
    defaults: dict[tuple, str] = {}
    files: list[Path] = []
    for card_path in sorted(models.glob("*/card.json")):
        card = json.loads(card_path.read_text(encoding="utf-8"))
        if card.get("default") is not True:
            continue
        labels = tuple(card.get("labels") or ())
        if labels in defaults:
            raise SystemExit(f"setup.py: {defaults[labels]} and {card_path.parent.name} are both marked default for "
                             f"{', '.join(labels)}; keep one (python -m fer_core models --set-default ID)")
        defaults[labels] = card_path.parent.name
        files += _model_files(models, card_path.parent.name)
    if not defaults:
        raise SystemExit(f"setup.py: no default model under {models}: the wheel would classify nothing")
    return list(dict.fromkeys(files))


def _model_files(models: Path, model_id: str) -> list[Path]:
    folder = models / model_id
    card = json.loads((folder / "card.json").read_text(encoding="utf-8"))
    ensemble = card.get("ensemble")
    if isinstance(ensemble, dict) and ensemble.get("file") == "ensemble.json":
        spec = json.loads((folder / "ensemble.json").read_text(encoding="utf-8"))
        members = [f for m in spec["members"] for f in _model_files(models, m["id"])]
        return [Path(model_id, "card.json"), Path(model_id, "ensemble.json"), *members]
    model_file = Path(model_id, MODEL_FILES[card.get("format", "keras")])
    if not (models / model_file).is_file():
        raise SystemExit(f"setup.py: default model {model_id} has no {model_file.name}")
    return [Path(model_id, "card.json"), model_file]


class BuildPyWithDefaultModels(build_py):
    """`build_py`, then the default models (replacing any an earlier build left in the build folder, so a default
    moved since then is not shipped too) and the responsible-use text copied into the built package."""

    def run(self):
        super().run()
        target = Path(self.build_lib) / PACKAGED
        shutil.rmtree(target, ignore_errors=True)
        for rel in default_model_files():
            self.mkpath(str((target / rel).parent))
            self.copy_file(str(MODELS / rel), str(target / rel))
        statement = Path(self.build_lib) / "fer_core" / STATEMENT
        self.mkpath(str(statement.parent))
        self.copy_file(str(ROOT / STATEMENT), str(statement))


class SdistWithDefaultModels(sdist):
    """`sdist` with the default models' files under `models/` and the responsible-use text, so a wheel built from
    it ships them too."""

    def make_distribution(self):
        self.filelist.extend(str(Path("models", rel)) for rel in default_model_files())
        self.filelist.append(str(STATEMENT))
        super().make_distribution()


if __name__ == "__main__":  # what pip's build backend and `python setup.py` run; tests import the helpers above
    setup(cmdclass={"build_py": BuildPyWithDefaultModels, "sdist": SdistWithDefaultModels})
