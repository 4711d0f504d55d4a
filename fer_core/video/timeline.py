"""Emotion timelines: the rows the frame processor emits (one per face per analysed frame), as tables,
shares of time per emotion, long form for charts, and CSV.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..base.labels import EIGHT_CLASS as EMOTIONS  # FER+ models add contempt after FER2013's seven

ROW_COLUMNS: tuple[str, ...] = ("time", "frame", "face", "x", "y", "w", "h", "label", "confidence")


def timeline_frame(rows, labels) -> pd.DataFrame:
    """Timeline rows as a DataFrame with a fixed column order (also when empty)."""
    prob_cols = [lab for lab in labels]
    df = pd.DataFrame(list(rows))
    for col in (*ROW_COLUMNS, *prob_cols):
        if col not in df.columns:
            df[col] = pd.Series(dtype="float64" if col not in ("label",) else "object")
    extra = [c for c in df.columns if c not in ROW_COLUMNS and c not in prob_cols]
    return df[[*ROW_COLUMNS, *prob_cols, *extra]].reset_index(drop=True)


def timeline_summary(timeline: pd.DataFrame, labels=None) -> pd.DataFrame:
    """Share of face-time per emotion: each row counts for the time until the next analysed frame.

    Gaps longer than 5× the typical frame gap (a paused stream) count as a typical gap. Returns one
    row per emotion (canonical order) with face_seconds (summed over faces), frames (face-frames) and
    share (0–1).
    """
    present = set(timeline["label"]) if timeline is not None and "label" in timeline else set()
    names = list(labels) if labels is not None else [e for e in EMOTIONS if e in present]
    if timeline is None or timeline.empty:
        return pd.DataFrame({"face_seconds": 0.0, "frames": 0, "share": 0.0},
                            index=pd.Index(names, name="emotion"))
    times = np.sort(timeline["time"].astype(float).unique())
    gaps = np.diff(times)
    typical = float(np.median(gaps)) if gaps.size else 0.0
    capped = np.where(gaps > 5 * typical, typical, gaps) if gaps.size else gaps
    duration = dict(zip(times, np.append(capped, typical)))
    df = pd.DataFrame({"label": timeline["label"].to_numpy(),
                       "seconds": timeline["time"].astype(float).map(duration).to_numpy()})
    grouped = df.groupby("label").agg(face_seconds=("seconds", "sum"), frames=("seconds", "size"))
    names = names + [lab for lab in grouped.index if lab not in names]
    out = grouped.reindex(names).fillna(0.0)
    out["frames"] = out["frames"].astype(int)
    weight = out["face_seconds"] if out["face_seconds"].sum() > 0 else out["frames"].astype(float)
    out["share"] = weight / weight.sum() if weight.sum() > 0 else 0.0
    out.index.name = "emotion"
    return out


def timeline_long(timeline: pd.DataFrame, labels=None) -> pd.DataFrame:
    """Per-class probabilities in long form (time, face, emotion, probability) for line charts."""
    labels = [lab for lab in (labels or EMOTIONS) if lab in timeline.columns]
    long = timeline.melt(id_vars=["time", "face"], value_vars=labels, var_name="emotion", value_name="probability")
    return long.sort_values(["face", "emotion", "time"]).reset_index(drop=True)


def timeline_csv(timeline: pd.DataFrame) -> bytes:
    """The timeline as UTF-8 CSV bytes (for downloads and `--csv`)."""
    return timeline.to_csv(index=False).encode("utf-8")
