"""One loader (`fer_core.inference.loader.load_classifier`): a model is loaded once per process, again when its
files change; the Python API, the pages and the server share it, so a model retrained while `serve` runs is
answered with its new weights without a restart."""
from __future__ import annotations

import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

import fer_core
from fer_core.base.labels import FOUR_CLASS
from fer_core.inference import loader
from fer_core.models import card_store, registry
from fer_core.serving.serve import ServeConfig, create_app
from tests.fixtures import encode
from tests.model_fixtures import crops, make_fixture_model


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    root = tmp_path / "models"
    make_fixture_model(root, "tiny7")
    make_fixture_model(root, "tiny4", FOUR_CLASS, default=False, seed=1)
    monkeypatch.setenv("FER_MODELS_DIR", str(root))
    return root


def test_a_model_is_loaded_once_and_again_when_its_files_change(models_dir):
    first = loader.load_classifier("tiny7")
    assert loader.load_classifier("tiny7") is first is fer_core.load("tiny7")
    assert loader.load_classifier(registry.get_model("tiny7")) is first and loader.load_classifier(None) is first
    faces = crops(3)
    before = first.predict(faces)
    make_fixture_model(models_dir, "tiny7", seed=5)  # retrained: new weights and card in place
    second = loader.load_classifier("tiny7")
    assert second is not first and not np.allclose(second.predict(faces), before, atol=1e-4)
    card_store.update_card(models_dir / "tiny7", lambda c: c.setdefault("inference", {}).update(tta="flip"))
    third = loader.load_classifier("tiny7")  # only the card changed: its default TTA is read again
    assert third is not second and third.default_tta == "flip"


def test_the_cache_is_bounded_and_forgets_on_request(models_dir):
    cache = loader.ClassifierCache(max_loaded=1)
    seven = cache.get(registry.get_model("tiny7"))
    assert cache.get(registry.get_model("tiny7")) is seven
    cache.get(registry.get_model("tiny4"))
    assert cache.loaded() == [str((models_dir / "tiny4").resolve())]
    assert cache.get(registry.get_model("tiny7")) is not seven  # dropped, so loaded again
    cache.forget(registry.get_model("tiny7"))
    assert cache.loaded() == []


def test_an_ensemble_is_reloaded_when_a_member_changes(models_dir):
    from fer_core.models.ensemble import create_ensemble

    info = create_ensemble(["tiny7", "tiny4"], models_dir / "pair", labels=FOUR_CLASS)
    stamp = registry.files_stamp(info)
    assert {p for p, *_ in stamp} >= {str(models_dir / m / "model.keras") for m in ("tiny7", "tiny4")}
    make_fixture_model(models_dir, "tiny4", FOUR_CLASS, default=False, seed=9)
    assert registry.files_stamp(info) != stamp


def test_retraining_a_model_while_serve_runs_changes_its_answers(models_dir):
    face = encode(np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (64, 1)), "png")

    def answer(client) -> dict:
        got = client.post("/v1/predict?detector=none&tta=none", content=face, headers={"content-type": "image/png"})
        assert got.status_code == 200, got.text
        return got.json()["images"][0]["faces"][0]["probabilities"]

    recheck = 0.2  # the model folders are looked at this often (1 s by default)
    with TestClient(create_app(ServeConfig(models_dir=str(models_dir), api_key="", model_recheck_s=recheck))) as client:
        before = answer(client)
        assert answer(client) == before  # the same weights: the same answer
        make_fixture_model(models_dir, "tiny7", seed=7)  # `train --out models/tiny7` finishing while it serves
        time.sleep(recheck)
        after = answer(client)
        assert after.keys() == before.keys() and after != before
        expected = fer_core.load("tiny7").predict([np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (64, 1))],
                                                  tta="none")[0]
        assert list(after.values()) == pytest.approx(expected.tolist(), abs=1e-5)
        assert client.get("/healthz").json()["models_loaded"] == ["tiny7"]
