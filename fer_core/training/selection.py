"""Which faces a run learns from and which it validates on: the training rows, the validation rows early
stopping watches (never test rows), and the training faces left out (duplicates of held-out faces, listed files).
"""
from __future__ import annotations

import numpy as np

from ..data.fer_dataset import FerDataset
from .config import TrainConfig


def split_for_training(dataset: FerDataset, seed: int, val_fraction: float = 0.1) -> tuple[FerDataset, FerDataset, str]:
    """Training rows and the validation rows early stopping watches (never test rows).

    Uses the dataset's validation split (PublicTest for FER2013); without one, holds out a
    stratified `val_fraction` of the training rows.
    """
    train = dataset.split("train")
    if len(train) == 0:
        raise ValueError("the dataset has no training images")
    if "validation" in dataset.split_names:
        return train, dataset.split("validation"), "validation"
    rng = np.random.default_rng(seed)
    val_mask = np.zeros(len(train), dtype=bool)
    for k in range(len(train.classes)):
        idx = np.flatnonzero(train.labels == k)
        take = rng.choice(idx, size=max(1, int(round(len(idx) * val_fraction))), replace=False) if len(idx) > 1 else []
        val_mask[take] = True
    return train._take(~val_mask), train._take(val_mask), f"{val_fraction:.0%} of train (no validation split)"


def exclude_training_rows(train_rows: FerDataset, full: FerDataset, config: TrainConfig) -> tuple[FerDataset, dict]:
    """Drop training faces that must not be learnt from, and say how many went and why.

    * leaks: exact or near duplicates (the quality scan's pHash threshold) of any validation or test
      face of the dataset, so the scores measured there stay honest (`exclude_leaks`);
    * listed: files named in the `exclude` CSV (its `file` column), e.g. likely label errors.
    """
    from ..data.quality import NEAR_DISTANCE, duplicated_in

    drop = np.zeros(len(train_rows), dtype=bool)
    excluded = {"duplicates_of_held_out": 0, "listed": 0}
    if config.exclude_leaks:
        held_out = full.images[full.splits != "train"]
        leaks = duplicated_in(train_rows.images, held_out)
        excluded["duplicates_of_held_out"] = int(leaks.sum())
        excluded["near_duplicate_max_bits"] = NEAR_DISTANCE
        drop |= leaks
    if config.exclude:
        listed = read_file_list(config.exclude)
        hit = np.isin(train_rows.files, listed)
        excluded["listed"] = int(hit.sum())
        excluded["list_file"] = str(config.exclude)
        drop |= hit
    if drop.all():
        raise ValueError("every training image was excluded; nothing is left to train on")
    return (train_rows._take(~drop) if drop.any() else train_rows), excluded


def read_file_list(path: str) -> np.ndarray:
    """The `file` column of a CSV (or, without a header named `file`, its first column)."""
    import pandas as pd

    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read the exclusion list {path}: {err}") from None
    column = "file" if "file" in table.columns else table.columns[0]
    return table[column].astype(str).to_numpy()
