"""Hostile inputs to every interface that reads a file: the dataset loader (folders, zips, uploads,
fer2013.csv), `data` and `batch` on the command line, and videos. Each case asserts a clear message
that names the file and the limit, that the rest of the input still loads, and a bounded peak of
memory allocated (tracemalloc) — a loader that read the bombs whole would allocate 64 MiB or more.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fer_core.base import limits
from fer_core.video import files as video
from fer_core.video import sample
from fer_core.cli import main as cli_main
from fer_core.data.datasets import load_dataset
from fer_core.data.fer_dataset import DataError
from fer_core.data.image_folders import _decode, _jpeg_size
from tests.fixtures import encode, make_face_images, write_fer_csv, write_kaggle_layout, zip_folder
from tests.hostile import (MiB, jpeg_with_size, lying_zip, many_entries_zip, peak_allocated, png_header_bomb,
                           zip_bomb)

BOMB = "train/happy/Training_1.jpg"
BOUND = 8 * MiB  # what one hostile case may allocate beyond the small dataset it comes with


@pytest.fixture(scope="module")
def faces() -> dict[str, bytes]:
    """Nine good FER-style members for the archives (Kaggle names, three emotions)."""
    imgs = make_face_images(9, seed=4)
    return {f"train/{e}/Training_{e}{i}.jpg": encode(imgs[3 * k + i])
            for k, e in enumerate(("angry", "happy", "sad")) for i in range(3)}


def problems_of(ds) -> dict[str, str]:
    return {p.file: p.reason for p in ds.problems}


# --- archives -------------------------------------------------------------------------------------------
def test_member_over_the_per_file_limit_is_refused_by_its_declared_size(faces):
    ds, peak = peak_allocated(load_dataset, zip_bomb(64 * MiB, BOMB, faces), cache=False)
    assert len(ds) == 9  # the rest of the archive loads
    assert "64 MiB uncompressed, over the 20 MiB limit per file" in problems_of(ds)[BOMB]
    assert peak < BOUND


def test_member_under_the_size_limit_but_packed_like_a_bomb_is_refused(faces):
    ds, peak = peak_allocated(load_dataset, zip_bomb(8 * MiB, BOMB, faces), cache=False)
    assert len(ds) == 9 and "over the 100× limit: a zip bomb" in problems_of(ds)[BOMB]
    assert peak < BOUND


def test_a_member_that_lies_about_its_size_is_read_no_further_than_declared(faces):
    data = lying_zip(64 * MiB, declared=2000, name=BOMB, extra=faces)
    assert zipfile.ZipFile(io.BytesIO(data)).getinfo(BOMB).file_size == 2000
    ds, peak = peak_allocated(load_dataset, data, cache=False)
    assert len(ds) == 9 and "CRC" in problems_of(ds)[BOMB]  # stopped at 2,000 bytes: the checksum fails
    assert peak < BOUND


def test_only_a_bomb_gives_one_clear_error(tmp_path):
    path = tmp_path / "bomb.zip"
    path.write_bytes(zip_bomb(64 * MiB, BOMB))
    with pytest.raises(DataError, match=rf"none of the 1 images .*{BOMB}: 64 MiB uncompressed, over the 20 MiB"):
        load_dataset(path, cache=False)


def test_the_total_uncompressed_budget_stops_an_archive(faces, monkeypatch):
    monkeypatch.setattr(limits, "MAX_ARCHIVE_BYTES", sum(map(len, faces.values())) // 2)
    ds = load_dataset(zip_bomb(0, "train/sad/empty.jpg", faces), cache=False)
    skipped = [f for f, r in problems_of(ds).items() if "uncompressed budget is used up" in r]
    assert 0 < len(ds) < 9 and len(ds) + len(skipped) == 9


def test_too_many_entries_are_refused_before_zipfile_lists_them(monkeypatch):
    monkeypatch.setattr(limits, "MAX_ARCHIVE_ENTRIES", 1000)
    data = many_entries_zip(1001)
    with pytest.raises(DataError, match="holds 1,001 entries; the limit is 1,000 per archive"):
        load_dataset(data, cache=False)
    with pytest.raises(limits.LimitError, match="1,001 entries"):
        limits.check_zip_directory(io.BytesIO(data), "x.zip")


def test_thousands_of_tiny_entries_are_listed_in_bounded_memory():
    data = many_entries_zip(3000)

    def load():
        with pytest.raises(DataError, match=r"none of the 3,000 images .*empty file"):
            load_dataset(data, cache=False)

    _, peak = peak_allocated(load)
    assert peak < 16 * MiB  # a few KB per entry: listing, problem and file name


def test_zip64_end_record_is_read_for_its_entry_count(monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 4)  # zipfile writes the zip64 end record past this count
        data = many_entries_zip(6)
    assert b"PK\x06\x06" in data
    monkeypatch.setattr(limits, "MAX_ARCHIVE_ENTRIES", 5)
    with pytest.raises(limits.LimitError, match="6 entries"):
        limits.check_zip_directory(io.BytesIO(data), "x.zip")


def test_damaged_and_odd_archives_are_clear_errors(tmp_path, faces):
    good = zip_bomb(0, "train/sad/x.jpg", faces)
    with pytest.raises(DataError, match="not a readable zip"):
        load_dataset(good[: len(good) // 2], cache=False)  # truncated: no end record
    face = faces["train/happy/Training_happy0.jpg"]
    odd = {f"{name}": face for name in ("train/happy/Training_ünïcode.jpg", "train/happy/Training_ space .jpg",
                                        "../train/happy/Training_escape.jpg")}
    odd["train/happy/Training_fake.jpg"] = b"GIF89a not really"  # wrong content for its name
    ds = load_dataset(zip_bomb(0, "train/sad/none.jpg", {**faces, **odd}), cache=False)
    assert len(ds) == 11 and "unreadable" in problems_of(ds)["train/happy/Training_fake.jpg"]
    assert not any("escape" in f for f in ds.files)  # a `..` part is skipped like a hidden folder
    assert not list(tmp_path.iterdir())  # nothing extracted anywhere


# --- images ---------------------------------------------------------------------------------------------
def test_images_whose_headers_declare_gigapixels_are_refused_before_decoding(faces):
    jpeg = faces["train/happy/Training_happy0.jpg"]
    assert _jpeg_size(jpeg) == (48, 48)
    bombs = {"train/happy/Training_big.jpg": jpeg_with_size(jpeg, 30000, 30000),
             "train/happy/Training_big.png": png_header_bomb(60000, 60000)}
    ds, peak = peak_allocated(load_dataset, zip_bomb(0, "train/sad/none.jpg", {**faces, **bombs}), cache=False)
    found = problems_of(ds)
    assert "30000×30000 = 900 megapixels (the limit is 25 MP)" in found["train/happy/Training_big.jpg"]
    assert "60000×60000" in found["train/happy/Training_big.png"]
    assert len(ds) == 9 and peak < BOUND


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.sampled_from([b"", b"\xff\xd8", b"\x89PNG\r\n\x1a\n", b"GIF89a"]))
def test_any_bytes_decode_or_give_a_reason(data, prefix):
    image, reason = _decode(prefix + data)
    assert (image is None) == bool(reason and "resized" not in reason)
    assert image is None or image.shape == (48, 48)


# --- tables ---------------------------------------------------------------------------------------------
def test_absurd_csv_rows_are_refused_by_row_number_without_being_held(tmp_path):
    path = tmp_path / "fer2013.csv"
    huge = "3," + " ".join(["200"] * 2_000_000) + ",Training"  # 8 MB of pixels on one line
    write_fer_csv(path, extra_rows=[huge, "4," + "1 " * 5000 + ",PublicTest", "9,1 2 3,Training"])
    ds, peak = peak_allocated(load_dataset, path, cache=False)
    found = problems_of(ds)
    assert len(ds) == 12
    assert found["fer2013.csv:row 14"] == "row of 7.6 MiB, over the 64 KiB limit per row"
    assert found["fer2013.csv:row 15"].startswith("wrong pixel count (5000")
    assert found["fer2013.csv:row 16"].startswith("wrong pixel count")
    assert peak < 4 * MiB  # never the whole 8 MB line


def test_a_csv_in_a_zip_over_the_table_limit_is_refused(tmp_path, monkeypatch):
    write_fer_csv(tmp_path / "d" / "fer2013.csv")
    data = zip_folder(tmp_path / "d")
    monkeypatch.setattr(limits, "MAX_TABLE_BYTES", 1000)
    with pytest.raises(DataError, match="fer2013.csv: .* over the 1000 B limit"):
        load_dataset(data, cache=False)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(alphabet="0123456789, \"\n\r-.abcUsagePublicTest", max_size=80), max_size=8))
def test_any_csv_loads_or_gives_a_data_error(tmp_path, rows):
    path = tmp_path / "fer2013.csv"
    path.write_text("emotion,pixels,Usage\n" + "\n".join(rows))
    try:
        ds = load_dataset(path, cache=False)
    except DataError as err:
        assert "fer2013.csv" in str(err)
    else:
        assert len(ds) >= 1 and ds.images.shape[1:] == (48, 48)


def test_iter_lines_drains_an_oversized_line_in_bounded_chunks():
    lines = list(limits.iter_lines(io.BytesIO(b"a,b\n" + b"x" * 100 + b"\nlast"), max_row=10))
    assert lines == [(1, b"a,b\n", 4), (2, None, 101), (3, b"last", 4)]
    with pytest.raises(limits.LimitError, match="over the limit per table"):
        list(limits.iter_lines(io.BytesIO(b"1234\n" * 10), max_total=20))


# --- the command line: data and batch ---------------------------------------------------------------------
def test_data_cli_refuses_the_bomb_with_a_message(tmp_path, capsys):
    path = tmp_path / "bomb.zip"
    path.write_bytes(zip_bomb(64 * MiB, BOMB))
    code, peak = peak_allocated(cli_main, ["data", "--data", str(path)])
    err = capsys.readouterr().err
    assert code != 0 and "over the 20 MiB limit per file" in err and "Traceback" not in err
    assert peak < BOUND


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    from tests.model_fixtures import make_fixture_model

    root = tmp_path_factory.mktemp("models")
    make_fixture_model(root, "tiny7")
    return root


def test_batch_lists_bombs_and_liars_and_scores_the_rest(tmp_path, faces, models_dir, monkeypatch, capsys):
    monkeypatch.setenv("FER_MODELS_DIR", str(models_dir))
    archive = tmp_path / "bomb.zip"
    archive.write_bytes(zip_bomb(64 * MiB, BOMB, {"ok/a.jpg": faces["train/sad/Training_sad0.jpg"]}))
    liar = tmp_path / "liar.zip"
    liar.write_bytes(lying_zip(64 * MiB, declared=2000, name="x/liar.jpg"))
    (tmp_path / "huge.png").write_bytes(png_header_bomb(60000, 60000))
    out = tmp_path / "r.csv"
    code, peak = peak_allocated(cli_main, ["batch", str(archive), str(liar), str(tmp_path / "huge.png"),
                                           "--out", str(out), "--detector", "none", "--workers", "1"])
    assert code == 0 and peak < 32 * MiB  # the model's own allocations included
    errors = pd.read_csv(tmp_path / "r.errors.csv").set_index("file")["error"].to_dict()
    assert "over the 20 MiB limit per file" in errors[f"{archive}!{BOMB}"]
    assert "CRC" in errors[f"{liar}!x/liar.jpg"]
    assert "too large" in errors[str(tmp_path / "huge.png")]
    assert pd.read_csv(out)["file"].tolist() == [f"{archive}!ok/a.jpg"]


def test_batch_refuses_an_archive_of_too_many_entries(tmp_path, models_dir, monkeypatch):
    from fer_core.serving.batch_inputs import expand_inputs

    monkeypatch.setattr(limits, "MAX_ARCHIVE_ENTRIES", 100)
    (tmp_path / "many.zip").write_bytes(many_entries_zip(101))
    items, problems = expand_inputs([tmp_path / "many.zip"])
    assert items == [] and "101 entries; the limit is 100" in problems[0][1]


def test_a_big_image_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from fer_core.serving.batch_inputs import Item, read_item_bytes

    path = tmp_path / "big.jpg"
    path.write_bytes(b"\xff\xd8" + bytes(3 * MiB))
    monkeypatch.setattr(limits, "MAX_MEMBER_BYTES", 2 * MiB)
    with pytest.raises(limits.LimitError, match=r"3\.0 MiB, over the 2 MiB limit per file"):
        read_item_bytes(Item(str(path), str(path), "image"))


# --- videos ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clip_mp4() -> bytes:
    return video.write_mp4(sample.sample_clip(12, size=(160, 120)), fps=12)


def test_videos_over_the_limits_are_refused_from_their_header(clip_mp4):
    cases = {video.VideoLimits(max_pixels=160 * 119): "a frame is 160×120",
             video.VideoLimits(max_frames=10): "declares 12 frames; the limit is 10",
             video.VideoLimits(max_seconds=0.5): "lasts 1 s; the limit is 0.5 s"}
    for lim, words in cases.items():
        with pytest.raises(ValueError, match="the uploaded video is too large to analyse") as err:
            next(video.read_frames(clip_mp4, limits=lim))
        assert words in str(err.value)


def test_a_header_that_lies_is_caught_while_decoding(clip_mp4, monkeypatch):
    monkeypatch.setattr(video, "check_video", lambda *a, **k: None)  # as if the header declared nothing
    frames = []
    with pytest.raises(ValueError, match="more than 5 frames"):
        for frame in video.read_frames(clip_mp4, limits=video.VideoLimits(max_frames=5)):
            frames.append(frame.index)
    assert frames == [0, 1, 2, 3, 4]


def test_a_caller_cap_on_frames_analyses_the_start_of_a_long_video(clip_mp4):
    lim = video.VideoLimits(max_frames=8)
    assert len(list(video.read_frames(clip_mp4, max_frames=8, limits=lim))) == 8  # not refused: capped


def test_batch_lists_a_video_over_the_limits(tmp_path, models_dir, monkeypatch, clip_mp4):
    from fer_core.serving.batch_inputs import Item
    from fer_core.serving.scoring import ScoreOptions, score_item
    from fer_core.inference.predict import Classifier
    from fer_core.models import registry

    path = tmp_path / "clip.mp4"
    path.write_bytes(clip_mp4)
    monkeypatch.setattr(video, "DEFAULT_LIMITS", video.VideoLimits(max_frames=4))
    clf = Classifier.from_registry(registry.get_model("tiny7", models_dir))
    rows, error = score_item(Item(str(path), str(path), "video"), clf, ScoreOptions(detector="none"))
    assert rows == [] and "declares 12 frames; the limit is 4" in error


def test_votes_files_with_absurd_rows_or_sizes_are_refused(tmp_path, monkeypatch):
    from fer_core.data import votes
    from tests.ferplus_fixtures import votes_row, write_votes_csv

    path = write_votes_csv(tmp_path / "ferplus_votes.csv", [("train/happy/a.jpg", "train", votes_row(happy=9))])
    path.write_text(path.read_text() + "train/sad/b.jpg,Training," + "1" * 200_000 + ",0,0,0,0,0,0,0,0,0\n")
    with pytest.raises(votes.VotesError, match=r"row 3: 195\.4 KiB long, over the 64 KiB limit per row"):
        votes.read_votes(path.read_bytes(), path.name)
    monkeypatch.setattr(votes, "MAX_VOTES_BYTES", 1000)
    write_kaggle_layout(tmp_path, {"happy": (1, 0, 0)})
    ds = load_dataset(tmp_path, cache=False)
    with pytest.raises(votes.VotesError, match="ferplus_votes.csv: .* over the 1000 B limit per file"):
        votes.attach_votes(ds)
