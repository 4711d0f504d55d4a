"""Shared pytest setup.

The repository root is on sys.path through pyproject.toml (`[tool.pytest.ini_options] pythonpath`), so tests
import `fer_core`, `pages.common` and their helpers as `tests.fixtures`, `tests.model_fixtures`, ...; the lines
below do the same for a pytest run that does not read pyproject.toml (e.g. `pytest -c other.ini`).
"""
import sys
from pathlib import Path

import plotly.io as pio
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Plotly encodes charts with orjson whenever something installed it (requirements.txt does not), and orjson writes
# "×" where the json module writes "\u00d7": the suite encodes as a requirements.txt install does, whatever else the
# machine holds. Chart tests compare parsed values anyway (tests/page_fixtures.py chart_specs).
pio.json.config.default_engine = "json"


@pytest.fixture
def env(tmp_path, monkeypatch):
    """An empty models folder and a private cache under tmp_path, through FER_MODELS_DIR and FER_CACHE_DIR
    (test_embeddings.py has its own `env`, over a prepared models folder)."""
    monkeypatch.setenv("FER_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "models").mkdir()
    return tmp_path


@pytest.fixture(scope="module")
def clip():
    """24 RGB video frames of real faces (fer_core.video.sample: scikit-image's astronaut), shared by a module."""
    from fer_core.video import sample

    return sample.sample_clip(24)


@pytest.fixture
def tiny_kaggle(tmp_path, monkeypatch):
    """A three-emotion Kaggle-layout dataset (6 train, 3 PublicTest, 2 PrivateTest faces each) with private
    models, runs and cache folders under tmp_path: what a tiny training run needs."""
    from tests.fixtures import write_kaggle_layout

    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FER_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("FER_MODELS_DIR", str(tmp_path / "models"))
    root = tmp_path / "fer"
    write_kaggle_layout(root, {"angry": (6, 3, 2), "happy": (6, 3, 2), "sad": (6, 3, 2)})
    return root
