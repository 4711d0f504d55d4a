"""Data-quality scans of a `FerDataset`: blank images, exact and near duplicates, cross-split leakage.

* blank / near-constant: pixel standard deviation below a threshold (no face to learn from);
* exact duplicates: identical pixel arrays (grouped by a hash of their bytes);
* near duplicates: perceptual hashes (pHash: the signs of the 8×8 lowest DCT frequencies of a
  32×32 downscale, against their median) within a small Hamming distance;
* leakage: any duplicate whose copies sit in different splits, which inflates test scores.

Everything is vectorised (matrix-product DCT, blocked XOR + popcount) so full FER2013 takes seconds.
`scan()` runs them all and returns a `QualityReport` of DataFrames with a CSV-ready `findings()` table.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .fer_dataset import FerDataset
from ..base.progress import ProgressFn
from .explore import image_stats

BLANK_STD = 4.0  # pixel std (0–255 scale) below which an image counts as blank / near-constant
NEAR_DISTANCE = 4  # max Hamming distance (of 64 pHash bits) for a near duplicate
_HASH_SIDE, _LOW = 32, 8  # pHash: downscale side and low-frequency block side
_BLOCK = 512  # rows per blocked all-pairs comparison step


# ----------------------------------------------------------------------------- hashing

def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix: `D @ x` is the DCT of the column vector x."""
    k, i = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    d = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    d[0] /= np.sqrt(2.0)
    return d


def _area_matrix(src: int, dst: int) -> np.ndarray:
    """Area-averaging resize as a matrix: `A @ x` shrinks a length-`src` signal to `dst` samples."""
    a = np.zeros((dst, src))
    scale = src / dst
    for o in range(dst):
        lo, hi = o * scale, (o + 1) * scale
        for i in range(int(np.floor(lo)), min(int(np.ceil(hi)), src)):
            a[o, i] = (min(hi, i + 1) - max(lo, i)) / scale
    return a


def phash(images: np.ndarray, progress: ProgressFn | None = None) -> np.ndarray:
    """64-bit perceptual hashes (uint64) of an N×H×W uint8 stack.

    Downscale to 32×32 and take the 8×8 lowest DCT frequencies — one matrix product per side — then
    set each bit where the coefficient exceeds the block's median (as in the `imagehash` library).
    """
    n, h, w = images.shape
    dct = _dct_matrix(_HASH_SIDE)[:_LOW]
    left = (dct @ _area_matrix(h, _HASH_SIDE)).astype(np.float32)  # 8×H
    right = (dct @ _area_matrix(w, _HASH_SIDE)).T.astype(np.float32)  # W×8
    out = np.empty(n, dtype=np.uint64)
    step = 4096
    for start in range(0, n, step):
        x = images[start:start + step].astype(np.float32)
        coeffs = (left @ x @ right).reshape(len(x), _LOW * _LOW)
        bits = coeffs > np.median(coeffs, axis=1, keepdims=True)
        out[start:start + step] = np.packbits(bits, axis=1).view(">u8").ravel()
        if progress:
            progress(min(start + step, n), n, f"perceptual hashes: {min(start + step, n):,} of {n:,}")
    return out


def hamming(a, b) -> np.ndarray:
    """Number of differing bits between uint64 hashes (broadcasting)."""
    return np.bitwise_count(np.bitwise_xor(np.asarray(a, np.uint64), np.asarray(b, np.uint64)))


def byte_hashes(images: np.ndarray) -> np.ndarray:
    """A 128-bit BLAKE2 digest of each image's pixel bytes, as hex strings (equal ⇔ identical pixels)."""
    flat = np.ascontiguousarray(images).reshape(len(images), -1)
    return np.array([hashlib.blake2b(row.tobytes(), digest_size=16).hexdigest() for row in flat])


# ----------------------------------------------------------------------------- scans

def _frame(dataset: FerDataset, rows: np.ndarray, prefix: str = "") -> pd.DataFrame:
    """index/file/split/emotion columns of `rows`, optionally prefixed (for pair tables)."""
    return pd.DataFrame({f"{prefix}index": rows, f"{prefix}file": dataset.files[rows],
                         f"{prefix}split": dataset.splits[rows],
                         f"{prefix}emotion": np.asarray(dataset.classes, dtype=object)[dataset.labels[rows]]
                         if len(rows) else np.array([], dtype=object)})


def blank_images(dataset: FerDataset, std_threshold: float = BLANK_STD,
                 stats: pd.DataFrame | None = None) -> pd.DataFrame:
    """Images whose pixel std is below `std_threshold`: index, file, split, emotion, brightness, contrast."""
    stats = image_stats(dataset) if stats is None else stats
    found = stats[stats["contrast"] < std_threshold]
    return found[["index", "file", "split", "emotion", "brightness", "contrast"]].reset_index(drop=True)


def exact_duplicates(dataset: FerDataset, hashes: np.ndarray | None = None,
                     exclude: np.ndarray | None = None) -> pd.DataFrame:
    """Images whose pixels are identical to another's: one row per image, with `group` and `leakage`.

    `leakage` is True when a group spans more than one split; `conflict` when its labels disagree.
    `exclude` masks rows to skip (e.g. blank images, reported on their own).
    """
    hashes = byte_hashes(dataset.images) if hashes is None else hashes
    codes, uniques = pd.factorize(hashes)
    if exclude is not None:
        codes = np.where(exclude, -1, codes)
    sizes = np.bincount(codes[codes >= 0], minlength=len(uniques))
    rows = np.flatnonzero((codes >= 0) & (sizes[np.maximum(codes, 0)] > 1))
    out = _frame(dataset, rows)
    out.insert(0, "group", pd.factorize(codes[rows])[0] if len(rows) else np.array([], dtype=np.int64))
    return _mark_groups(out)


def _mark_groups(table: pd.DataFrame) -> pd.DataFrame:
    """Add group size, leakage (more than one split) and conflict (more than one label) columns."""
    grouped = table.groupby("group")
    table["size"] = grouped["index"].transform("size").astype(int)
    table["leakage"] = grouped["split"].transform("nunique").astype(int) > 1
    table["conflict"] = grouped["emotion"].transform("nunique").astype(int) > 1
    return table.sort_values(["group", "index"]).reset_index(drop=True)


def near_duplicate_pairs(hashes: np.ndarray, max_distance: int = NEAR_DISTANCE,
                         candidates: np.ndarray | None = None,
                         progress: ProgressFn | None = None) -> np.ndarray:
    """All pairs (i, j, distance), i < j, of hashes within `max_distance` bits, as an int64 K×3 array.

    Brute force over all pairs in blocks (XOR + popcount), restricted to the `candidates` rows if given.
    """
    rows = np.arange(len(hashes)) if candidates is None else np.asarray(candidates)
    h = np.asarray(hashes, dtype=np.uint64)[rows]
    n = len(h)
    found = []
    total_pairs = n * (n - 1) // 2
    done_pairs = 0
    for start in range(0, n, _BLOCK):
        block = h[start:start + _BLOCK]
        dist = np.bitwise_count(block[:, None] ^ h[None, start:])
        ii, jj = np.nonzero(dist <= max_distance)
        keep = jj > ii  # the block's own diagonal and lower triangle
        ii, jj = ii[keep], jj[keep]
        found.append(np.stack([rows[ii + start], rows[jj + start], dist[ii, jj].astype(np.int64)], axis=1))
        done_pairs += len(block) * (n - start) - len(block) * (len(block) + 1) // 2
        if progress:
            progress(done_pairs, max(total_pairs, 1), f"compared {done_pairs:,} of {total_pairs:,} image pairs")
    return np.concatenate(found) if found else np.zeros((0, 3), dtype=np.int64)


def near_duplicates(dataset: FerDataset, max_distance: int = NEAR_DISTANCE, *,
                    hashes: np.ndarray | None = None, exclude: np.ndarray | None = None,
                    same_group: np.ndarray | None = None, progress: ProgressFn | None = None) -> pd.DataFrame:
    """Pairs of different images whose pHashes differ in at most `max_distance` bits.

    `exclude` masks rows to skip (e.g. blank images, which all look alike); pairs with equal
    `same_group` ids (e.g. exact-duplicate groups, already reported) are dropped. Columns: a_*, b_*
    (index, file, split, emotion), distance, leakage (the two are in different splits), conflict (labels differ).
    """
    hashes = phash(dataset.images) if hashes is None else hashes
    candidates = np.flatnonzero(~exclude) if exclude is not None else None
    pairs = near_duplicate_pairs(hashes, max_distance, candidates, progress)
    if same_group is not None and len(pairs):
        pairs = pairs[same_group[pairs[:, 0]] != same_group[pairs[:, 1]]]
    out = pd.concat([_frame(dataset, pairs[:, 0], "a_"), _frame(dataset, pairs[:, 1], "b_")], axis=1)
    out["distance"] = pairs[:, 2]
    out["leakage"] = out["a_split"] != out["b_split"]
    out["conflict"] = out["a_emotion"] != out["b_emotion"]
    return out.sort_values(["distance", "a_index", "b_index"]).reset_index(drop=True)


def pair_groups(pairs: pd.DataFrame) -> pd.Series:
    """Connected components of near-duplicate pairs: a group id (0, 1, …) for every image index in them."""
    if pairs.empty:
        return pd.Series(dtype=np.int64, name="group")
    nodes, inverse = np.unique(np.concatenate([pairs["a_index"], pairs["b_index"]]), return_inverse=True)
    a, b = inverse[:len(pairs)], inverse[len(pairs):]
    label = np.arange(len(nodes))
    while True:  # propagate the smallest label along edges until nothing changes
        low = np.minimum(label[a], label[b])
        new = label.copy()
        np.minimum.at(new, a, low)
        np.minimum.at(new, b, low)
        new = new[new]  # pointer jumping: follow labels to their own label
        if (new == label).all():
            break
        label = new
    return pd.Series(np.unique(label, return_inverse=True)[1], index=nodes, name="group")


# ----------------------------------------------------------------------------- report

@dataclass
class QualityReport:
    """Results of `scan`: blank images, exact-duplicate groups and near-duplicate pairs."""

    blank: pd.DataFrame
    exact: pd.DataFrame
    near: pd.DataFrame
    settings: dict = field(default_factory=dict)

    def summary(self) -> dict[str, int]:
        """Headline counts: blank images, duplicate images/groups, near pairs and leaking ones."""
        exact_leak = self.exact[self.exact["leakage"]]
        return {
            "blank images": len(self.blank),
            "exact duplicate images": len(self.exact),
            "exact duplicate groups": int(self.exact["group"].nunique()),
            "exact groups across splits (leakage)": int(exact_leak["group"].nunique()),
            "near-duplicate pairs": len(self.near),
            "near-duplicate pairs across splits (leakage)": int(self.near["leakage"].sum()),
            "duplicates with conflicting labels": int(self.exact.loc[self.exact["conflict"], "group"].nunique()
                                                      + self.near["conflict"].sum()),
        }

    def leaking_files(self) -> set[str]:
        """Files that have an exact or near duplicate in another split."""
        near = self.near[self.near["leakage"]]
        return set(self.exact.loc[self.exact["leakage"], "file"]) | set(near["a_file"]) | set(near["b_file"])

    def findings(self) -> pd.DataFrame:
        """One row per flagged image: file, split, label, issue, group, matched_file, detail (CSV-ready)."""
        cols = ["file", "split", "label", "issue", "group", "matched_file", "detail", "index"]
        parts = []
        if len(self.blank):
            b = self.blank
            parts.append(pd.DataFrame({"file": b["file"], "split": b["split"], "label": b["emotion"].astype(str),
                                       "issue": "blank/near-constant", "group": "", "matched_file": "",
                                       "detail": [f"pixel std {s:.2f}, mean {m:.1f}" for s, m in
                                                  zip(b["contrast"], b["brightness"])], "index": b["index"]}))
        if len(self.exact):
            e = self.exact  # sorted by group, then index
            rank = e.groupby("group").cumcount()
            first = e["group"].map(e.loc[rank == 0].set_index("group")["file"])
            second = e["group"].map(e.loc[rank == 1].set_index("group")["file"])
            pairs = e.drop_duplicates(["group", "split"]).sort_values("split")
            splits = e["group"].map(pairs.groupby("group")["split"].agg(", ".join))
            parts.append(pd.DataFrame({
                "file": e["file"], "split": e["split"], "label": e["emotion"],
                "issue": np.where(e["leakage"], "exact duplicate across splits (leakage)", "exact duplicate"),
                "group": "E" + e["group"].astype(str), "matched_file": np.where(e["file"] == first, second, first),
                "detail": [f"{n} identical images in {s}" + ("; labels disagree" if c else "")
                           for n, s, c in zip(e["size"], splits, e["conflict"])],
                "index": e["index"]}))
        if len(self.near):
            parts.append(self._near_findings())
        if not parts:
            return pd.DataFrame(columns=cols)
        return pd.concat(parts, ignore_index=True)[cols]

    def _near_findings(self) -> pd.DataFrame:
        """Each image of a near pair, with its closest partner (a cross-split partner first)."""
        n = self.near
        both = pd.concat([
            n.rename(columns=lambda c: c.replace("a_", "").replace("b_", "matched_") if c[:2] in ("a_", "b_") else c),
            n.rename(columns=lambda c: c.replace("b_", "").replace("a_", "matched_") if c[:2] in ("a_", "b_") else c),
        ], ignore_index=True)
        both = both.sort_values(["index", "leakage", "distance"], ascending=[True, False, True])
        best = both.drop_duplicates("index").copy()
        groups = pair_groups(n)
        return pd.DataFrame({
            "file": best["file"], "split": best["split"], "label": best["emotion"],
            "issue": np.where(best["leakage"], "near duplicate across splits (leakage)", "near duplicate"),
            "group": "N" + groups.loc[best["index"]].astype(str).to_numpy(), "matched_file": best["matched_file"],
            "detail": [f"pHash distance {d} to a {s} image" + ("; labels disagree" if c else "")
                       for d, s, c in zip(best["distance"], best["matched_split"], best["conflict"])],
            "index": best["index"]})


def scan(dataset: FerDataset, std_threshold: float = BLANK_STD, max_distance: int = NEAR_DISTANCE,
         progress: ProgressFn | None = None) -> QualityReport:
    """Run every scan: blank images, then exact and near duplicates among the non-blank images.

    Near pairs between exact copies are left out (already reported as exact duplicates).
    """
    def report(stage_start: float, stage_share: float):
        if progress is None:
            return None
        return lambda done, total, msg: progress(int(1000 * (stage_start + stage_share * done / max(total, 1))),
                                                 1000, msg)

    say = report(0, 0)
    if say:
        say(0, 1, "measuring contrast")
    stats = image_stats(dataset)
    blank = blank_images(dataset, std_threshold, stats)
    is_blank = np.zeros(len(dataset), dtype=bool)
    is_blank[blank["index"].to_numpy()] = True
    if say:
        say(0, 1, "hashing pixel bytes")
    digests = byte_hashes(dataset.images)
    exact = exact_duplicates(dataset, digests, exclude=is_blank)
    hashes = phash(dataset.images, report(0.05, 0.1))
    near = near_duplicates(dataset, max_distance, hashes=hashes, exclude=is_blank,
                           same_group=pd.factorize(digests)[0], progress=report(0.15, 0.85))
    return QualityReport(blank, exact, near, {"std_threshold": std_threshold, "max_distance": max_distance})


def duplicated_in(images: np.ndarray, reference: np.ndarray, max_distance: int = NEAR_DISTANCE) -> np.ndarray:
    """A mask over `images`: True where an image has an exact or near duplicate (pHash within
    `max_distance` bits, the scan's threshold) among `reference` — e.g. training faces that also sit in
    the validation or test split, which training must drop to keep those scores honest."""
    if not len(reference):
        return np.zeros(len(images), dtype=bool)
    found = np.isin(byte_hashes(images), byte_hashes(reference))
    ref, hashes = phash(reference), phash(images)
    for start in range(0, len(hashes), _BLOCK):
        block = hashes[start:start + _BLOCK]
        found[start:start + _BLOCK] |= (hamming(block[:, None], ref[None, :]) <= max_distance).any(axis=1)
    return found
