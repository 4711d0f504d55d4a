"""Occlusion sensitivity: it finds the region a model reads, follows the class, validates its inputs,
and explains an edge export whose parent Keras model is not there (where Grad-CAM cannot)."""
from __future__ import annotations

import numpy as np
import pytest

from fer_core.inference.occlusion import _starts, occlusion_map


class RegionModel:
    """Two classes scored by the brightness of two known regions: class 0 reads the top-left 12×12 corner,
    class 1 the bottom-right one. Counts its forward passes."""

    def __init__(self):
        self.calls = 0

    def predict_preprocessed(self, x, tta=None):
        assert tta == "none"
        self.calls += 1
        x = np.asarray(x)[..., 0]
        scores = np.stack([x[:, :12, :12].mean((1, 2)), x[:, -12:, -12:].mean((1, 2))], axis=1) * 20
        e = np.exp(scores - scores.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)


@pytest.fixture
def face() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.uniform(0.3, 0.5, (48, 48, 1)).astype(np.float32)
    x[:12, :12] = 0.9  # a bright top-left corner: class 0 wins
    x[-12:, -12:] = 0.7  # a less bright bottom-right one: class 1's evidence
    return x


def test_the_map_lights_up_the_region_the_class_reads(face):
    model = RegionModel()
    heat = occlusion_map(model, face)  # default class: the predicted one, 0
    assert heat.shape == (48, 48) and heat.dtype == np.float32 and heat.max() == pytest.approx(1.0)
    assert heat[:12, :12].mean() > 0.5 and heat[24:, 24:].max() == 0.0
    assert model.calls == 2  # the clean face, then every occluded view in one batch

    other = occlusion_map(model, face, class_index=1)  # hiding the top-left corner *raises* class 1: no heat there
    assert other[:12, :12].max() == 0.0 and other[-12:, -12:].mean() > 0.5


def test_size_patch_and_stride(face):
    heat = occlusion_map(RegionModel(), face[None], size=(30, 40), patch=12, stride=12)
    assert heat.shape == (30, 40) and np.isfinite(heat).all() and 0.0 <= heat.min() <= heat.max() <= 1.0
    assert _starts(48, 8, 4)[-1] == 40 and _starts(48, 10, 4)[-1] == 38  # the last patch is flush with the edge


@pytest.mark.parametrize("kwargs, message", [
    (dict(class_index=2), "out of range"),
    (dict(patch=60), "stride ≤ patch"),
    (dict(patch=4, stride=5), "stride ≤ patch"),
])
def test_bad_requests_are_clear(face, kwargs, message):
    with pytest.raises(ValueError, match=message):
        occlusion_map(RegionModel(), face, **kwargs)
    with pytest.raises(ValueError, match="one preprocessed input"):
        occlusion_map(RegionModel(), np.stack([face, face]))
