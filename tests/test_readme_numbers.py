"""The README's model and export tables quote what the shipped cards measured: every accuracy, clean
accuracy and macro-F1 typed there equals (to 4 decimals) a saved PublicTest evaluation with the model's
default TTA, so a retrained or rebuilt model cannot leave stale numbers behind."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from fer_core.models import registry

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"


def table_rows(heading: str, document: str = "README.md") -> list[list[str]]:
    """The cells of the first Markdown table after the line starting with `heading` (header row skipped)."""
    lines = (ROOT / document).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    rows = []
    for line in lines[start:]:
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip("|").split("|")])
        elif rows:
            break
    return rows[2:]


def model_id(cell: str) -> str:
    return re.match(r"`([^`]+)`", cell).group(1)


def validation_scores(model: str) -> list[tuple[float, float, float | None]]:
    """(accuracy, macro-F1, clean accuracy) of each saved PublicTest evaluation at the card's default TTA."""
    info = registry.get_model(model, MODELS)
    tta = info.model_card.tta
    return [(e["accuracy"], e["macro_f1"], (e.get("clean") or {}).get("accuracy"))
            for e in info.evaluations.values() if e["split"] == "validation" and e.get("tta", "none") == tta]


MODEL_ROWS = table_rows("## Models")
EXPORT_ROWS = table_rows("| export |")


def test_the_tables_were_found():
    assert len(MODEL_ROWS) >= 10 and len(EXPORT_ROWS) >= 5


@pytest.mark.parametrize("row", MODEL_ROWS, ids=[model_id(r[0]) for r in MODEL_ROWS])
def test_models_table_quotes_the_cards(row):
    accuracy, clean, f1 = (float(c) for c in row[6:9])
    measured = [(round(a, 4), round(c, 4), round(f, 4)) for a, f, c in validation_scores(model_id(row[0]))]
    assert (accuracy, clean, f1) in measured


@pytest.mark.parametrize("row", EXPORT_ROWS, ids=[model_id(r[0]) for r in EXPORT_ROWS])
def test_exports_table_quotes_the_cards(row):
    accuracy, f1 = (float(c.split()[0]) for c in row[2:4])
    measured = [(round(a, 4), round(f, 4)) for a, f, _ in validation_scores(model_id(row[0]))]
    assert (accuracy, f1) in measured


CROWD_ROWS = table_rows("| model | TTA | FER+ majority", "docs/ferplus.md")


@pytest.mark.parametrize("row", CROWD_ROWS, ids=[model_id(r[0]) for r in CROWD_ROWS])
def test_ferplus_table_quotes_the_cards(row):
    """docs/ferplus.md's crowd table: each figure equals the card's PublicTest evaluation at its default TTA."""
    def number(cell: str) -> float | None:
        found = re.search(r"\d\.\d{4}", cell)
        return float(found.group()) if found else None

    info = registry.get_model(model_id(row[0]), MODELS)
    tta = info.model_card.tta
    saved = [e for e in info.evaluations.values() if e["split"] == "validation" and e.get("tta", "none") == tta]
    assert saved and len(CROWD_ROWS) >= 5
    crowd = saved[0].get("ferplus") or {}
    seven = crowd.get("seven_class", crowd) if len(info.labels) == 8 else crowd
    expected = [crowd.get("accuracy") if len(info.labels) == 8 else None, seven.get("accuracy"), saved[0]["accuracy"]]
    for cell, value in zip(row[2:5], expected):
        if number(cell) is not None:
            assert number(cell) == round(value, 4), f"{row[0]}: {cell} vs the card's {value}"
