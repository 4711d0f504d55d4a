"""The one canonical emotion vocabulary of the product.

FER2013's own label order (0 angry … 6 neutral) is the canonical order: every dataset,
model card and chart lists emotions in this order, whatever subset it uses. FER+'s crowd labels
(`fer_core.data.votes`) add an eighth emotion, contempt, which comes last (`EIGHT_CLASS`).
"""
from __future__ import annotations

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

FOUR_CLASS: tuple[str, ...] = ("happy", "sad", "surprise", "neutral")

# FER+ (Barsoum et al., 2016) labels the same faces with contempt as an eighth emotion. Only vote files
# bring it in: a dataset folder named `contempt` (CK+) still loads as disgust, as it always has.
CONTEMPT = "contempt"
EIGHT_CLASS: tuple[str, ...] = EMOTIONS + (CONTEMPT,)

LABEL_SETS: dict[str, tuple[str, ...]] = {"all": EMOTIONS, "4class": FOUR_CLASS, "8class": EIGHT_CLASS}

# One colour per emotion, used by every chart, overlay and timeline. Hues are far apart (CIELAB
# distance ≥ 35 between any two, checked by tests/test_labels.py) so that e.g. angry and disgust
# never read as the same red.
EMOTION_COLORS: dict[str, str] = {
    "angry": "#d62728",     # red
    "disgust": "#2ca02c",   # green
    "fear": "#9467bd",      # purple
    "happy": "#f0a30a",     # amber
    "sad": "#1f77b4",       # blue
    "surprise": "#17becf",  # cyan
    "neutral": "#7f7f7f",   # grey
    "contempt": "#c71585",  # magenta (FER+ only)
}


def emotion_rgb(label: str, default: tuple[int, int, int] = (255, 255, 255)) -> tuple[int, int, int]:
    """The (r, g, b) 0–255 colour of an emotion (for drawing on images), `default` for unknown labels."""
    color = EMOTION_COLORS.get(label)
    if color is None:
        return default
    return tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))


_ALIASES: dict[str, str] = {
    "anger": "angry", "angry": "angry", "mad": "angry",
    "disgust": "disgust", "disgusted": "disgust", "disgusting": "disgust", "contempt": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "scared": "fear",
    "happy": "happy", "happiness": "happy", "joy": "happy", "joyful": "happy",
    "sad": "sad", "sadness": "sad", "unhappy": "sad",
    "surprise": "surprise", "surprised": "surprise", "surprising": "surprise",
    "neutral": "neutral", "neutrality": "neutral", "calm": "neutral",
}


def canonical_emotion(name: str) -> str | None:
    """Map a folder or label name (any case, common aliases) to its canonical emotion, or None."""
    key = name.strip().lower().replace("-", "").replace("_", "").replace(" ", "")
    if key.isdigit() and int(key) < len(EMOTIONS):
        return EMOTIONS[int(key)]
    return _ALIASES.get(key)


def sort_emotions(names) -> tuple[str, ...]:
    """Canonical emotions in canonical order, duplicates removed. `contempt` spelled exactly stays
    contempt (an 8-class label set); as a folder alias it is disgust (`canonical_emotion`)."""
    wanted = {n if n in EIGHT_CLASS else (canonical_emotion(n) or n) for n in names}
    unknown = wanted - set(EIGHT_CLASS)
    if unknown:
        raise ValueError(f"unknown emotion(s): {', '.join(sorted(unknown))}; known: {', '.join(EIGHT_CLASS)}")
    return tuple(e for e in EIGHT_CLASS if e in wanted)


def parse_label_set(spec: str | None) -> tuple[str, ...]:
    """Parse `all`, `4class`, `8class` (FER+'s, with contempt) or a comma list such as `happy,sad`."""
    if spec is None or spec.strip() == "":
        return EMOTIONS
    spec = spec.strip().lower()
    if spec in LABEL_SETS:
        return LABEL_SETS[spec]
    if spec in ("7", "all7", "seven"):
        return EMOTIONS
    labels = sort_emotions(p for p in spec.split(",") if p.strip())
    if len(labels) < 2:
        raise ValueError("a label set needs at least two emotions")
    return labels


def label_set_name(labels) -> str:
    """Short name of a label set: `all`, `4class`, `8class`, or the comma list."""
    labels = tuple(labels)
    for name, members in LABEL_SETS.items():
        if labels == members:
            return name
    return ",".join(labels)
