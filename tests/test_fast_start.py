"""First five minutes: Home renders without TensorFlow, and its cheap device probe agrees with Keras'."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_home_renders_without_tensorflow(tmp_path):
    code = ("import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
            "from streamlit.testing.v1 import AppTest\n"
            "at = AppTest.from_file('Home.py', default_timeout=60); at.run()\n"
            "assert not at.exception, at.exception\n"
            "print('|'.join(m.value for m in at.markdown))\n")
    env = {**os.environ, "FER_DATA_DIR": str(tmp_path / "no_dataset")}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Models compute on: **" in done.stdout and "Keras backend" in done.stdout


def test_quick_device_probe_agrees_with_keras():
    """Same device kind, count and backend as Keras reports (GPU names may be spelled differently)."""
    from fer_core.base.runtime import device_description, gpu_names, quick_device_description

    quick, full = quick_device_description(), device_description()
    if gpu_names():
        assert quick.split(" (")[0] == full.split(" (")[0] and quick.split(", ")[-1] == full.split(", ")[-1]
    else:
        assert quick == full


@pytest.mark.slow
def test_training_prints_no_ignored_shuffle_warning(tmp_path, monkeypatch):
    """The input pipeline shuffles itself, so `fit` is told not to (Keras warned it would ignore it)."""
    import warnings

    from fer_core.training.config import TrainConfig
    from fer_core.training.train import train
    from tests.fixtures import write_kaggle_layout

    for name, sub in (("FER_CACHE_DIR", "cache"), ("FER_RUNS_DIR", "runs"), ("FER_MODELS_DIR", "models")):
        monkeypatch.setenv(name, str(tmp_path / sub))
    write_kaggle_layout(tmp_path / "fer", {"happy": (6, 2, 1), "sad": (6, 2, 1)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(TrainConfig(arch="baseline_cnn", data=str(tmp_path / "fer"), epochs=1, batch_size=8, patience=0,
                          out=str(tmp_path / "models" / "quiet")), verbose=0)
    assert not [w for w in caught if "shuffle" in str(w.message)], [str(w.message) for w in caught]
