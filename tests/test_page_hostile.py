"""Hostile inputs through the pages (AppTest): a zip bomb uploaded to the Dataset Explorer, a dataset
path outside $FER_DATA_ROOT, and a video over the Video Analysis page's limits. Each gets a clear
message on the page, never a traceback, and the bomb is refused in bounded memory."""
from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from fer_core.video import files as video
from fer_core.video import sample
from tests.fixtures import encode, make_face_images, write_kaggle_layout
from tests.hostile import MiB, peak_allocated, zip_bomb

PAGES = Path(__file__).resolve().parents[1] / "pages"
BOMB = "train/happy/Training_1.jpg"


def texts(at: AppTest) -> str:
    kinds = ("markdown", "caption", "info", "warning", "error")
    return "\n".join(str(e.value) for kind in kinds for e in getattr(at, kind))


@pytest.fixture
def no_data(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_DATA_DIR", "")
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    st.cache_data.clear()
    st.cache_resource.clear()
    return tmp_path


def explorer() -> AppTest:
    return AppTest.from_file(str(PAGES / "1_Dataset_Explorer.py"), default_timeout=60).run()  # no dataset yet


def upload(at: AppTest, data: bytes) -> AppTest:
    at.file_uploader(key="dataset_zip").set_value(("bomb.zip", data, "application/zip"))
    return at.run()


def test_explorer_refuses_an_uploaded_bomb_in_bounded_memory(no_data):
    at, bomb = explorer(), zip_bomb(64 * MiB, BOMB)
    at, peak = peak_allocated(upload, at, bomb)
    assert not at.exception
    assert any(f"{BOMB}: 64 MiB uncompressed, over the 20 MiB limit per file" in e.value for e in at.error)
    assert peak < 48 * MiB  # the page itself included; reading the member would add 64 MiB


def test_explorer_loads_the_rest_of_an_upload_and_lists_the_bomb(no_data):
    faces = make_face_images(6, seed=1)
    good = {f"train/{e}/Training_{e}{i}.jpg": encode(faces[2 * k + i])
            for k, e in enumerate(("happy", "sad", "angry")) for i in range(2)}
    at = upload(explorer(), zip_bomb(64 * MiB, BOMB, good))
    assert not at.exception and not at.error
    problems = next(e.value for e in at.dataframe if "reason" in e.value.columns)  # the Load problems table
    assert "over the 20 MiB limit per file" in problems.set_index("file")["reason"][BOMB]


def test_dataset_paths_outside_fer_data_root_are_refused(no_data, monkeypatch):
    write_kaggle_layout(no_data / "data" / "fer")
    monkeypatch.setenv("FER_DATA_ROOT", str(no_data / "data"))
    page = str(PAGES / "1_Dataset_Explorer.py")
    for outside in ("/etc", str(no_data / "data" / ".." / "cache"), "fer/../../"):
        at = AppTest.from_file(page, default_timeout=60)
        at.session_state["dataset_source"] = outside
        at.run()
        assert not at.exception and "outside the data folder this server allows" in at.error[0].value, outside
    at = AppTest.from_file(page, default_timeout=60)
    at.session_state["dataset_source"] = "fer"  # relative to the root
    at.run()
    assert not at.exception and not at.error


@pytest.fixture
def models(tmp_path, monkeypatch):
    from tests.model_fixtures import make_fixture_model

    make_fixture_model(tmp_path / "models", "tiny7")
    monkeypatch.setenv("FER_MODELS_DIR", str(tmp_path / "models"))
    st.cache_data.clear()
    st.cache_resource.clear()


def analyse(clip: bytes) -> AppTest:
    at = AppTest.from_file(str(PAGES / "5_Video_Analysis.py"), default_timeout=120).run()
    at.file_uploader[0].set_value(("clip.mp4", clip, "video/mp4"))
    at.run()
    at.button[0].click()
    return at.run()


def test_video_page_refuses_frames_over_its_limits(models, monkeypatch):
    monkeypatch.setattr(video, "PAGE_LIMITS", video.VideoLimits(max_pixels=100 * 100, max_frames=100))
    at = analyse(video.write_mp4(sample.sample_clip(4, size=(160, 120)), fps=8))
    assert not at.exception
    assert "a frame is 160×120" in at.error[0].value and "Trim or downscale" in at.error[0].value


def test_video_page_analyses_only_its_first_frames_and_keeps_no_video_in_session_state(models, monkeypatch):
    monkeypatch.setattr(video, "PAGE_LIMITS", video.VideoLimits(max_frames=6))
    at = analyse(video.write_mp4(sample.sample_clip(10, size=(160, 120)), fps=10))
    assert not at.exception and not at.error
    assert "Only the first 6 frames" in texts(at)
    assert "video_job" in at.session_state.keys()
    held = [k for k, v in at.session_state.items() if isinstance(v, (bytes, video.VideoAnalysis))]
    assert held == []
