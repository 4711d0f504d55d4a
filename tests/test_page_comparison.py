"""The Model Comparison page rendered through AppTest, from fixture cards and from the shipped models."""
from __future__ import annotations

import base64
import json

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from fer_core.evaluation import evaluate as ev
from fer_core.evaluation import comparison
from fer_core.evaluation.predictions import load_predictions
from fer_core.models import groups, registry
from fer_core.data.datasets import load_dataset
from tests.model_fixtures import make_dataset, make_model
from tests.page_fixtures import run_comparison_page as run_page


def run_group(group: str) -> AppTest:
    """The page with the sidebar's model group set to `group` (the page opens on `defaults`)."""
    at = run_page()
    at.selectbox(key="group").set_value(group).run()
    return at


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "info", "warning", "caption", "code", "header", "title", "error")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def charts(at: AppTest) -> list:
    return at.get("plotly_chart")


def heatmap_z(spec: dict) -> np.ndarray:
    """The z values of a plotly heat map spec (plotly serialises arrays as base64 typed buffers)."""
    z = spec["data"][0]["z"]
    if isinstance(z, dict):
        shape = tuple(int(n) for n in z["shape"].split(","))
        return np.frombuffer(base64.b64decode(z["bdata"]), dtype=np.dtype(z["dtype"])).reshape(shape)
    return np.asarray(z, dtype=float)


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "models").mkdir()
    data = make_dataset(tmp_path / "data")
    monkeypatch.setenv("FER_DATA_DIR", str(data))
    return tmp_path


def test_no_models_gives_guidance(env):
    at = run_page()
    assert not at.exception
    assert "No trained models yet" in texts(at) and "python -m fer_core train" in texts(at)


def test_unevaluated_models_show_the_command(env):
    make_model(env / "models", "bright_a")
    partial = make_model(env / "models", "bright_b")
    registry.save_metrics(partial, "test", {"accuracy": 0.5})  # a card with a hand-written, partial result
    at = run_group("all")
    assert not at.exception
    board = at.dataframe[0].value
    assert list(board["model"]) == ["bright_b", "bright_a"] and board["accuracy"][0] == 0.5
    assert board["accuracy"][1:].isna().all()
    assert "not evaluated" in set(board["evaluated on"])
    assert "python -m fer_core evaluate --model bright_a" in texts(at)
    assert "python -m fer_core evaluate --model bright_b" in texts(at)
    assert len(charts(at)) == 1  # the training curves, from the card's history
    assert "no per-class" in texts(at)


def test_page_from_fixture_evaluations(env):
    a = make_model(env / "models", "bright_a", 0.5, default=True)
    b = make_model(env / "models", "bright_b", 0.8)
    ds = load_dataset(env / "data")
    results = {info.id: ev.evaluate_model(info, ds, "test", save=True) for info in (a, b)}
    at = run_group("all")
    assert not at.exception, at.exception

    board = at.dataframe[0].value
    assert set(board["model"]) == {"bright_a", "bright_b"}
    for _, row in board.iterrows():
        r = results[row["model"]]
        assert row["accuracy"] == pytest.approx(r["accuracy"]) and row["ECE"] == pytest.approx(r["ece"])
        assert row["log-loss"] == pytest.approx(r["log_loss"])
        assert row["latency ms/face"] == pytest.approx(r["latency_ms_per_face"])
        assert row["CI low"] < row["accuracy"] < row["CI high"]  # 5 of 7 right: a wide interval
    assert board["params"].tolist() == [4, 4]
    assert "train min" in board.columns and "epochs" in board.columns

    # two scatters (latency, training time), training curves, per-class F1, two confusion matrices,
    # reliability, McNemar heat map
    figures = charts(at)
    assert len(figures) == 8
    pairs = at.dataframe[1].value
    assert (pairs["A right, B wrong"][0], pairs["A wrong, B right"][0], pairs["p-value"][0]) == (1, 1, 1.0)

    # gallery: bright_a's one mistake of each kind; the dataset (FER_DATA_DIR) is found and shown
    text = texts(at)
    assert ("**1** happy faces predicted as sad by bright_a" in text
            or "**1** sad faces predicted as happy by bright_a" in text)
    assert len(at.image) == 1
    mistake = "happy_3_60.png" if "happy faces predicted as sad" in text else "sad_2_180.png"
    pred = load_predictions(a, "test")
    conf = comparison.misclassified(pred, *(("happy", "sad") if mistake.startswith("happy") else ("sad", "happy")))
    assert at.image[0].captions == [f"{conf['confidence'][0]:.0%} / {conf['p_true'][0]:.0%}"]

    counts = json.loads(figures[4].proto.spec)
    np.testing.assert_array_equal(heatmap_z(counts), [[3, 1], [1, 2]])

    # normalised confusion matrices: each true-class row sums to 1
    at.radio(key="cm_mode").set_value(at.radio(key="cm_mode").options[1]).run()
    assert not at.exception
    spec = json.loads(charts(at)[4].proto.spec)
    assert spec["layout"]["title"]["text"].startswith("bright_a")
    np.testing.assert_allclose(heatmap_z(spec), [[0.75, 0.25], [1 / 3, 2 / 3]])

    # the validation split has no evaluations yet
    at.radio(key="split").set_value("validation").run()
    assert not at.exception
    assert "Not evaluated on the validation split" in texts(at)


def test_page_from_shipped_models(monkeypatch):
    monkeypatch.delenv("FER_MODELS_DIR", raising=False)
    infos = registry.list_models()
    if not infos:
        pytest.skip("no trained models under models/ in this checkout")
    at = run_page()
    assert not at.exception, at.exception
    board = at.dataframe[0].value
    defaults = groups.model_groups(infos)[groups.DEFAULTS]  # the page opens on the defaults group
    first_set = [i for i in infos if i.label_set == infos[0].label_set and i.id in defaults]
    assert sorted(board["model"]) == sorted(i.id for i in first_set)
    for info in first_set:
        saved = info.metrics("test")
        row = board[board["model"] == info.id].iloc[0]
        assert ("crowd" in row["labels learned"]) == info.card["dataset"].get("label_source", {}).get(
            "label_source", "fer2013").startswith("ferplus")
        if saved:
            assert row["accuracy"] == pytest.approx(saved["accuracy"])
        else:
            assert pd.isna(row["accuracy"])  # not measured: blank
    assert len(charts(at)) >= 1
    in_members = groups.model_groups(infos)[groups.MEMBERS]
    members = [i for i in infos if i.label_set == infos[0].label_set and i.id in in_members]
    if members:
        at.selectbox(key="group").set_value(groups.MEMBERS).run()
        assert not at.exception, at.exception
        assert sorted(at.dataframe[0].value["model"]) == sorted(i.id for i in members)


def test_models_are_drawn_one_group_at_a_time(env):
    from fer_core.models.ensemble import create_ensemble
    from tests.model_fixtures import register_export, register_trained

    root = env / "models"
    register_trained(root, "net", "fer_resvgg", 0.60)
    registry.set_default("net", root)
    seed2 = register_trained(root, "seed2", "fer_resvgg", 0.55)
    create_ensemble(["net", "seed2"], root / "ens")
    export = register_export(root, seed2, 0.65)
    registry.update_card(export.path, lambda card: card["export"].update(
        file_size_bytes=1_300_000, parent_file_size_bytes=5_100_000, size_ratio=0.25))  # as `export` records them
    at = run_page()
    assert not at.exception, at.exception
    assert at.selectbox(key="group").value == groups.DEFAULTS
    assert at.selectbox(key="group").options == [f"{g} ({n})" for g, n in (
        (groups.DEFAULTS, 2), (groups.ARCHITECTURES, 1), (groups.MEMBERS, 3), (groups.EXPORTS, 2), (groups.ALL, 4))]
    assert sorted(at.dataframe[0].value["model"]) == ["net", "seed2-int8"]  # the default and the most accurate
    assert "Group **defaults**" in texts(at)
    at.selectbox(key="group").set_value(groups.MEMBERS).run()
    assert not at.exception, at.exception
    assert sorted(at.dataframe[0].value["model"]) == ["ens", "net", "seed2"]
    at.selectbox(key="group").set_value(groups.EXPORTS).run()
    assert sorted(at.dataframe[0].value["model"]) == ["seed2", "seed2-int8"]
    assert "Edge exports" in [h.value for h in at.header]


def test_equal_budget_and_ablation_sections_come_from_the_cards(tmp_path, monkeypatch):
    import shutil

    from tests.model_fixtures import register_export
    from tests.model_fixtures import register_trained as _register

    monkeypatch.setenv("FER_MODELS_DIR", str(tmp_path))
    for model_id, arch, acc, changes in (("base", "baseline_cnn", 0.45, {}), ("comp", "complex_cnn", 0.50, {}),
                                         ("noaug", "baseline_cnn", 0.40, {"augment": "none"}),
                                         ("vgg", "vgg16_transfer", 0.30, {})):
        info = _register(tmp_path, model_id, arch, acc, **changes)
        registry.save_metrics(info, "test", {"accuracy": acc, "macro_f1": acc - 0.1, "n": 100,
                                             "dataset": {"source": "/data/fer2013", "name": "fer2013"}})
    exported = register_export(tmp_path, info, 0.29, split="test")
    registry.save_metrics(exported, "test", {**exported.metrics("test"), "confusion_matrix": [[0, 3], [0, 7]]})
    shutil.rmtree(info.path)  # the parent set aside: only its export ships
    at = run_page()
    assert not at.exception
    headers = [h.value for h in at.header]
    assert "The seed architectures at an equal budget" in headers
    assert "Ablations: augmentation and input colour" in headers
    tables = {tuple(df.value.columns): df.value for df in at.dataframe}
    ablation = next(v for k, v in tables.items() if "augmentation" in k)
    assert sorted(ablation["model"]) == ["base", "noaug"] and "4 epochs each" in texts(at)
    fair = next(v for k, v in tables.items() if "shipped as" in k).set_index("model")
    assert fair.loc["vgg-int8", "shipped as"] == "litert int8" and fair.loc["vgg-int8", "accuracy"] == 0.29
    assert "Shipped as an edge export only, since the Keras file exceeds the 25 MB limit" in texts(at)
    assert "vgg-int8 answers the same emotion for every face" in texts(at) and "base answers" not in texts(at)
    missing = next(str(c.value) for c in at.caption if str(c.value).startswith("Not in the table"))
    assert "larger_cnn" in missing and "vgg16_transfer" not in missing
