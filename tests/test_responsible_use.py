"""The Responsible Use page (AppTest) and `card --markdown`: text from docs/responsible_use.md,
every per-class number from the models' cards."""
from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from fer_core.evaluation import evaluate as ev
from fer_core.evaluation import model_card as mc
from fer_core.models import registry
from fer_core.evaluation import robustness as rb
from fer_core.data.datasets import load_dataset
from tests.model_fixtures import make_dataset, make_model

ROOT = Path(__file__).resolve().parents[1]

PAGE = str(ROOT / "pages" / "6_Responsible_Use.py")


def run_page() -> AppTest:
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(PAGE, default_timeout=90)
    at.run()
    return at


def page_text(at: AppTest) -> str:
    kinds = ("title", "header", "markdown", "caption", "info", "warning", "error")
    return "\n".join(str(e.value) for kind in kinds for e in getattr(at, kind))


def assert_per_class_matches_cards(at: AppTest, infos) -> int:
    table = next(d.value for d in at.dataframe if "emotion" in d.value.columns)
    checked = 0
    for info in infos:
        result = mc.reported_result(info)
        rows = table[table["model"] == info.id]
        assert len(rows) == (len(result["per_class"]) if result else 0)
        for _, row in rows.iterrows():
            saved = result["per_class"][row["emotion"]]
            for key in ("precision", "recall", "f1", "support"):
                assert row[key] == pytest.approx(saved[key]), (info.id, row["emotion"], key)
            checked += 1
    return checked


def test_page_from_fixture_cards(env):
    a = make_model(env / "models", "bright_a", 0.5, default=True)
    make_model(env / "models", "bright_b", 0.8)  # never evaluated
    ds = load_dataset(make_dataset(env / "data"), cache=False)
    ev.evaluate_model(a, ds, "test", save=True, latency=False)
    rb.robustness_report(a, ds, n=5, save=True)
    at = run_page()
    assert not at.exception, at.exception
    text = page_text(at)
    for needle in ("Uses it is not fit for", "hiring", "surveillance", "48×48 grayscale", "label noise",
                   "demographic", "PublicTest", "Barrett", "not a reliable readout", "in memory only"):
        assert needle in text, needle
    assert assert_per_class_matches_cards(at, registry.list_models()) == 2
    assert "Not evaluated yet: bright_b" in text
    # bright_a: happy F1 0.75, sad F1 2/3 → sad is the weakest, most often called happy (1 of 3)
    assert "**sad**: F1 0.67, recall 0.67 on 3 images; most often called *happy* (33% of its images)" in text
    assert "Whose labels the defaults repeat" in text and "ten" in text
    defaults = next(d.value for d in at.dataframe if "learned from" in d.value.columns)
    assert list(defaults["default model"]) == ["bright_a"] and "one annotator" in defaults.loc[0, "learned from"]
    robust = next(d.value for d in at.dataframe if "corruption" in d.value.columns)
    assert len(robust) == len(rb.CORRUPTIONS) and set(robust["n"]) == {4}  # 4 validation faces of its emotions
    assert len(at.get("download_button")) == 2


def test_duplicates_fact_comes_from_the_card(env):
    from tests.fixtures import make_face_images, write_kaggle_layout

    faces = make_face_images(12, seed=5, distinct=True)
    images = [*faces[0:3], faces[0], faces[6], *faces[3:6], faces[7], faces[8]]  # one validation face leaks
    write_kaggle_layout(env / "data", {"happy": (3, 2, 0), "sad": (3, 2, 0)}, images=images, ext="png")
    info = make_model(env / "models", "bright")
    result = ev.evaluate_model(info, load_dataset(env / "data", cache=False), "validation", save=True, latency=False)
    fact = mc.duplicates_fact(registry.list_models())
    assert fact.startswith("Measured here: 1 of the 4 images of validation have an exact or near duplicate")
    assert f"{result['clean']['accuracy']:.3f} instead of {result['accuracy']:.3f}" in fact
    at = run_page()
    assert not at.exception and fact in page_text(at)


def test_page_without_models(env):
    at = run_page()
    assert not at.exception
    assert "No trained models yet" in page_text(at) and "Privacy" in page_text(at)


def test_page_from_shipped_models(monkeypatch):
    monkeypatch.delenv("FER_MODELS_DIR", raising=False)
    infos = registry.list_models()
    if not any(mc.reported_result(i) for i in infos):
        pytest.skip("no evaluated models under models/ in this checkout")
    at = run_page()
    assert not at.exception, at.exception
    assert assert_per_class_matches_cards(at, infos) > 0


def test_card_markdown_cli(env, capsys):
    from fer_core import cli

    info = make_model(env / "models", "bright", default=True)
    ev.evaluate_model(info, load_dataset(make_dataset(env / "data"), cache=False), "test", save=True, latency=False)
    assert cli.main(["card", "bright", "--markdown"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("# Model card: Brightness 0.5 (`bright`)")
    assert "| happy | 0.750 | 0.750 | 0.750 | 4 | sad (25%) |" in text
    assert "## Uses it is not fit for" in text and "Barrett" in text and "## Privacy" in text
    out = env / "bright.md"
    assert cli.main(["card", "bright", "--markdown", "--out", str(out)]) == 0
    assert out.read_text() == text and f"wrote {out}" in capsys.readouterr().out
    assert text == mc.model_card_markdown(registry.get_model("bright"))  # the page's download is the same
    assert cli.main(["card", "bright"]) == 0
    assert '"id": "bright"' in capsys.readouterr().out
    assert cli.main(["card", "nope", "--markdown"]) == 2
    assert cli.main(["card", "bright", "--markdown", "--out", str(env / "missing" / "x.md")]) == 2
    assert cli.main(["card", "bright", "--markdown", "--out", str(env)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 3 and "Traceback" not in err
