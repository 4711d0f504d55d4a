"""The wheel people install: built from the checkout it ships each label set's default model (setup.py's build
step reads the cards' "default" flags), and with nothing but its core dependencies, from an unrelated folder and
with no environment set, it finds those defaults and classifies the faces of a group photo without TensorFlow."""
from __future__ import annotations

import json
import os
import runpy
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from fer_core.video.sample import group_photo

ROOT = Path(__file__).resolve().parents[1]
SETUP = runpy.run_path(str(ROOT / "setup.py"), run_name="setup_py")  # its helpers; setup() runs only as __main__
# what the core install must classify faces without (pyproject's extras install them)
HEAVY = ("tensorflow", "keras", "mtcnn", "sklearn", "skimage", "pandas", "scipy", "cleanlab", "umap", "onnxruntime")


def shipped_defaults() -> dict[str, dict]:
    cards = {p.parent.name: json.loads(p.read_text(encoding="utf-8")) for p in (ROOT / "models").glob("*/card.json")}
    return {model_id: card for model_id, card in cards.items() if card.get("default") is True}


def test_the_build_step_ships_each_label_sets_default_and_nothing_else():
    files = SETUP["default_model_files"](ROOT / "models")
    defaults = shipped_defaults()
    assert defaults and {f.parts[0] for f in files} >= set(defaults)
    assert {f.parts[0] for f in files} - set(defaults) <= {
        m for card in defaults.values() for m in ((card.get("ensemble") or {}).get("members") or [])}
    assert all((ROOT / "models" / f).is_file() for f in files)
    assert {f.name for f in files} <= {"card.json", "model.tflite", "model.onnx", "model.keras", "ensemble.json"}


def test_the_build_refuses_two_defaults_for_one_label_set(tmp_path):
    one = next(iter(shipped_defaults()))
    for copy in (one, one + "-copy"):
        shutil.copytree(ROOT / "models" / one, tmp_path / copy, ignore=shutil.ignore_patterns("eval"))
    with pytest.raises(SystemExit, match="both marked default"):
        SETUP["default_model_files"](tmp_path)


@pytest.mark.slow
def test_the_wheel_alone_classifies_a_group_photo_without_tensorflow(tmp_path):
    """pip builds the wheel from the checkout; it is unpacked (what pip's install does with a pure-Python wheel)
    into a folder that is the only place `fer_core` can come from, and run from another folder with TensorFlow,
    Keras, MTCNN, scikit-learn, pandas … unimportable, no FER_* variables and an empty home."""
    import importlib.util

    # offline with the installed setuptools when it can build wheels; a fresh venv (no `wheel`) fetches setuptools
    offline = ["--no-build-isolation"] if importlib.util.find_spec("wheel") else []
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w",
                            str(tmp_path / "dist"), *offline], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = next((tmp_path / "dist").glob("fer_core-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for model_id, card in shipped_defaults().items():
        model_file = {"litert": "model.tflite", "onnx": "model.onnx"}.get(card.get("format"), "model.keras")
        assert {f"fer_core/default_models/{model_id}/card.json",
                f"fer_core/default_models/{model_id}/{model_file}"} <= names, model_id
    assert "fer_core/docs/responsible_use.md" in names  # what `card --markdown` quotes
    assert not any(n.startswith(("models/", "tests/", "pages/")) for n in names)
    assert wheel.stat().st_size < 20e6, "the wheel ships the defaults only, not models/"

    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere.mkdir()
    Image.fromarray(group_photo(6)).save(elsewhere / "group.png")
    code = f"""
import importlib.abc, json, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {HEAVY!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)", name=name)
sys.meta_path.insert(0, Block())
import fer_core
from fer_core.models import registry
result = fer_core.analyze("group.png")
from fer_core.evaluation.model_card import STATEMENT_FILE, statement_sections
assert STATEMENT_FILE.is_relative_to({str(site)!r}) and len(statement_sections()) > 3
info = registry.get_model(result.analysis.model_id)
print(json.dumps({{"file": fer_core.__file__, "faces": [f.label for f in result.faces], "model": info.id,
                   "source": registry.model_source(info), "sums": [sum(f.probabilities.values()) for f in result.faces],
                   "heavy": sorted(m for m in {HEAVY!r} if m in sys.modules)}}))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FER_", "PYTHON", "XDG_"))}
    env.update(PYTHONPATH=str(site), HOME=str(tmp_path / "home"), PYTHONNOUSERSITE="1")
    done = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["file"].startswith(str(site)), "fer_core came from the wheel, not the checkout"
    seven = next(m for m, card in shipped_defaults().items() if len(card["labels"]) == 7)
    assert found["model"] == seven and found["source"] == "packaged"
    assert len(found["faces"]) == 6 and found["heavy"] == []
    assert all(abs(s - 1) < 1e-4 for s in found["sums"])
