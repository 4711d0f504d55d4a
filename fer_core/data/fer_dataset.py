"""The in-memory form of every FER dataset, whatever its layout on disk: uint8 48×48 images, label indices,
split names and source file names (`FerDataset`), the files skipped while reading it (`Problem`), what
"test" means on a given dataset (`resolve_split`) and the one error a reader raises (`DataError`)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable

import numpy as np

from ..base.labels import sort_emotions

IMAGE_SIZE = 48
SPLITS: tuple[str, ...] = ("train", "validation", "test")
SUPPORTED_LAYOUTS = (
    "Kaggle folders: train/<emotion>/ and test/<emotion>/ (Training_, PublicTest_, PrivateTest_ files)",
    "split folders: train|validation|test/<emotion>/ (e.g. the 4-class happy/neutral/sad/surprise layout)",
    "the original fer2013.csv with columns emotion,pixels,Usage",
    "a .zip file holding any of the above",
)


class DataError(ValueError):
    """A dataset could not be read; the message says why and what is supported."""


@dataclass(frozen=True)
class Problem:
    """A file that was skipped or altered while loading, and why."""

    file: str
    reason: str


@dataclass
class FerDataset:
    """Images (N×48×48 uint8), label indices into `classes`, split names and file names."""

    images: np.ndarray
    labels: np.ndarray
    splits: np.ndarray
    files: np.ndarray
    classes: tuple[str, ...]
    source: str = ""
    layout: str = ""
    fingerprint: str = ""
    problems: list[Problem] = field(default_factory=list)
    from_cache: bool = False
    # FER+ annotator votes per row (N×10 counts in `fer_core.data.votes.VOTE_ORDER`, zeros = no votes) and
    # where they came from; None until `fer_core.data.votes.attach_votes` finds a votes file
    votes: np.ndarray | None = None
    votes_info: dict | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def split_names(self) -> tuple[str, ...]:
        """Splits present, in train/validation/test order."""
        present = set(np.unique(self.splits).tolist())
        return tuple(s for s in SPLITS if s in present)

    def _take(self, mask: np.ndarray, **changes) -> "FerDataset":
        if self.votes is not None and "votes" not in changes:
            changes["votes"] = self.votes[mask]
        return replace(self, images=self.images[mask], labels=self.labels[mask],
                       splits=self.splits[mask], files=self.files[mask], **changes)

    def split(self, name: str) -> "FerDataset":
        """The rows of one split (`train`, `validation` or `test`)."""
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; use one of {', '.join(SPLITS)}")
        return self._take(self.splits == name)

    def subset(self, labels: Iterable[str]) -> "FerDataset":
        """Only the rows whose emotion is in `labels`, re-indexed to that label set."""
        wanted = sort_emotions(labels)
        missing = [e for e in wanted if e not in self.classes]
        if missing:
            raise DataError(f"this dataset has no {', '.join(missing)} images "
                            f"(it has {', '.join(self.classes)})")
        old_to_new = np.full(len(self.classes), -1, dtype=np.int16)
        for new, name in enumerate(wanted):
            old_to_new[self.classes.index(name)] = new
        mapped = old_to_new[self.labels]
        keep = mapped >= 0
        out = self._take(keep, classes=wanted)
        out.labels = mapped[keep]
        return out

    def label_names(self) -> np.ndarray:
        """The emotion name of every row."""
        return np.asarray(self.classes)[self.labels]

    def counts(self):
        """A DataFrame of image counts, one row per class, one column per split, plus total."""
        import pandas as pd

        table = pd.crosstab(pd.Categorical(self.label_names(), categories=self.classes),
                            pd.Categorical(self.splits, categories=self.split_names), dropna=False)
        table.index.name, table.columns.name = "emotion", "split"
        table.index, table.columns = list(table.index), list(table.columns)
        table["total"] = table.sum(axis=1)
        return table


def resolve_split(dataset: FerDataset, split: str) -> tuple[FerDataset, str]:
    """Rows for an evaluation split and a description of what they are.

    `test` means PrivateTest (or a test folder) where the data has it; data with only
    PublicTest in its test folder (as shipped here) falls back to PublicTest and says so.
    """
    if split == "test" and "test" not in dataset.split_names and "validation" in dataset.split_names:
        return dataset.split("validation"), "validation (PublicTest; this dataset has no PrivateTest/test images)"
    part = dataset.split(split)
    if len(part) == 0:
        raise DataError(f"the dataset has no {split} images (it has {', '.join(dataset.split_names) or 'none'})")
    return part, split
