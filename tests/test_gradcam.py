"""Grad-CAM / Grad-CAM++: shapes, ranges, class dependence, layer choice, nested models, a hand-made reference."""
from __future__ import annotations

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf
from skimage import data as skdata

from fer_core.inference import gradcam as cam
from fer_core.models import registry
from fer_core.inference.faces import crop_box
from fer_core.inference.predict import Classifier
from tests.model_fixtures import make_fixture_model


@pytest.fixture(scope="module")
def clf(tmp_path_factory) -> Classifier:
    root = tmp_path_factory.mktemp("models")
    make_fixture_model(root, "tiny7")
    return Classifier.from_registry(registry.get_model("tiny7", root))


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return np.ascontiguousarray(skdata.astronaut()[55:175, 165:285])  # 120×120 crop around the face


def test_conv_layers_and_default(clf):
    assert cam.conv_layers(clf.model) == ["conv_a", "conv_b"]
    assert cam.default_layer(clf.model) == "conv_b"


@pytest.mark.parametrize("method", cam.METHODS)
def test_heatmap_has_the_crops_shape_is_finite_and_depends_on_the_class(clf, face, method):
    maps = [cam.gradcam_face(clf, face, class_index=k, method=method) for k in range(len(clf.labels))]
    for m in maps:
        assert m.shape == face.shape[:2] and m.dtype == np.float32
        assert np.isfinite(m).all() and m.min() >= 0.0 and m.max() <= 1.0
    assert max(m.max() for m in maps) == pytest.approx(1.0, abs=0.05)
    differences = [np.abs(maps[0] - m).max() for m in maps[1:]]
    assert max(differences) > 0.05  # different classes highlight different regions
    predicted = int(np.argmax(clf.predict([face])[0]))
    np.testing.assert_allclose(cam.gradcam_face(clf, face, method=method), maps[predicted], atol=1e-5)


def test_matches_a_hand_written_gradcam_on_logits(clf, face):
    """Reference: gradients of the pre-softmax score w.r.t. conv_b, averaged per channel (Selvaraju et al.)."""
    model = clf.model
    x = clf.preprocessing.apply(face)
    feats = keras.Model(model.inputs[0], [model.get_layer("conv_b").output, model.get_layer("probabilities").input])
    dense = model.get_layer("probabilities")
    with tf.GradientTape() as tape:
        conv, pre = feats(x)
        logit = (tf.matmul(pre, dense.kernel) + dense.bias)[0, 3]
    grads = tape.gradient(logit, conv)
    ref = tf.nn.relu(tf.reduce_sum(conv * tf.reduce_mean(grads, axis=(1, 2), keepdims=True), -1))[0].numpy()
    ref = ref / ref.max()
    ours = cam.gradcam(model, x, class_index=3, layer="conv_b")  # conv_b's 21×21 map, resized to 48×48
    np.testing.assert_allclose(ours, np.clip(cv2.resize(ref, (48, 48), interpolation=cv2.INTER_CUBIC), 0, 1),
                               atol=1e-4)


def test_any_layer_can_be_chosen_and_bad_requests_are_clear(clf, face):
    x = clf.preprocessing.apply(face)
    early = cam.gradcam(clf.model, x, layer="conv_a", size=(30, 40))
    assert early.shape == (30, 40) and np.isfinite(early).all()
    with pytest.raises(ValueError):
        cam.gradcam(clf.model, x, layer="no_such_layer")
    with pytest.raises(ValueError, match="out of range"):
        cam.gradcam(clf.model, x, class_index=7)
    with pytest.raises(ValueError, match="unknown method"):
        cam.gradcam(clf.model, x, method="saliency")


def test_nested_backbone_layers_are_listed_and_explained():
    """Shaped like the transfer models: gray→RGB, rescaling and a raw op feed a nested backbone, then a head."""
    keras.utils.set_random_seed(0)
    backbone = keras.Sequential([keras.Input((48, 48, 3)), keras.layers.Conv2D(4, 3, activation="relu", name="c1"),
                                 keras.layers.Conv2D(6, 3, name="c2"), keras.layers.ReLU(name="r2")], name="backbone")
    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Concatenate()([inputs, inputs, inputs])
    x = keras.layers.Rescaling(255.0)(x) - 127.5  # an op that is not a layer, like preprocess_input
    x = keras.layers.GlobalAveragePooling2D()(backbone(x))
    x = keras.layers.Dense(8, activation="relu")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    assert cam.conv_layers(model) == ["backbone/c1", "backbone/c2", "backbone/r2"]
    assert cam.default_layer(model) == "backbone/r2"
    x = np.random.default_rng(0).random((1, 48, 48, 1), dtype=np.float32)
    for method in cam.GRADIENT_METHODS:
        maps = [cam.gradcam(model, x, class_index=k, method=method) for k in range(3)]
        assert all(m.shape == (48, 48) and np.isfinite(m).all() for m in maps)
        assert max(np.abs(maps[0] - m).max() for m in maps[1:]) > 0.01
    assert np.isfinite(cam.gradcam(model, x, layer="backbone/c1")).all()


def test_overlays(clf, face):
    heat = cam.gradcam_face(clf, face)
    over = cam.overlay(face, heat, alpha=0.5)
    assert over.shape == face.shape and over.dtype == np.uint8 and (over != face).any()
    np.testing.assert_array_equal(cam.overlay(face, heat, alpha=0.0), face)
    photo = skdata.astronaut()
    box = (177, 67, 93, 93)
    x0, y0, x1, y1 = crop_box(box, photo.shape)
    heat = cam.gradcam_face(clf, photo[y0:y1, x0:x1])
    full = cam.overlay_through(photo, heat, [[1, 0, -x0], [0, 1, -y0]], (y1 - y0, x1 - x0))  # a box crop's matrix
    assert full.shape == photo.shape
    outside = np.ones(photo.shape[:2], bool)
    outside[y0 - 1:y1 + 1, x0 - 1:x1 + 1] = False
    np.testing.assert_array_equal(full[outside], photo[outside])
    assert (full[y0:y1, x0:x1] != photo[y0:y1, x0:x1]).any()
    np.testing.assert_allclose(full[y0 + 5:y1 - 5, x0 + 5:x1 - 5],
                               cam.overlay(photo[y0:y1, x0:x1], heat)[5:-5, 5:-5], atol=2)
    aligned = cam.overlay_through(photo, heat, [[0.5, 0.5, -150], [-0.5, 0.5, 60]], (64, 64))  # rotated, scaled
    changed = (aligned != photo).any(axis=-1).sum()
    assert 0.9 * 8192 < changed < 1.1 * 8192  # the 64² crop's footprint in the photo: 64² / det(matrix) px
