"""What a model folder holds, and its card read as a typed, validated, frozen `ModelCard`.

`models/<id>/card.json` stays a plain JSON dict on disk (writers edit it under its lock, `card_store`); readers
take `ModelInfo.model_card`, a `ModelCard` built from it once per card version, instead of reaching into the
dict through string keys. A card that breaks the schema is refused with the file and the field named.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from ..base.labels import label_set_name
from .eval_datasets import dataset_name, dataset_selector, migrated_card, same_dataset
from .preprocess import Preprocessing
from .tta import tta_mode

CARD_SCHEMA_VERSION = 1  # cards without `schema_version` are version 1 (the schema fer_core has always written)
MODEL_FILE = "model.keras"
CARD_FILE = "card.json"
MODEL_FILES = {"keras": MODEL_FILE, "litert": "model.tflite", "onnx": "model.onnx"}  # card `format` → file
ENSEMBLE_FILE = "ensemble.json"  # an ensemble's members by id and content hash (fer_core.models.ensemble)
PREDICTIONS_DIR = "eval"  # per-image predictions saved by `evaluate`, under each model's folder
FORMATS = tuple(MODEL_FILES)
_EMPTY: Mapping = MappingProxyType({})


class RegistryError(LookupError):
    """A model id that is not registered, or a model folder that is incomplete."""


class CardError(ValueError):
    """A card.json that does not follow the card schema (the message names the file and the field)."""


def _frozen(value) -> Mapping:
    return MappingProxyType(dict(value)) if value else _EMPTY


@dataclass(frozen=True)
class ModelCard:
    """A card's fields as the code reads them (see `from_dict` for the rules). `raw` is the card itself,
    read-only, for the sections only pages display (robustness reports, training history …)."""

    labels: tuple[str, ...]
    preprocessing: Preprocessing
    format: str = "keras"  # keras, or litert / onnx for an edge export
    schema_version: int = CARD_SCHEMA_VERSION
    id: str | None = None
    name: str | None = None
    description: str = ""
    architecture: str = ""
    default: bool = False  # the default model of its label set
    tta: str = "none"  # inference.tta: the test-time augmentation the model uses unless told otherwise
    params: int | None = None
    file_size_bytes: int | None = None
    teacher: str | None = None  # the model it was distilled from
    export: Mapping = field(default_factory=lambda: _EMPTY)  # an edge export's record: parent, quantization …
    ensemble: Mapping | None = None  # an ensemble's record: members, file …
    training: Mapping = field(default_factory=lambda: _EMPTY)
    dataset: Mapping = field(default_factory=lambda: _EMPTY)  # what it was trained on
    evaluations: Mapping = field(default_factory=lambda: _EMPTY)  # saved results by `<dataset key>/<split>`
    raw: Mapping = field(default_factory=lambda: _EMPTY, repr=False, compare=False)

    @property
    def export_parent(self) -> str | None:
        """The id of the model an edge export was converted from (None for a model that is not an export)."""
        return self.export.get("parent") or None

    @property
    def export_outputs(self) -> str:
        """What an export's output holds: `probabilities` (softmax included) or `logits`."""
        return str(self.export.get("outputs") or "probabilities")

    @property
    def classes_of_parent(self) -> list[int] | None:
        """For an export narrowed to fewer emotions than its parent: the parent's output columns it keeps."""
        return self.export.get("classes_of_parent") or None

    @property
    def is_export(self) -> bool:
        return self.format != "keras"

    @property
    def ensemble_members(self) -> list[str]:
        """Member ids of an ensemble (empty for any other model)."""
        if self.ensemble is None:
            return []
        members = self.ensemble.get("members") if isinstance(self.ensemble, Mapping) else self.ensemble
        return [m if isinstance(m, str) else str(m.get("id")) for m in members or []]

    @property
    def label_set(self) -> str:
        return label_set_name(self.labels)

    @classmethod
    def from_dict(cls, card: Mapping, source: str | Path = "card.json") -> "ModelCard":
        """Validate a card dict and view it; `source` (its file) is named in every `CardError`."""
        def fail(name: str, why: str):
            raise CardError(f"{source}: field {name!r} {why}")

        def typed(name: str, kinds, default=None, section: str = ""):
            value = (card.get(section) or {} if section else card).get(name, default)
            kinds = kinds if isinstance(kinds, tuple) else (kinds,)
            if value is not None and (not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds):
                fail(f"{section}.{name}" if section else name,
                     f"must be {_kind_name(kinds)}, not {type(value).__name__} {value!r:.60}")
            return value

        if not isinstance(card, Mapping):
            raise CardError(f"{source}: a card is a JSON object, not {type(card).__name__}")
        version = typed("schema_version", int, CARD_SCHEMA_VERSION)
        if not 1 <= version <= CARD_SCHEMA_VERSION:
            fail("schema_version", f"is {version}; this fer_core reads card schema 1–{CARD_SCHEMA_VERSION} "
                                   "(a newer fer_core wrote it: upgrade fer_core)")
        labels = card.get("labels")
        if (not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(e, str) and e for e in labels)
                or len(set(labels)) != len(labels)):
            fail("labels", f"must be a list of at least two distinct emotion names, not {labels!r:.80}")
        fmt = typed("format", str, "keras")
        if fmt not in FORMATS:
            fail("format", f"is {fmt!r}; one of {', '.join(FORMATS)}")
        try:
            preprocessing = Preprocessing.from_dict(typed("preprocessing", dict) or {})
        except (TypeError, ValueError) as err:
            fail("preprocessing", f"is invalid: {err}")
        inference = typed("inference", dict) or {}
        try:
            tta = tta_mode(inference.get("tta"))
        except ValueError as err:
            fail("inference.tta", f"is invalid: {err}")
        export = typed("export", dict) or {}
        if export:
            typed("parent", str, section="export")
            if typed("outputs", str, section="export") not in (None, "probabilities", "logits"):
                fail("export.outputs", "must be 'probabilities' or 'logits'")
            typed("classes_of_parent", list, section="export")
        for name in ("params", "file_size_bytes"):
            if (typed(name, int) or 0) < 0:
                fail(name, "must not be negative")
        for name in ("training", "dataset", "evaluations", "metrics", "robustness"):
            typed(name, dict)
        evaluations = migrated_card(card).get("evaluations") or {}
        ensemble = typed("ensemble", (dict, list))
        return cls(labels=tuple(labels), preprocessing=preprocessing, format=fmt, schema_version=version,
                   id=typed("id", str), name=typed("name", str), description=typed("description", str) or "",
                   architecture=typed("architecture", str) or "", default=bool(typed("default", bool, False)),
                   tta=tta, params=typed("params", int), file_size_bytes=typed("file_size_bytes", int),
                   teacher=typed("teacher", str), export=_frozen(export),
                   ensemble=None if ensemble is None else (_frozen(ensemble) if isinstance(ensemble, dict)
                                                           else tuple(ensemble)),
                   training=_frozen(card.get("training")), dataset=_frozen(card.get("dataset")),
                   evaluations=_frozen(evaluations), raw=MappingProxyType(dict(card)))


def _kind_name(kinds: tuple) -> str:
    names = {bool: "true or false", int: "an integer", str: "a string", dict: "an object", list: "a list"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


@dataclass
class ModelInfo:
    """A registered model: its id, folder and card (the JSON dict; `model_card` is its typed view)."""

    id: str
    path: Path
    card: dict

    @property
    def model_card(self) -> ModelCard:
        """The card, validated and typed (parsed again only when `card` is replaced); raises `CardError`."""
        cached = self.__dict__.get("_model_card")
        if cached is None or cached[0] is not self.card:
            cached = (self.card, ModelCard.from_dict(self.card, Path(self.path) / CARD_FILE))
            self.__dict__["_model_card"] = cached
        return cached[1]

    def __getstate__(self) -> dict:
        """Pickled (Streamlit's data cache, Ray) without the parsed view: it is rebuilt from `card` on use."""
        return {k: v for k, v in self.__dict__.items() if k != "_model_card"}

    @property
    def format(self) -> str:
        """`keras` (a trained model), or `litert` / `onnx` for an edge export (see fer_core.training.export)."""
        return self.model_card.format

    @property
    def model_file(self) -> Path:
        """The file that is the model: its weights, or an ensemble's `ensemble.json` naming its members' files."""
        ensemble = self.model_card.ensemble
        if self.format == "keras" and isinstance(ensemble, Mapping) and ensemble.get("file") == ENSEMBLE_FILE:
            return self.path / ENSEMBLE_FILE
        return self.path / MODEL_FILES[self.format]

    @property
    def labels(self) -> tuple[str, ...]:
        return self.model_card.labels

    @property
    def label_set(self) -> str:
        return self.model_card.label_set

    @property
    def preprocessing(self) -> Preprocessing:
        return self.model_card.preprocessing

    @property
    def name(self) -> str:
        return self.model_card.name or self.id

    @property
    def evaluations(self) -> dict[str, dict]:
        """Every saved evaluation, keyed `<dataset key>/<split>`; an old card's `metrics` (keyed by split
        alone) is read as evaluations on the dataset its results recorded."""
        return migrated_card(self.card).get("evaluations", {})

    def home_dataset(self) -> dict:
        """The dataset `metrics(split)` means by default: the one the model was trained on (matched by
        name), else the one it was first evaluated on."""
        trained = self.card.get("dataset") or {}
        if trained.get("source") or trained.get("name"):
            selector = {"id": trained.get("id"), "name": dataset_name(trained)}
            if any(same_dataset(e.get("dataset") or {}, selector) for e in self.evaluations.values()):
                return selector
        first = next(iter(self.evaluations.values()), None)  # card order: a re-evaluation keeps its slot
        return dataset_selector((first.get("dataset") or {}) if first else trained)

    def metrics(self, split: str, dataset: dict | None = None) -> dict | None:
        """Saved evaluation results on `split` (`validation` or `test`) of `dataset` (a selector from
        `dataset_selector`; default the home dataset), the newest when several match, or None."""
        dataset = dataset if dataset is not None else self.home_dataset()
        found = [e for e in self.evaluations.values()
                 if e.get("split") == split and same_dataset(e.get("dataset") or {}, dataset)]
        return max(found, key=lambda e: str(e.get("evaluated_at") or "")) if found else None

    def is_default(self) -> bool:
        return self.model_card.default
