"""Descriptive statistics of a `FerDataset`: class balance, samples, mean faces and pixel distributions.

Small pure functions over the dataset's arrays, vectorised (and chunked where they touch every
pixel) so they take well under a second on full FER2013. They return DataFrames in long form,
ready for plotly, or plain arrays.
"""
from __future__ import annotations

import cv2
import numpy as np
import pandas as pd

from .fer_dataset import FerDataset

_CHUNK = 8192  # images per vectorised step: bounds the float copies to ~75 MB


def class_counts(dataset: FerDataset) -> pd.DataFrame:
    """Images per class (rows, canonical order) and split (columns), plus a `total` column."""
    return dataset.counts()


def counts_long(dataset: FerDataset) -> pd.DataFrame:
    """The class counts in long form (emotion, split, count) for grouped bar charts."""
    table = dataset.counts().drop(columns="total")
    out = table.reset_index(names="emotion").melt(id_vars="emotion", var_name="split", value_name="count")
    return out.astype({"count": int})


def imbalance_ratio(dataset: FerDataset | pd.DataFrame, split: str | None = None) -> float:
    """Largest over smallest class count (1 = balanced; inf when a class has no images).

    Takes the dataset or its `class_counts` table; `split` restricts it to one split.
    """
    table = dataset if isinstance(dataset, pd.DataFrame) else dataset.counts()
    counts = table["total"] if split is None else table.get(split, pd.Series(0, index=table.index))
    smallest = int(counts.min()) if len(counts) else 0
    return float("inf") if smallest == 0 else float(counts.max()) / smallest


def sample_indices(dataset: FerDataset, per_class: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """Up to `per_class` random row indices of each class; a new `seed` reshuffles."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, emotion in enumerate(dataset.classes):
        rows = np.flatnonzero(dataset.labels == k)
        out[emotion] = np.sort(rng.choice(rows, size=min(per_class, len(rows)), replace=False))
    return out


def mean_faces(dataset: FerDataset) -> dict[str, np.ndarray]:
    """The pixel-wise mean image (float32, 0–255) of each class: what a 'typical' face looks like."""
    sums = np.zeros((len(dataset.classes),) + dataset.images.shape[1:], dtype=np.float64)
    for start in range(0, len(dataset), _CHUNK):
        images, labels = dataset.images[start:start + _CHUNK], dataset.labels[start:start + _CHUNK]
        for k in np.unique(labels):
            sums[k] += images[labels == k].sum(axis=0, dtype=np.float64)
    counts = np.bincount(dataset.labels, minlength=len(dataset.classes))
    return {e: (sums[k] / max(counts[k], 1)).astype(np.float32) for k, e in enumerate(dataset.classes)}


def intensity_histograms(dataset: FerDataset, bins: int = 64) -> pd.DataFrame:
    """Per-class pixel-intensity distribution: (emotion, intensity = bin centre, density) rows.

    Densities sum to 1 within a class, so classes of different sizes compare directly. `bins` divides 256.
    """
    if 256 % bins:
        raise ValueError(f"bins must divide 256 (got {bins})")
    width = 256 // bins
    rows = []
    for emotion, idx in _rows_by_class(dataset).items():
        counts = np.zeros(256, dtype=np.float64)
        for start in range(0, len(idx), _CHUNK):
            part = dataset.images[idx[start:start + _CHUNK]]
            counts += cv2.calcHist([part.reshape(-1, part.shape[-1])], [0], None, [256], [0, 256]).ravel()
        binned = counts.reshape(bins, width).sum(axis=1)
        rows.append(pd.DataFrame({"emotion": emotion, "intensity": np.arange(bins) * width + (width - 1) / 2,
                                  "density": binned / max(binned.sum(), 1)}))
    return pd.concat(rows, ignore_index=True)


def _rows_by_class(dataset: FerDataset) -> dict[str, np.ndarray]:
    """Row indices of each class."""
    order = np.argsort(dataset.labels, kind="stable")
    bounds = np.searchsorted(dataset.labels[order], np.arange(len(dataset.classes) + 1))
    return {e: order[bounds[k]:bounds[k + 1]] for k, e in enumerate(dataset.classes)}


def image_stats(dataset: FerDataset) -> pd.DataFrame:
    """One row per image: index, file, split, emotion, brightness (pixel mean) and contrast (pixel std)."""
    n = len(dataset)
    mean = np.empty(n, dtype=np.float32)
    std = np.empty(n, dtype=np.float32)
    for start in range(0, n, _CHUNK):
        flat = dataset.images[start:start + _CHUNK].reshape(-1, dataset.images[0].size).astype(np.float32)
        mean[start:start + _CHUNK] = flat.mean(axis=1)
        std[start:start + _CHUNK] = flat.std(axis=1)
    return pd.DataFrame({"index": np.arange(n), "file": dataset.files, "split": dataset.splits,
                         "emotion": pd.Categorical(dataset.label_names(), categories=dataset.classes),
                         "brightness": mean, "contrast": std})


def stat_histograms(stats: pd.DataFrame, column: str, bins: int = 40) -> pd.DataFrame:
    """Per-class distribution of one `image_stats` column: (emotion, value = bin centre, density) rows.

    Shared bin edges across classes; densities sum to 1 within a class.
    """
    values = stats[column].to_numpy(dtype=np.float64)
    lo, hi = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
    edges = np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    rows = []
    for emotion, part in stats.groupby("emotion", observed=True, sort=True)[column]:
        counts, _ = np.histogram(part.to_numpy(), bins=edges)
        rows.append(pd.DataFrame({"emotion": emotion, column: centres, "density": counts / max(counts.sum(), 1)}))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["emotion", column, "density"])
