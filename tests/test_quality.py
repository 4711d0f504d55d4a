"""fer_core.data.quality: pHash, pair search, and a planted dataset whose every finding is known."""
from __future__ import annotations

import io

import cv2
import numpy as np
import pandas as pd
import pytest

from fer_core.data import quality
from fer_core.data.fer_dataset import FerDataset
from tests.fixtures import make_face_images


def reference_phash(image: np.ndarray) -> int:
    """pHash the textbook way: OpenCV area resize to 32×32, OpenCV DCT, 8×8 block against its median."""
    small = cv2.resize(image.astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small.astype(np.float64))[:8, :8]
    return int(np.packbits((low > np.median(low)).ravel()).view(">u8")[0])


def test_phash_matches_the_textbook_definition():
    faces = make_face_images(60, seed=7)
    ours = quality.phash(faces)
    assert ours.dtype == np.uint64
    assert [int(h) for h in ours] == [reference_phash(f) for f in faces]


def test_phash_tolerates_small_edits_but_separates_people():
    faces = make_face_images(30, seed=8, distinct=True)
    hashes = quality.phash(faces)
    edited = np.clip(faces[0].astype(int) + 12 + np.random.default_rng(0).normal(0, 2, (48, 48)), 0, 255)
    assert quality.hamming(quality.phash(edited[None].astype(np.uint8))[0], hashes[0]) <= quality.NEAR_DISTANCE
    dist = quality.hamming(hashes[:, None], hashes[None, :])
    np.fill_diagonal(dist, 64)
    assert dist.min() > quality.NEAR_DISTANCE


def test_pair_search_equals_brute_force_across_blocks():
    rng = np.random.default_rng(3)
    hashes = rng.integers(0, 2**63, size=1300, dtype=np.uint64)
    for i, j, bits in ((5, 1200, [0]), (600, 601, [3, 40]), (10, 700, [1, 2, 60]), (513, 1299, [7, 8, 9, 10, 11])):
        hashes[j] = hashes[i] ^ np.uint64(sum(1 << b for b in bits))
    found = quality.near_duplicate_pairs(hashes, max_distance=3)
    dist = quality.hamming(hashes[:, None], hashes[None, :])
    ii, jj = np.nonzero(np.triu(dist <= 3, k=1))
    assert {tuple(p) for p in found.tolist()} == {(i, j, int(dist[i, j])) for i, j in zip(ii, jj)}
    assert {(i, j) for i, j, _ in found.tolist()} >= {(5, 1200), (600, 601), (10, 700)}
    subset = quality.near_duplicate_pairs(hashes, 3, candidates=np.array([5, 10, 600, 700]))
    assert subset[:, :2].tolist() == [[10, 700]]


# ----------------------------------------------------------------------------- a planted dataset

@pytest.fixture(scope="module")
def planted() -> FerDataset:
    """38 distinct faces plus planted copies, variants and blank images, with known answers.

    exact:  train/0 copied into validation (leakage); train/1 copied within train, relabelled (conflict)
    near:   train/2 brightened into test (leakage); validation/20 brightened within validation
    blank:  a constant train image and a faint-noise test image
    """
    faces = make_face_images(38, seed=11, distinct=True)
    rng = np.random.default_rng(0)

    def brighter(img):
        return np.clip(img.astype(int) + 10 + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)

    rows = [(faces[i], i % 2, "train", f"train/{i}.png") for i in range(20)]
    rows += [(faces[i], i % 2, "validation", f"validation/{i}.png") for i in range(20, 30)]
    rows += [(faces[i], i % 2, "test", f"test/{i}.png") for i in range(30, 38)]
    rows += [(faces[0], 0, "validation", "validation/copy_of_train_0.png"),
             (faces[1], 0, "train", "train/copy_of_train_1.png"),
             (brighter(faces[2]), 0, "test", "test/variant_of_train_2.png"),
             (brighter(faces[20]), 0, "validation", "validation/variant_of_validation_20.png"),
             (np.full((48, 48), 128, np.uint8), 1, "train", "train/blank.png"),
             (np.clip(90 + rng.normal(0, 1, (48, 48)), 0, 255).astype(np.uint8), 0, "test", "test/faint.png"),
             (np.full((48, 48), 128, np.uint8), 0, "test", "test/blank_copy.png")]
    images, labels, splits, files = zip(*rows)
    return FerDataset(np.stack(images), np.array(labels, np.int16), np.array(splits), np.array(files),
                      ("happy", "sad"))


def test_blank_images_are_flagged(planted):
    blank = quality.blank_images(planted)
    assert set(blank["file"]) == {"train/blank.png", "test/faint.png", "test/blank_copy.png"}
    assert (blank["contrast"] < quality.BLANK_STD).all()


def test_planted_findings(planted):
    calls = []
    report = quality.scan(planted, progress=lambda d, t, m: calls.append((d, t)))
    assert calls[-1][0] == calls[-1][1] and all(b[0] >= a[0] for a, b in zip(calls, calls[1:]))

    groups = {frozenset(g["file"]): (g["leakage"].iloc[0], g["conflict"].iloc[0])
              for _, g in report.exact.groupby("group")}
    assert groups == {frozenset({"train/0.png", "validation/copy_of_train_0.png"}): (True, False),
                      frozenset({"train/1.png", "train/copy_of_train_1.png"}): (False, True)}  # blanks excluded

    pairs = {(a, b): leak for a, b, leak in report.near[["a_file", "b_file", "leakage"]].itertuples(index=False)}
    assert pairs == {("train/2.png", "test/variant_of_train_2.png"): True,
                     ("validation/20.png", "validation/variant_of_validation_20.png"): False}
    assert (report.near["distance"] <= quality.NEAR_DISTANCE).all()

    assert report.leaking_files() == {"train/0.png", "validation/copy_of_train_0.png",
                                      "train/2.png", "test/variant_of_train_2.png"}
    summary = report.summary()
    assert summary["blank images"] == 3 and summary["exact duplicate groups"] == 2
    assert summary["exact groups across splits (leakage)"] == 1
    assert summary["near-duplicate pairs"] == 2 and summary["near-duplicate pairs across splits (leakage)"] == 1
    assert summary["duplicates with conflicting labels"] == 1


def test_findings_table_is_csv_ready(planted):
    findings = quality.scan(planted).findings()
    assert list(findings.columns) == ["file", "split", "label", "issue", "group", "matched_file", "detail", "index"]
    by_file = findings.set_index(["file", "issue"])
    assert by_file.loc[("validation/copy_of_train_0.png", "exact duplicate across splits (leakage)"),
                       "matched_file"] == "train/0.png"
    assert by_file.loc[("train/copy_of_train_1.png", "exact duplicate"), "detail"].endswith("labels disagree")
    assert by_file.loc[("test/variant_of_train_2.png", "near duplicate across splits (leakage)"),
                       "matched_file"] == "train/2.png"
    assert by_file.loc[("validation/20.png", "near duplicate"), "group"].startswith("N")
    assert by_file.loc[("train/blank.png", "blank/near-constant"), "label"] == "sad"
    assert len(findings) == 3 + 4 + 4
    again = pd.read_csv(io.StringIO(findings.to_csv(index=False)), keep_default_na=False)
    assert again["file"].tolist() == findings["file"].tolist()


def test_clean_data_has_no_findings():
    faces = make_face_images(20, seed=12, distinct=True)
    ds = FerDataset(faces, np.arange(20, dtype=np.int16) % 2, np.array(["train"] * 10 + ["test"] * 10),
                    np.array([f"{i}.png" for i in range(20)]), ("happy", "sad"))
    report = quality.scan(ds)
    assert report.findings().empty and report.leaking_files() == set()
    assert set(report.summary().values()) == {0}


def test_pair_groups_are_connected_components():
    pairs = pd.DataFrame({"a_index": [1, 2, 10, 7, 5, 40], "b_index": [2, 3, 11, 40, 7, 41]})
    groups = quality.pair_groups(pairs)
    assert groups[1] == groups[2] == groups[3]
    assert groups[10] == groups[11]
    assert groups[5] == groups[7] == groups[40] == groups[41]  # a chain 5–7–40–41
    assert len({groups[1], groups[10], groups[5]}) == 3 and sorted(set(groups)) == [0, 1, 2]
    rng = np.random.default_rng(0)  # a long random graph against a reference flood fill
    edges = pd.DataFrame({"a_index": rng.integers(0, 300, 250), "b_index": rng.integers(0, 300, 250)})
    ours = quality.pair_groups(edges)
    seen, reference = {}, 0
    adjacency = {}
    for x, y in edges.itertuples(index=False):
        adjacency.setdefault(x, set()).add(y)
        adjacency.setdefault(y, set()).add(x)
    for start in sorted(adjacency):
        if start in seen:
            continue
        stack = [start]
        while stack:
            node = stack.pop()
            if node not in seen:
                seen[node] = reference
                stack.extend(adjacency[node])
        reference += 1
    same_ours = ours.to_numpy()[:, None] == ours.to_numpy()[None, :]
    ref = np.array([seen[n] for n in ours.index])
    assert (same_ours == (ref[:, None] == ref[None, :])).all()
