"""Emotion colours: one distinct colour per emotion, the same in charts (hex) and overlays (RGB)."""
from __future__ import annotations

import numpy as np
from skimage.color import rgb2lab

from fer_core.base.labels import EIGHT_CLASS, EMOTION_COLORS, emotion_rgb


def test_every_emotion_has_a_clearly_distinct_colour():
    assert set(EMOTION_COLORS) == set(EIGHT_CLASS)  # FER+'s contempt included
    lab = {e: rgb2lab(np.array([[emotion_rgb(e)]], float) / 255)[0, 0] for e in EIGHT_CLASS}
    closest = min((float(np.linalg.norm(lab[a] - lab[b])), a, b) for a in EIGHT_CLASS for b in EIGHT_CLASS if a < b)
    assert closest[0] >= 35, f"{closest[1]} and {closest[2]} look alike (CIELAB ΔE {closest[0]:.0f})"


def test_overlay_rgb_matches_chart_hex():
    assert emotion_rgb("angry") == (0xd6, 0x27, 0x28)
    for e, hex_color in EMOTION_COLORS.items():
        assert "#%02x%02x%02x" % emotion_rgb(e) == hex_color.lower()
    assert emotion_rgb("unknown") == (255, 255, 255) and emotion_rgb("x", default=(1, 2, 3)) == (1, 2, 3)
