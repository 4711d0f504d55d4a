"""fer_core.data.explore: counts, imbalance, samples, mean faces and distributions against known answers."""
from __future__ import annotations

import numpy as np
import pytest

from fer_core.data import explore
from fer_core.data.fer_dataset import FerDataset
from tests.fixtures import make_face_images


def dataset(images, labels, splits, classes=("happy", "sad")) -> FerDataset:
    images = np.asarray(images, dtype=np.uint8)
    return FerDataset(images, np.asarray(labels, dtype=np.int16), np.asarray(splits),
                      np.array([f"f{i}.png" for i in range(len(images))]), tuple(classes))


@pytest.fixture
def faces() -> FerDataset:
    """20 happy (14 train, 6 validation) and 5 sad (4 train, 1 test) faces."""
    labels = [0] * 20 + [1] * 5
    splits = ["train"] * 14 + ["validation"] * 6 + ["train"] * 4 + ["test"]
    return dataset(make_face_images(25, seed=4), labels, splits)


def test_counts_and_imbalance(faces):
    table = explore.class_counts(faces)
    assert table.loc["happy"].to_dict() == {"train": 14, "validation": 6, "test": 0, "total": 20}
    assert table.loc["sad"].to_dict() == {"train": 4, "validation": 0, "test": 1, "total": 5}
    assert explore.imbalance_ratio(faces) == 4.0
    assert explore.imbalance_ratio(faces, "train") == 3.5
    assert explore.imbalance_ratio(table, "train") == 3.5  # the counts table works too
    assert explore.imbalance_ratio(faces, "validation") == float("inf")  # no sad validation images
    long = explore.counts_long(faces)
    assert list(long.columns) == ["emotion", "split", "count"]
    assert len(long) == 6 and long["count"].sum() == 25
    assert long.set_index(["emotion", "split"]).loc[("happy", "validation"), "count"] == 6


def test_sample_indices_are_per_class_seeded_and_reshuffle(faces):
    picked = explore.sample_indices(faces, per_class=4, seed=1)
    assert set(picked) == {"happy", "sad"}
    assert len(picked["happy"]) == 4 and len(set(picked["happy"])) == 4
    assert (faces.labels[picked["happy"]] == 0).all() and (faces.labels[picked["sad"]] == 1).all()
    again = explore.sample_indices(faces, per_class=4, seed=1)
    assert all((again[k] == picked[k]).all() for k in picked)
    other = explore.sample_indices(faces, per_class=4, seed=2)
    assert not (other["happy"] == picked["happy"]).all()
    assert len(explore.sample_indices(faces, per_class=10)["sad"]) == 5  # capped at the class size


def test_mean_faces_are_exact(monkeypatch):
    images = np.stack([np.full((48, 48), v) for v in (10, 30, 200, 100)])
    images[0, 0, 0] = 250
    ds = dataset(images, [0, 0, 1, 1], ["train"] * 4)
    means = explore.mean_faces(ds)
    assert means["happy"][5, 5] == 20 and means["happy"][0, 0] == 140
    assert means["sad"].dtype == np.float32 and (means["sad"] == 150).all()
    faces = dataset(make_face_images(30, seed=5), np.arange(30) % 2, ["train"] * 30)
    whole = explore.mean_faces(faces)
    monkeypatch.setattr(explore, "_CHUNK", 7)  # the chunked path agrees with one pass
    chunked = explore.mean_faces(faces)
    np.testing.assert_allclose(whole["sad"], faces.images[1::2].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(chunked["happy"], whole["happy"], rtol=1e-6)


def test_intensity_histograms():
    images = np.stack([np.zeros((48, 48)), np.full((48, 48), 255), np.full((48, 48), 255)])
    images[0, :24] = 130  # half the first happy image at 130
    ds = dataset(images, [0, 0, 1], ["train"] * 3)
    hist = explore.intensity_histograms(ds, bins=32)
    happy = hist[hist.emotion == "happy"].set_index("intensity")["density"]
    assert len(happy) == 32 and happy.sum() == pytest.approx(1.0)
    assert happy.iloc[0] == pytest.approx(0.25) and happy.iloc[16] == pytest.approx(0.25)  # 130 // 8 = 16
    assert happy.iloc[31] == pytest.approx(0.5)
    assert happy.index[0] == 3.5  # bin centre of 0–7
    assert hist[hist.emotion == "sad"]["density"].iloc[-1] == 1.0
    with pytest.raises(ValueError, match="divide 256"):
        explore.intensity_histograms(ds, bins=30)


def test_image_stats_and_their_distributions(faces, monkeypatch):
    stats = explore.image_stats(faces)
    flat = faces.images.reshape(len(faces), -1).astype(np.float64)
    np.testing.assert_allclose(stats["brightness"], flat.mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(stats["contrast"], flat.std(axis=1), rtol=1e-4)
    assert list(stats["file"]) == list(faces.files) and list(stats["emotion"][:1]) == ["happy"]
    monkeypatch.setattr(explore, "_CHUNK", 6)
    np.testing.assert_allclose(explore.image_stats(faces)["contrast"], stats["contrast"], rtol=1e-6)

    hist = explore.stat_histograms(stats, "brightness", bins=10)
    assert set(hist.emotion) == {"happy", "sad"}
    assert hist.groupby("emotion", observed=True)["density"].sum().tolist() == pytest.approx([1.0, 1.0])
    happy = hist[hist.emotion == "happy"]
    sad = hist[hist.emotion == "sad"]
    assert list(happy["brightness"]) == list(sad["brightness"])  # shared bins
    darkest = stats["brightness"].idxmin()
    assert happy["brightness"].iloc[0] > stats["brightness"][darkest]  # bin centre above the minimum
