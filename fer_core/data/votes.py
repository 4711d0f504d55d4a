"""FER+ crowd labels: ten annotators' votes per FER2013 face, and what they say about the labels.

Microsoft's FER+ (Barsoum et al., 2016) relabelled every FER2013 face with ten annotators. A dataset
carries those votes (`FerDataset.votes`, N×10 counts in `VOTE_ORDER`, zeros where a face has none)
once `attach_votes` finds a votes file beside the data or is given one. Two formats are read:

* a file-keyed CSV (`ferplus_votes.csv`): `file` (path relative to the votes file's folder), an
  optional `usage` (Training | PublicTest | PrivateTest), then the counts `neutral, happiness,
  surprise, sadness, anger, disgust, fear, contempt, unknown, NF` (NF = not a face);
* FER+'s official `fer2013new.csv`: `Usage, Image name` and the same counts, row-aligned with
  `fer2013.csv` (an empty image name: FER+ dropped that face).

Label sources (`LABEL_SOURCES`): `fer2013` (the dataset's own labels), `ferplus-majority` (FER+'s
majority protocol: single votes dropped as outliers, then an emotion must hold more than half of the
rest; faces whose majority is unknown, not a face, or none are dropped) and `ferplus-soft` (the
vote distribution over the label set's emotions, single votes dropped). FER+ adds contempt as an
eighth emotion; a label set without it (every 7-class view) counts contempt votes as disgust, as
the data layer loads a `contempt` folder as disgust.
"""
from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np

from ..base import limits
from .fer_dataset import DataError, FerDataset
from ..base.labels import CONTEMPT, EIGHT_CLASS

FERPLUS_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
                   "unknown", "NF")
VOTE_ORDER: tuple[str, ...] = EIGHT_CLASS + ("unknown", "not a face")  # columns of FerDataset.votes
_FROM_FERPLUS = dict(zip(FERPLUS_COLUMNS, ("neutral", "happy", "surprise", "sad", "angry", "disgust", "fear",
                                           "contempt", "unknown", "not a face")))
VOTES_FILES = ("ferplus_votes.csv", "fer2013new.csv")  # looked for beside the data, in this order
MAX_VOTES_BYTES = 64 * limits.MiB  # FER+'s fer2013new.csv is 1.6 MB; larger files are refused unread
LABEL_SOURCES = ("fer2013", "ferplus-majority", "ferplus-soft")
NO_MAJORITY, NO_VOTES = "no majority", "no votes"
MAJORITY_PROTOCOL = ("FER+ majority: single votes dropped as outliers, then the emotion with more than half of "
                     "the remaining votes; faces whose majority is unknown, not a face or none are left out")
_USAGE = {"training": "train", "publictest": "validation", "privatetest": "test"}
_DISGUST = EIGHT_CLASS.index("disgust")
_CONTEMPT = EIGHT_CLASS.index(CONTEMPT)


class VotesError(DataError):
    """A votes file is unreadable or does not belong to the dataset; the message names the first bad row."""


# ----------------------------------------------------------------------------- reading and attaching

def find_votes_file(source) -> tuple[str, bytes, str] | None:
    """(name, contents, folder prefix inside the data) of the votes file beside a dataset, or None.

    Looks in a dataset folder (and beside a `fer2013.csv` path) for `VOTES_FILES`, and among the
    members of a `.zip`; the prefix is the votes file's folder relative to the dataset root."""
    path = Path(str(source)).expanduser()
    if not str(source) or not path.exists():  # e.g. an uploaded zip, held in memory only
        return None
    if path.is_file() and path.suffix.lower() == ".zip":
        with limits.open_zip(path, str(path)) as zf:
            members = sorted((m for m in zf.namelist() if Path(m).name in VOTES_FILES),
                             key=lambda m: (m.count("/"), VOTES_FILES.index(Path(m).name)))
            if members:
                prefix = members[0].rsplit("/", 1)[0] + "/" if "/" in members[0] else ""
                return f"{path}!{members[0]}", _read_bounded(zf, members[0], f"{path}!{members[0]}"), prefix
        return None
    folder = path if path.is_dir() else path.parent
    for name in VOTES_FILES:
        if (folder / name).is_file():
            return str(folder / name), _read_bounded(None, folder / name, str(folder / name)), ""
    return None


def _read_bounded(zf, member, name: str) -> bytes:
    """A votes file's bytes (a zip member when `zf` is given), VotesError past `MAX_VOTES_BYTES`."""
    try:
        if zf is not None:
            return limits.read_member(zf, member, MAX_VOTES_BYTES)
        return limits.read_file(member, MAX_VOTES_BYTES)
    except limits.LimitError as err:
        raise VotesError(f"votes file {name}: {err}") from None


def read_votes(data: bytes, name: str = "votes file"):
    """Parse a votes CSV into (DataFrame with `key`, `usage` and VOTE_ORDER count columns, format).

    The key is the `file` column (file-keyed format) or the 0-based row (`fer2013new.csv`, None where
    FER+ has no image). Raises VotesError naming the first offending row."""
    import pandas as pd

    for number, line, length in limits.iter_lines(io.BytesIO(data)):
        if line is None:  # a votes row is ~60 bytes: an absurd one is refused by number before parsing
            raise VotesError(f"{name} row {number}: {limits.size_text(length)} long, over the "
                             f"{limits.size_text(limits.MAX_ROW_BYTES)} limit per row")
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    except Exception as err:  # pandas raises several types for malformed text
        raise VotesError(f"{name} is not a readable CSV ({err})") from None
    by_lower = {str(c).strip().lower(): c for c in frame.columns}
    missing = [c for c in FERPLUS_COLUMNS if c.lower() not in by_lower]
    if missing:
        raise VotesError(f"{name} lacks the vote column(s) {', '.join(missing)}; a votes file has file (or FER+'s "
                         f"Usage, Image name), then {', '.join(FERPLUS_COLUMNS)}")
    if "file" in by_lower:
        fmt, keys = "file-keyed", frame[by_lower["file"]].str.strip()
        present = keys != ""
    elif "image name" in by_lower:
        fmt, keys = "fer2013new", pd.Series(np.arange(len(frame)), dtype=object)
        present = frame[by_lower["image name"]].str.strip() != ""
    else:
        raise VotesError(f"{name} has neither a `file` column (file-keyed votes) nor FER+'s `Image name` column")
    counts = np.zeros((len(frame), len(VOTE_ORDER)), np.int16)
    for column in FERPLUS_COLUMNS:
        raw = frame[by_lower[column.lower()]].str.strip()
        values = pd.to_numeric(raw, errors="coerce")
        bad = present & ~(values.notna() & (values >= 0) & (values <= 1000) & (values == values.round()))
        if bad.any():
            r = int(np.flatnonzero(bad.to_numpy())[0])
            raise VotesError(f"{name} row {r + 2}: column {column} holds {raw.iloc[r]!r}, not a vote count")
        counts[:, VOTE_ORDER.index(_FROM_FERPLUS[column])] = values.where(present, 0).fillna(0).astype(int)
    if fmt == "file-keyed":
        if not present.all():
            raise VotesError(f"{name} row {int(np.flatnonzero(~present.to_numpy())[0]) + 2}: the file is empty")
        dup = keys.duplicated()
        if dup.any():
            r = int(np.flatnonzero(dup.to_numpy())[0])
            first = int(np.flatnonzero((keys == keys.iloc[r]).to_numpy())[0])
            raise VotesError(f"{name} row {r + 2} repeats {keys.iloc[r]} (row {first + 2})")
    usage_column = by_lower.get("usage")
    usage = frame[usage_column].str.strip() if usage_column else pd.Series([""] * len(frame))
    out = pd.DataFrame({"key": keys.where(present, None), "usage": usage.to_numpy()})
    out[list(VOTE_ORDER)] = counts
    return out, fmt


def attach_votes(dataset: FerDataset, votes=None) -> FerDataset:
    """The dataset with `.votes` (N×10 counts, zeros for faces without votes) and `.votes_info`.

    `votes` is a votes CSV path; None looks beside the data (`find_votes_file`) and returns the
    dataset unchanged when there is none. A file that does not fit the dataset raises VotesError
    naming its first offending row."""
    if votes is not None:
        path = Path(str(votes)).expanduser()
        if not path.is_file():
            raise VotesError(f"votes file {path} does not exist")
        found = str(path), _read_bounded(None, path, str(path)), ""
    else:
        try:
            found = find_votes_file(dataset.source)
        except (OSError, zipfile.BadZipFile, limits.LimitError):  # LimitError: an archive with too many entries
            found = None
        if found is None:
            return dataset
    name, data, prefix = found
    frame, fmt = read_votes(data, Path(name.split("!")[-1]).name)
    short = Path(name.split("!")[-1]).name
    rows = _align_rows(dataset, frame, fmt, short, prefix)
    counts = np.zeros((len(dataset), len(VOTE_ORDER)), np.int16)
    hit = rows >= 0
    counts[rows[hit]] = frame[list(VOTE_ORDER)].to_numpy()[hit]
    has = counts.sum(axis=1) > 0
    info = {"file": name, "format": fmt, "fingerprint": hashlib.sha1(data).hexdigest()[:16],
            "rows": int(len(frame)), "faces_with_votes": int(has.sum()), "faces_without_votes": int((~has).sum())}
    from dataclasses import replace
    return replace(dataset, votes=counts, votes_info=info)


def _align_rows(dataset: FerDataset, frame, fmt: str, name: str, prefix: str) -> np.ndarray:
    """For each votes row, its dataset row (-1: no votes there, or a file the loader skipped)."""
    split_of = dataset.splits
    rows = np.full(len(frame), -1, np.int64)
    if fmt == "fer2013new":
        if not dataset.layout.startswith("fer2013-csv"):
            raise VotesError(f"{name} is keyed by row of fer2013.csv, but this dataset is {dataset.layout}; "
                             "use a file-keyed votes CSV (file, usage, neutral, …, NF)")
        csv_rows = np.array([int(f.rsplit(":row ", 1)[1]) - 2 for f in dataset.files.tolist()])
        beyond = csv_rows >= len(frame)
        if beyond.any():
            raise VotesError(f"{name} has {len(frame):,} rows but the dataset's {dataset.files[beyond][0]} has none "
                             "there: it is not FER+'s file for this fer2013.csv")
        rows[csv_rows] = np.arange(len(dataset))
        keep = frame["key"].notna().to_numpy()
        rows[~keep] = -1
    else:
        index = {f: i for i, f in enumerate(dataset.files.tolist())}
        skipped = {p.file for p in dataset.problems}
        for r, key in enumerate(frame["key"].tolist()):
            i = index.get(prefix + key)
            if i is None:
                if prefix + key in skipped:  # unreadable image: the loader listed it, its votes have no face
                    continue
                raise VotesError(f"{name} row {r + 2} names {key}, which is not in the dataset ({dataset.source}): "
                                 "is it the votes file of another dataset?")
            rows[r] = i
    usage = frame["usage"].str.lower().str.replace(r"[\s_-]", "", regex=True).map(_USAGE).to_numpy()
    for r in np.flatnonzero((rows >= 0) & (frame["usage"].to_numpy() != "")):
        if usage[r] != split_of[rows[r]]:
            raise VotesError(f"{name} row {r + 2}: {dataset.files[rows[r]]} is {frame['usage'].iloc[r] or '?'} there "
                             f"but in the {split_of[rows[r]]} split of the dataset")
    return rows


# ----------------------------------------------------------------------------- label protocols

def fold_contempt(votes: np.ndarray, labels) -> np.ndarray:
    """Votes as a label set sees them: without contempt but with disgust (a 7-class view), contempt
    votes count as disgust."""
    v = np.asarray(votes, np.int32).copy()
    if CONTEMPT not in labels and "disgust" in labels:
        v[:, _DISGUST] += v[:, _CONTEMPT]
        v[:, _CONTEMPT] = 0
    return v


def contempt_handling(labels) -> str:
    """How a label set treats FER+'s contempt votes, in words for cards and reports."""
    if CONTEMPT in labels:
        return "its own class"
    return "counted as disgust" if "disgust" in labels else "outside the label set"


def _trimmed(votes: np.ndarray, labels) -> np.ndarray:
    v = fold_contempt(votes, labels)
    v[v == 1] = 0  # FER+'s outlier rule: an emotion only one annotator saw is dropped
    return v


def vote_columns(labels) -> list[int]:
    """The columns of `FerDataset.votes` that hold the votes for `labels`, in their order."""
    return [VOTE_ORDER.index(e) for e in labels]


def majority(votes: np.ndarray, labels) -> np.ndarray:
    """Each face's FER+ majority as an index into `labels`; -1 where there is none (no votes, no emotion
    with more than half the votes after single votes are dropped, or unknown / not a face / an emotion
    outside `labels` wins)."""
    v = _trimmed(votes, labels)
    to_label = np.full(len(VOTE_ORDER), -1)
    to_label[vote_columns(labels)] = np.arange(len(labels))
    won = v.max(axis=1) * 2 > v.sum(axis=1)
    return np.where(won, to_label[v.argmax(axis=1)], -1)


def soft_targets(votes: np.ndarray, labels) -> tuple[np.ndarray, np.ndarray]:
    """(N×K vote distribution over `labels`, usable) with single votes dropped; a face is usable when
    those emotions hold more than half of its remaining votes (unknown, not a face and other emotions
    less than half)."""
    v = _trimmed(votes, labels)
    part = v[:, vote_columns(labels)].astype(np.float32)
    inside = part.sum(axis=1)
    usable = (inside > 0) & (inside * 2 > v.sum(axis=1))
    return part / np.maximum(inside, 1)[:, None], usable


def majority_names(dataset: FerDataset, labels=EIGHT_CLASS) -> np.ndarray:
    """Each row's FER+ majority emotion name, `no majority`, or `no votes`."""
    has = dataset.votes.sum(axis=1) > 0
    maj = majority(dataset.votes, labels)
    names = np.asarray(tuple(labels) + (NO_MAJORITY,), dtype=object)[maj]
    return np.where(has, names, NO_VOTES)


def training_labels(spec: str | None, source: str) -> tuple[str, ...] | None:
    """The label set `train --labels` means under a FER+ label source: `all` is FER+'s eight emotions;
    None for the fer2013 source (the dataset's own classes decide, as before)."""
    from ..base.labels import parse_label_set

    if source == "fer2013":
        return None
    return EIGHT_CLASS if (spec or "").strip().lower() in ("", "all") else parse_label_set(spec)


def relabel(dataset: FerDataset, labels, source: str) -> tuple[FerDataset, dict]:
    """The dataset relabelled by its votes under `source` (`ferplus-majority` or `ferplus-soft`), and a
    record for the model card. Majority: every split gets FER+'s majority, faces without one are dropped.
    Soft: training faces keep their vote distribution (`soft_targets`, labelled by its top emotion for
    metrics), other splits the majority, so validation scores what FER+ scores."""
    if source not in LABEL_SOURCES[1:]:
        raise ValueError(f"unknown label source {source!r}; use one of {', '.join(LABEL_SOURCES)}")
    if dataset.votes is None:
        raise VotesError(f"--label-source {source} needs FER+ votes, and none were found beside {dataset.source}: "
                         f"put {' or '.join(VOTES_FILES)} there or name one with --votes")
    labels = tuple(labels)
    new = majority(dataset.votes, labels)
    keep = new >= 0
    if source == "ferplus-soft":
        targets, usable = soft_targets(dataset.votes, labels)
        train = dataset.splits == "train"
        keep, new = np.where(train, usable, keep), np.where(train, targets.argmax(axis=1), new)
    has = dataset.votes.sum(axis=1) > 0
    out = dataset._take(keep, classes=labels)
    out.labels = new[keep].astype(np.int16)
    record = {"label_source": source, "votes_file": (dataset.votes_info or {}).get("file"),
              "votes_fingerprint": (dataset.votes_info or {}).get("fingerprint"),
              "protocol": MAJORITY_PROTOCOL if source == "ferplus-majority" else
              "FER+ vote distribution for training (single votes dropped; faces whose label-set emotions hold at "
              "most half the votes left out); validation and test faces scored by the " + MAJORITY_PROTOCOL,
              "contempt": contempt_handling(labels),
              "faces_without_votes": int((~has).sum()), "faces_left_out": int((has & ~keep).sum()),
              "faces_kept": {s: int(np.sum(out.splits == s)) for s in out.split_names}}
    return out, record


def training_targets(rows: FerDataset, labels, source: str) -> np.ndarray | None:
    """Per-face target rows for `make_input(targets=...)`: the vote distribution under `ferplus-soft`,
    None (one-hot labels) otherwise."""
    if source != "ferplus-soft":
        return None
    return soft_targets(rows.votes, labels)[0]
