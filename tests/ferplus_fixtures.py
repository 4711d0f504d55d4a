"""Writers of FER+ votes files for tests: the file-keyed CSV (`ferplus_votes.csv`) and FER+'s official
row-aligned `fer2013new.csv`, with vote counts given by emotion name.

    from tests.ferplus_fixtures import votes_row, write_votes_csv, write_fer2013new
"""
from __future__ import annotations

from pathlib import Path

from fer_core.data.votes import FERPLUS_COLUMNS

# canonical names (and unknown / nf) → FER+'s column names
_COLUMN = {"neutral": "neutral", "happy": "happiness", "surprise": "surprise", "sad": "sadness", "angry": "anger",
           "disgust": "disgust", "fear": "fear", "contempt": "contempt", "unknown": "unknown", "nf": "NF"}
USAGE = {"train": "Training", "validation": "PublicTest", "test": "PrivateTest"}


def votes_row(**counts: int) -> list[int]:
    """Ten counts in FER+'s column order from emotion names, e.g. votes_row(happy=8, neutral=2)."""
    by_column = {_COLUMN[name]: n for name, n in counts.items()}
    return [by_column.get(c, 0) for c in FERPLUS_COLUMNS]


def write_votes_csv(path, rows) -> Path:
    """A file-keyed votes CSV: `rows` are (file, split, counts) with split train/validation/test."""
    lines = ["file,usage," + ",".join(FERPLUS_COLUMNS)]
    lines += [f"{file},{USAGE[split]}," + ",".join(map(str, counts)) for file, split, counts in rows]
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def write_fer2013new(path, rows) -> Path:
    """FER+'s fer2013new.csv: `rows` are (split, counts or None) in fer2013.csv's row order; None writes
    an empty image name (a face FER+ dropped)."""
    lines = ["Usage,Image name," + ",".join(FERPLUS_COLUMNS)]
    for i, (split, counts) in enumerate(rows):
        name = "" if counts is None else f"fer{i:07d}.png"
        lines.append(f"{USAGE[split]},{name}," + ",".join(map(str, counts or [0] * len(FERPLUS_COLUMNS))))
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)
