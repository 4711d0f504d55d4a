"""Emotion timelines: share of time per emotion, with pauses capped."""
from __future__ import annotations

import pandas as pd
import pytest

from fer_core.video import timeline
from fer_core.base.labels import EMOTIONS


def test_timeline_summary_weights_time_and_caps_pauses():
    df = pd.DataFrame({"time": [0.0, 1.0, 2.0, 3.0], "face": 1, "label": ["happy", "happy", "sad", "happy"]})
    s = timeline.timeline_summary(df, ("happy", "sad", "neutral"))
    assert s.loc["happy", "share"] == pytest.approx(0.75) and s.loc["sad", "share"] == pytest.approx(0.25)
    assert s.loc["neutral", "frames"] == 0 and list(s.index) == ["happy", "sad", "neutral"]
    paused = pd.DataFrame({"time": [0.0, 0.1, 0.2, 30.0], "face": 1, "label": ["sad", "sad", "sad", "happy"]})
    s = timeline.timeline_summary(paused)
    assert s.loc["sad", "face_seconds"] == pytest.approx(0.3) and s.loc["happy", "face_seconds"] == pytest.approx(0.1)
    assert timeline.timeline_summary(timeline.timeline_frame([], EMOTIONS), EMOTIONS)["share"].sum() == 0
