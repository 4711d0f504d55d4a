"""fer_core.data.datasets: every supported layout, bad files, label subsets, split resolution and the disk cache."""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fer_core.data import datasets as data
from fer_core.data.datasets import load_dataset
from fer_core.data.fer_dataset import DataError, resolve_split
from fer_core.base.labels import FOUR_CLASS
from tests.fixtures import (encode, make_face_images, write_course_layout, write_fer_csv, write_kaggle_layout,
                            zip_folder)

FER2013 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fer2013"


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))


def counts_of(ds) -> dict[tuple[str, str], int]:
    table = ds.counts().drop(columns="total")
    return {(e, s): int(table.loc[e, s]) for e in table.index for s in table.columns if table.loc[e, s]}


def expected(written: dict) -> dict[tuple[str, str], int]:
    return {k: len(v) if isinstance(v, list) else v for k, v in written.items()
            if (len(v) if isinstance(v, list) else v)}


def image_of(ds, file: str) -> np.ndarray:
    return ds.images[list(ds.files).index(file)]


# ----------------------------------------------------------------------------- layouts

def test_kaggle_folders_use_the_file_prefixes_for_splits(tmp_path):
    written = write_kaggle_layout(tmp_path / "fer")
    ds = load_dataset(tmp_path / "fer")
    assert ds.layout == "kaggle-folders"
    assert ds.classes == ("angry", "happy", "sad")
    assert counts_of(ds) == expected(written)
    assert ds.split_names == ("train", "validation", "test")
    for (emotion, split), files in written.items():
        for f in files:
            row = list(ds.files).index(f)
            assert (ds.label_names()[row], ds.splits[row]) == (emotion, split)
    assert ds.images.shape == (len(ds), 48, 48) and ds.images.dtype == np.uint8
    assert ds.labels.dtype == np.int16 and ds.problems == []


def test_kaggle_jpeg_pixels_survive_decoding(tmp_path):
    faces = make_face_images(6, seed=3)
    written = write_kaggle_layout(tmp_path, {"fear": (3, 2, 1)}, images=faces)
    ds = load_dataset(tmp_path)
    order = written[("fear", "train")] + written[("fear", "validation")] + written[("fear", "test")]
    for face, f in zip(faces, order):
        # JPEG at quality 95 is lossy, but only slightly
        assert np.abs(image_of(ds, f).astype(int) - face).mean() < 3


def test_folder_names_match_case_insensitively_with_aliases(tmp_path):
    names = {"train": "Train", "test": "TEST", "happy": "Happiness", "angry": "ANGRY", "sad": "Sadness"}
    written = write_kaggle_layout(tmp_path, folder_names=names)
    ds = load_dataset(tmp_path)
    assert ds.classes == ("angry", "happy", "sad")
    assert counts_of(ds) == expected(written)


def test_course_layout_is_read_exactly(tmp_path):
    faces = make_face_images(4 * 7, seed=1)
    written = write_course_layout(tmp_path, images=faces)
    ds = load_dataset(tmp_path)
    assert ds.layout == "split-folders"
    assert ds.classes == ("happy", "sad", "surprise", "neutral")
    assert counts_of(ds) == expected(written)
    first = written[("happy", "train")][0]
    np.testing.assert_array_equal(image_of(ds, first), faces[0])  # PNG is lossless


def test_split_folder_aliases(tmp_path):
    written = write_course_layout(tmp_path, split_names=("Training", "val", "Testing"), emotions=("happy", "sad"))
    ds = load_dataset(tmp_path)
    assert counts_of(ds) == expected(written)


def test_validation_folder_wins_over_kaggle_file_prefixes(tmp_path):
    """A course layout that kept Kaggle file names: its folders, not the prefixes, say the split."""
    for split, prefix in (("train", "Training"), ("validation", "PrivateTest"), ("test", "PublicTest")):
        folder = tmp_path / split / "happy"
        folder.mkdir(parents=True)
        (folder / f"{prefix}_1.png").write_bytes(encode(make_face_images(1)[0], "png"))
        (tmp_path / split / "sad").mkdir()
        (tmp_path / split / "sad" / f"{prefix}_2.png").write_bytes(encode(make_face_images(1)[0], "png"))
    ds = load_dataset(tmp_path)
    assert dict(zip(ds.files, ds.splits)) == {
        "train/happy/Training_1.png": "train", "train/sad/Training_2.png": "train",
        "validation/happy/PrivateTest_1.png": "validation", "validation/sad/PrivateTest_2.png": "validation",
        "test/happy/PublicTest_1.png": "test", "test/sad/PublicTest_2.png": "test"}


def test_fer2013_csv(tmp_path):
    faces = make_face_images(12, seed=2)
    written = write_fer_csv(tmp_path / "fer2013.csv", images=faces)
    for source in (tmp_path / "fer2013.csv", tmp_path):  # the file itself or its folder
        ds = load_dataset(source)
        assert ds.layout == "fer2013-csv"
        assert ds.classes == ("angry", "happy", "sad", "neutral")
        assert counts_of(ds) == expected(written)
        np.testing.assert_array_equal(ds.images, faces)
        assert ds.files[0] == "fer2013.csv:row 2"


def test_csv_without_usage_is_all_training(tmp_path):
    write_fer_csv(tmp_path / "fer2013.csv", {("happy", "x"): 2, ("sad", "x"): 3}, usage_column=False)
    ds = load_dataset(tmp_path / "fer2013.csv")
    assert ds.split_names == ("train",) and len(ds) == 5


def test_csv_bad_rows_are_listed_not_fatal(tmp_path):
    good = " ".join(["7"] * 2304)
    extra = ["3,1 2 3,Training", f"9,{good},Training", f"4,{good},Holdout",
             "5," + " ".join(["300"] * 2304) + ",Training",
             "6," + " ".join(["x"] * 2304) + ",PublicTest"]
    write_fer_csv(tmp_path / "fer2013.csv", {("happy", "Training"): 2}, extra_rows=extra)
    ds = load_dataset(tmp_path / "fer2013.csv")
    assert len(ds) == 2
    reasons = {p.file: p.reason for p in ds.problems}
    assert reasons["fer2013.csv:row 4"].startswith("wrong pixel count (3")
    assert reasons["fer2013.csv:row 5"] == "unknown emotion code"
    assert reasons["fer2013.csv:row 6"] == "unknown Usage"
    assert reasons["fer2013.csv:row 7"] == "pixel values outside 0–255"
    assert reasons["fer2013.csv:row 8"] == "non-numeric pixel values"


def test_csv_without_pixels_column_is_a_clear_error(tmp_path):
    (tmp_path / "fer2013.csv").write_text("label,image\n1,2\n")
    with pytest.raises(DataError, match="emotion,pixels"):
        load_dataset(tmp_path / "fer2013.csv")


@pytest.mark.parametrize("layout", ["kaggle", "course", "csv"])
def test_zips_of_every_layout_read_like_the_folder(tmp_path, layout):
    folder = tmp_path / "data"
    if layout == "kaggle":
        write_kaggle_layout(folder)
    elif layout == "course":
        write_course_layout(folder)
    else:
        write_fer_csv(folder / "fer2013.csv")
    plain = load_dataset(folder)
    zipped = load_dataset(zip_folder(folder, tmp_path / "data.zip", prefix="fer2013"))
    uploaded = load_dataset(zip_folder(folder), cache=False)  # bytes, as an upload
    for ds in (zipped, uploaded):
        assert ds.layout == plain.layout + " (zip)"
        assert counts_of(ds) == counts_of(plain)
        np.testing.assert_array_equal(ds.images, plain.images)
    assert uploaded.source == "uploaded zip"


def test_zip_ignores_macos_junk(tmp_path):
    write_course_layout(tmp_path / "data", emotions=("happy", "sad"))
    path = zip_folder(tmp_path / "data", tmp_path / "d.zip")
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("__MACOSX/train/happy/._happy_000.png", b"\x00\x05junk")
        zf.writestr("train/happy/.DS_Store", b"junk")
    ds = load_dataset(path)
    assert ds.problems == [] and len(ds) == 14


# ----------------------------------------------------------------------------- bad input

def test_bad_files_are_listed_never_fatal(tmp_path):
    write_course_layout(tmp_path, emotions=("happy", "sad"))
    bad = tmp_path / "train" / "sad"
    jpeg = encode(make_face_images(1, seed=9)[0], "jpg")
    (bad / "zero.jpg").write_bytes(b"")
    (bad / "half.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (bad / "no_end.jpg").write_bytes(jpeg[:-2])  # all pixel data, only the end marker missing
    (bad / "text.jpg").write_text("this is not an image")
    png = encode(make_face_images(1, seed=9)[0], "png")
    (bad / "cut.png").write_bytes(png[: len(png) // 2])
    big = np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1))
    (bad / "big.png").write_bytes(encode(big, "png"))
    (bad / "notes.txt").write_text("ignored: not an image")
    ds = load_dataset(tmp_path)
    reasons = {Path(p.file).name: p.reason for p in ds.problems}
    assert reasons["zero.jpg"] == "empty file (0 bytes)"
    assert reasons["half.jpg"] == "truncated image"
    assert reasons["no_end.jpg"] == "truncated image"
    assert reasons["text.jpg"].startswith("unreadable")
    assert reasons["cut.png"] == "truncated image"
    assert reasons["big.png"] == "resized from 64×64"
    assert set(reasons) == {"zero.jpg", "half.jpg", "no_end.jpg", "text.jpg", "cut.png", "big.png"}
    assert len(ds) == 14 + 1  # the good images plus the resized one
    resized = image_of(ds, "train/sad/big.png")
    assert resized.shape == (48, 48) and resized[0, 0] < resized[0, -1]  # the gradient survives resizing


def test_all_files_unreadable_is_a_clear_error(tmp_path):
    (tmp_path / "train" / "happy").mkdir(parents=True)
    (tmp_path / "train" / "happy" / "a.jpg").write_text("nope")
    with pytest.raises(DataError, match="none of the 1 images"):
        load_dataset(tmp_path)


def test_empty_folder_names_the_supported_layouts(tmp_path):
    with pytest.raises(DataError, match="is empty. Supported layouts: Kaggle folders"):
        load_dataset(tmp_path)


def test_unrecognised_folder_names_the_supported_layouts(tmp_path):
    (tmp_path / "photos" / "holiday").mkdir(parents=True)
    (tmp_path / "photos" / "holiday" / "beach.png").write_bytes(encode(make_face_images(1)[0], "png"))
    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(DataError, match="1 images but none inside an emotion folder. Supported layouts"):
        load_dataset(tmp_path)
    (tmp_path / "photos" / "holiday" / "beach.png").unlink()
    with pytest.raises(DataError, match="no images and no fer2013.csv"):
        load_dataset(tmp_path)


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "does not exist"),
    (lambda p: (p / "notes.txt").write_text("x") and p / "notes.txt", "neither a folder, a .zip nor a .csv"),
    (lambda p: (p / "broken.zip").write_bytes(b"PK not really") and p / "broken.zip", "not a readable zip"),
])
def test_bad_sources_are_clear_errors(tmp_path, make, message):
    with pytest.raises(DataError, match=message):
        load_dataset(make(tmp_path))


# ----------------------------------------------------------------------------- subsets and splits

def test_label_subsets_reindex(tmp_path):
    write_kaggle_layout(tmp_path, {"angry": (2, 1, 1), "happy": (3, 1, 0), "sad": (1, 1, 1), "neutral": (2, 0, 0)})
    ds = load_dataset(tmp_path)
    sub = ds.subset(["sad", "Happy"])
    assert sub.classes == ("happy", "sad")
    assert sorted(set(sub.labels.tolist())) == [0, 1]
    assert list(sub.counts()["total"]) == [4, 3]
    assert (sub.label_names() == np.where(sub.labels == 0, "happy", "sad")).all()
    assert sub.fingerprint == ds.fingerprint
    with pytest.raises(DataError, match="no surprise images"):
        ds.subset(["happy", "surprise"])


def test_four_class_subset_of_seven(tmp_path):
    counts = {e: (1, 1, 0) for e in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")}
    write_kaggle_layout(tmp_path, counts)
    sub = load_dataset(tmp_path).subset(FOUR_CLASS)
    assert sub.classes == FOUR_CLASS and len(sub) == 8


def test_resolve_split_prefers_private_test(tmp_path):
    write_kaggle_layout(tmp_path)
    ds = load_dataset(tmp_path)
    rows, what = resolve_split(ds, "test")
    assert what == "test" and set(rows.splits) == {"test"} and len(rows) == 4
    rows, what = resolve_split(ds, "validation")
    assert what == "validation" and len(rows) == 5


def test_resolve_split_falls_back_to_public_test(tmp_path):
    write_kaggle_layout(tmp_path, {"happy": (2, 2, 0), "sad": (2, 1, 0)})
    ds = load_dataset(tmp_path)
    rows, what = resolve_split(ds, "test")
    assert set(rows.splits) == {"validation"} and len(rows) == 3
    assert "PublicTest" in what


def test_resolve_split_errors(tmp_path):
    write_course_layout(tmp_path, {"train": 2}, emotions=("happy", "sad"))
    ds = load_dataset(tmp_path)
    with pytest.raises(DataError, match="no test images"):
        resolve_split(ds, "test")
    with pytest.raises(DataError, match="unknown split"):
        ds.split("holdout")


# ----------------------------------------------------------------------------- cache and progress

def test_cache_is_used_and_invalidated_when_a_file_changes(tmp_path):
    written = write_course_layout(tmp_path / "d", {"train": 2, "validation": 1}, emotions=("happy", "sad"))
    first = load_dataset(tmp_path / "d")
    assert not first.from_cache
    assert list((tmp_path / "cache" / "datasets").glob(f"{first.fingerprint}*.npz"))
    second = load_dataset(tmp_path / "d")
    assert second.from_cache and second.fingerprint == first.fingerprint
    np.testing.assert_array_equal(second.images, first.images)
    assert list(second.files) == list(first.files) and second.classes == first.classes

    target = tmp_path / "d" / written[("sad", "train")][0]
    new_face = np.full((48, 48), 7, np.uint8)
    target.write_bytes(encode(new_face, "png"))
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10**9))
    third = load_dataset(tmp_path / "d")
    assert not third.from_cache and third.fingerprint != first.fingerprint
    np.testing.assert_array_equal(image_of(third, written[("sad", "train")][0]), new_face)


def test_cache_keeps_problems_and_survives_damage(tmp_path):
    write_course_layout(tmp_path / "d", {"train": 2}, emotions=("happy", "sad"))
    (tmp_path / "d" / "train" / "sad" / "bad.jpg").write_bytes(b"")
    first = load_dataset(tmp_path / "d")
    cached = load_dataset(tmp_path / "d")
    assert cached.from_cache and cached.problems == first.problems != []
    for f in (tmp_path / "cache" / "datasets").glob("*.npz"):
        f.write_bytes(b"garbage")
    rebuilt = load_dataset(tmp_path / "d")
    assert not rebuilt.from_cache and len(rebuilt) == len(first)


def test_no_cache_writes_nothing(tmp_path):
    write_course_layout(tmp_path / "d", {"train": 1}, emotions=("happy", "sad"))
    load_dataset(tmp_path / "d", cache=False)
    assert not (tmp_path / "cache").exists()
    assert data.default_cache_dir() == tmp_path / "cache"


def test_progress_reaches_the_total(tmp_path):
    write_course_layout(tmp_path, {"train": 3}, emotions=("happy", "sad"))
    calls = []
    load_dataset(tmp_path, progress=lambda done, total, msg: calls.append((done, total, msg)))
    assert calls[-1][0] == calls[-1][1] and "6" in calls[-1][2]
    assert all(0 <= d <= t for d, t, _ in calls)


def test_default_data_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_DATA_DIR", str(tmp_path))
    assert data.default_data_dir() == tmp_path


# ----------------------------------------------------------------------------- the real dataset

@pytest.mark.skipif(not FER2013.exists(), reason=f"FER2013 not found at {FER2013}")
def test_real_fer2013_counts():
    ds = load_dataset(FER2013)
    counts = ds.counts()
    assert ds.layout == "kaggle-folders"
    assert counts["train"].sum() == 28_709 and counts["validation"].sum() == 3_589
    assert ds.classes == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert counts.loc["disgust", "train"] == 436 and counts.loc["happy", "train"] == 7_215
    assert ds.problems == []
    rows, what = resolve_split(ds, "test")
    assert len(rows) == 3_589 and "PublicTest" in what
