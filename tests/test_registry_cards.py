"""Typed cards and where models are found: every shipped card follows the card schema, a broken card is refused
naming its file and field, and models come from `$FER_MODELS_DIR` (or the checkout's `models/`), then the
defaults packaged in the wheel."""
from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path

import pytest

from fer_core import cli
from fer_core.models import card_store, lookup, registry
from fer_core.models.card import CARD_SCHEMA_VERSION, CardError, ModelCard

SHIPPED = Path(__file__).resolve().parents[1] / "models"
SHIPPED_CARDS = sorted(SHIPPED.glob("*/card.json"))
MINIMAL = {"labels": ["happy", "sad"], "preprocessing": {"input_size": 48, "channels": 1, "scale": "unit"}}


@pytest.mark.parametrize("path", SHIPPED_CARDS, ids=[p.parent.name for p in SHIPPED_CARDS])
def test_every_shipped_card_follows_the_schema(path):
    card = ModelCard.from_dict(json.loads(path.read_text(encoding="utf-8")), path)
    info = registry.get_model(path.parent.name)
    assert info.model_card == card and info.model_file.exists()
    assert card.schema_version <= CARD_SCHEMA_VERSION and card.format in ("keras", "litert", "onnx")
    assert card.is_export == bool(card.export_parent), "an export names its parent; a trained model does not"
    for member in card.ensemble_members:
        assert registry.get_model(member).labels, f"{path.parent.name}: member {member} is not shipped"


def test_each_label_set_has_exactly_one_shipped_default():
    defaults: dict[tuple, list[str]] = {}
    for path in SHIPPED_CARDS:
        card = ModelCard.from_dict(json.loads(path.read_text(encoding="utf-8")), path)
        defaults.setdefault(card.labels, [])
        if card.default:
            defaults[card.labels].append(path.parent.name)
    assert [ids for ids in defaults.values() if len(ids) > 1] == []


@pytest.mark.parametrize("change, field, words", [
    ({"labels": ["happy"]}, "labels", "at least two"),
    ({"labels": None}, "labels", "list"),
    ({"format": "pytorch"}, "format", "keras, litert, onnx"),
    ({"preprocessing": {"input_size": 48, "channels": 2}}, "preprocessing", "channels"),
    ({"inference": {"tta": "twelve-crop"}}, "inference.tta", "unknown test-time augmentation"),
    ({"default": "yes"}, "default", "true or false"),
    ({"params": True}, "params", "an integer"),
    ({"params": -3}, "params", "negative"),
    ({"export": {"parent": 7}}, "export.parent", "a string"),
    ({"export": {"parent": "p", "outputs": "scores"}}, "export.outputs", "logits"),
    ({"schema_version": CARD_SCHEMA_VERSION + 1}, "schema_version", "upgrade fer_core"),
])
def test_a_broken_card_names_its_file_and_field(change, field, words):
    with pytest.raises(CardError) as err:
        ModelCard.from_dict({**MINIMAL, **change}, "models/x/card.json")
    assert str(err.value).startswith(f"models/x/card.json: field {field!r}") and words in str(err.value)


def test_the_card_view_is_frozen_and_reads_what_the_code_reads():
    card = ModelCard.from_dict({**MINIMAL, "format": "litert", "inference": {"tta": "10-crop"},
                                "export": {"parent": "p", "classes_of_parent": [3, 4]}, "teacher": "t"})
    assert (card.tta, card.export_parent, card.classes_of_parent, card.teacher, card.is_export) == \
        ("tencrop", "p", [3, 4], "t", True)
    assert card.export_outputs == "probabilities" and card.default is False and card.label_set
    with pytest.raises(dataclasses.FrozenInstanceError):
        card.default = True
    with pytest.raises(TypeError):
        card.export["parent"] = "other"


def test_model_info_rereads_its_view_when_the_card_changes(tmp_path):
    folder = _model(tmp_path / "models", "m")
    info = registry.get_model(str(folder))
    assert info.model_card.tta == "none"
    info.card = card_store.update_card(folder, lambda c: c.setdefault("inference", {}).update(tta="flip"))
    assert info.model_card.tta == "flip"


def test_a_broken_card_is_skipped_in_listings_and_refused_by_path(tmp_path, caplog):
    models = tmp_path / "models"
    _model(models, "good")
    bad = _model(models, "bad")
    (bad / "card.json").write_text(json.dumps({**MINIMAL, "labels": "happy"}))
    with caplog.at_level(logging.WARNING):
        assert [m.id for m in registry.list_models(models)] == ["good"]
    assert "bad" in caplog.text and "'labels'" in caplog.text
    with pytest.raises(CardError, match=r"bad/card.json: field 'labels'"):
        registry.get_model(str(bad))


# ----------------------------------------------------------------------------- where models are found

@pytest.fixture
def packaged(tmp_path, monkeypatch):
    """A fake installed package: packaged defaults under tmp_path/pkg, no checkout, an empty models folder."""
    root = tmp_path / "pkg" / "default_models"
    _model(root, "shipped", default=True)
    monkeypatch.setattr(lookup, "PACKAGED_MODELS_DIR", root)
    monkeypatch.setattr(lookup, "checkout_models_dir", lambda: None)
    monkeypatch.delenv("FER_MODELS_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return root


def test_packaged_defaults_are_found_without_a_models_folder(packaged, tmp_path):
    assert lookup.default_models_dir() == tmp_path / "data" / "fer_core" / "models"
    info = registry.resolve_model(None)
    assert info.id == "shipped" and info.path == packaged / "shipped"
    assert registry.model_source(info) == "packaged"


def test_the_models_folder_comes_before_the_packaged_defaults(packaged, tmp_path, monkeypatch):
    mine = tmp_path / "mine"
    _model(mine, "shipped", name="my retrained copy")
    _model(mine, "other", default=True)
    monkeypatch.setenv("FER_MODELS_DIR", str(mine))
    infos = registry.list_models()
    assert [m.id for m in infos] == ["other", "shipped"]  # both defaults of the label set: mine first
    assert registry.get_model("shipped").name == "my retrained copy"
    assert {registry.model_source(m) for m in infos} == {"FER_MODELS_DIR"}
    assert registry.default_model().id == "other"
    assert [m.id for m in registry.list_models(mine / "..")] == [] and registry.list_models(mine)[0].id == "other"


def test_set_default_leaves_packaged_cards_alone(packaged, tmp_path, monkeypatch):
    monkeypatch.setenv("FER_MODELS_DIR", str(tmp_path / "mine"))
    _model(tmp_path / "mine", "mine")
    before = (packaged / "shipped" / "card.json").read_bytes()
    assert registry.set_default("mine").is_default()
    assert (packaged / "shipped" / "card.json").read_bytes() == before
    assert registry.default_model().id == "mine"


def test_cli_models_says_where_each_model_came_from(packaged, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FER_MODELS_DIR", str(tmp_path / "mine"))
    _model(tmp_path / "mine", "mine")
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
    assert "val FER+: against the FER+ crowd majority" in out
    assert "FER_MODELS_DIR" in lines["mine"] and "packaged" in lines["shipped"]
    assert cli.main(["models", "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["shipped"]["source"] == "packaged" and rows["shipped"]["path"] == str(packaged / "shipped")


def _model(root: Path, model_id: str, default: bool = False, name: str | None = None) -> Path:
    """A registered LiteRT model folder with a copy of the face detector's O-Net file as its weights (any .tflite
    will do: only the card and the file's presence matter here)."""
    folder = root / model_id
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(__file__).resolve().parents[1] / "fer_core" / "assets" / "onet.tflite", folder / "model.tflite")
    card_store.write_card(folder, {**MINIMAL, "id": model_id, "name": name or model_id, "format": "litert",
                                   "export": {"parent": "p"}, "default": default})
    return folder
