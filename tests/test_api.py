"""The top-level Python API: `fer_core.analyze(photo)` and `fer_core.load(model_id)`, on the shipped models."""
from __future__ import annotations

import doctest
import io
import json

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

import fer_core
from fer_core import api
from fer_core.models import registry
from fer_core.cli import main as cli_main
from fer_core.inference.images import ImageError

pytestmark = pytest.mark.skipif(registry.default_model() is None, reason="no shipped model under models/")


@pytest.fixture(scope="module")
def astronaut_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("photos") / "astronaut.png"
    Image.fromarray(skdata.astronaut()).save(path)
    return path


def test_docstring_examples_run():
    failures, tried = doctest.testmod(api, optionflags=doctest.ELLIPSIS)
    assert tried >= 8 and failures == 0


def test_analyze_path_bytes_file_and_array_agree(astronaut_png):
    results = [fer_core.analyze(astronaut_png), fer_core.analyze(astronaut_png.read_bytes()),
               fer_core.analyze(io.BytesIO(astronaut_png.read_bytes())), fer_core.analyze(skdata.astronaut())]
    first = results[0]
    assert len(first.faces) == 1 and first.faces[0].box == (175, 75, 100, 99)  # BlazeFace's box
    assert first.file == str(astronaut_png) and results[3].file is None
    for other in results[1:]:
        assert [f.label for f in other.faces] == [f.label for f in first.faces]
        assert np.allclose(other.analysis.probabilities, first.analysis.probabilities, atol=1e-5)


def test_to_json_is_the_predict_json_document(astronaut_png, capsys):
    result = fer_core.analyze(astronaut_png, model="fer_resvgg_7class")
    assert cli_main(["predict", "--json", "--model", "fer_resvgg_7class", str(astronaut_png)]) == 0
    from_cli = json.loads(capsys.readouterr().out)
    from_api = json.loads(result.to_json())
    assert from_api.keys() == from_cli.keys() and from_api["images"][0].keys() == from_cli["images"][0].keys()
    assert from_api["images"][0]["faces"][0]["box"] == from_cli["images"][0]["faces"][0]["box"]
    assert from_api["images"][0]["faces"][0]["probabilities"] == pytest.approx(
        from_cli["images"][0]["faces"][0]["probabilities"], abs=1e-5)


def test_annotated_draws_on_a_copy_and_load_is_cached(astronaut_png):
    photo = skdata.astronaut()
    result = fer_core.analyze(photo)
    drawn = result.annotated()
    assert drawn.shape == photo.shape and (drawn != photo).any() and (result.image == skdata.astronaut()).all()
    assert fer_core.load("fer_resvgg_4class") is fer_core.load("fer_resvgg_4class")
    assert fer_core.load().id == registry.default_model().id
    clf = fer_core.load("fer_resvgg_4class")
    assert fer_core.analyze(photo, model=clf).analysis.model_id == "fer_resvgg_4class"


def test_bad_input_is_a_clear_error():
    with pytest.raises(ImageError, match="not a recognised image"):
        fer_core.analyze(b"this is not a photo")
    with pytest.raises(registry.RegistryError, match="no model 'nope'"):
        fer_core.load("nope")
    assert len(fer_core.analyze(skdata.coffee()).faces) == 0
