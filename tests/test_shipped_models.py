"""Every model shipped in models/ loads and answers: one row of probabilities per face over its card's labels,
summing to 1. The LiteRT and ONNX exports are loaded in a process where TensorFlow and Keras cannot be imported
(what the core install promises); the Keras models and ensembles in this one (slow: an ensemble builds its members)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fer_core.models import registry

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = registry.list_models(ROOT / "models")
FACES = 3


def _param(info):
    slow = info.format == "keras"  # TensorFlow in this process; ensembles load several members
    return pytest.param(info.id, id=info.id, marks=[pytest.mark.slow] if slow else [])


@pytest.fixture(scope="module")
def edge_answers() -> dict:
    """Every edge export's answers to the same faces, from one process that blocks TensorFlow and Keras."""
    code = f"""
import importlib.abc, json, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "mtcnn"):
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)", name=name)
sys.meta_path.insert(0, Block())
import numpy as np
from fer_core.inference.predict import Classifier
from fer_core.models import registry
faces = [np.random.default_rng(i).integers(0, 256, (60, 60, 3), dtype=np.uint8) for i in range({FACES})]
out = {{}}
for info in registry.list_models({str(ROOT / "models")!r}):
    if info.format != "keras":
        clf = Classifier.from_registry(info)
        out[info.id] = {{"labels": list(clf.labels), "probabilities": clf.predict(faces).tolist()}}
out["_loaded"] = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
print(json.dumps(out))
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    assert answers.pop("_loaded") == []
    return answers


@pytest.mark.parametrize("model_id", [_param(info) for info in SHIPPED])
def test_every_shipped_model_loads_and_answers(model_id, request):
    info = registry.get_model(model_id, ROOT / "models")
    if info.format == "keras":
        from fer_core.inference.predict import Classifier

        faces = [np.random.default_rng(i).integers(0, 256, (60, 60, 3), dtype=np.uint8) for i in range(FACES)]
        clf = Classifier.from_registry(info)
        labels, probs = list(clf.labels), clf.predict(faces)
    else:
        answer = request.getfixturevalue("edge_answers")[model_id]
        labels, probs = answer["labels"], np.asarray(answer["probabilities"])
    assert labels == list(info.labels)
    assert probs.shape == (FACES, len(info.labels))
    assert np.all(probs >= 0) and np.allclose(probs.sum(axis=1), 1, atol=1e-4)
