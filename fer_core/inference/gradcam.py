"""Grad-CAM and Grad-CAM++: which pixels of a face drove the model towards an emotion.

`gradcam_face` also offers occlusion (see `occlusion`), which needs no gradients and so explains an
edge export as it runs; the gradient methods explain an export through its parent Keras model.

A gradient model (input → [conv feature maps, pre-softmax scores]) is built once per
(model, layer) and its gradient step compiled with `tf.function`, so one explanation costs a
forward and a backward pass. Scores are taken before the softmax (logits) where the model ends
in a softmax, as in the Grad-CAM paper, so saturated probabilities still give useful gradients.
"""
from __future__ import annotations

import threading
import weakref

import cv2
import numpy as np

from ..base.extras import missing_message, require

GRADIENT_METHODS: tuple[str, ...] = ("gradcam", "gradcam++")
METHODS: tuple[str, ...] = GRADIENT_METHODS + ("occlusion",)  # what `gradcam_face` (page, CLI, API) offers
ALL_MEMBERS = "all members (mean)"  # the layer choice that explains an ensemble: its members' maps averaged

_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> {(layer, method): fn}
_LOCK = threading.Lock()


def conv_layers(model) -> list[str]:
    """Names of the layers whose 4-D feature maps Grad-CAM can explain, input to output.

    Candidates are convolutions and, after the first one, what closes a conv block (activations,
    residual adds, concatenations). Layers inside a nested sub-model (e.g. a Keras application used as a
    backbone) are named `submodel/layer`. The last entry is the default layer.
    """
    import keras

    block_ends = (keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.PReLU,
                  keras.layers.ELU, keras.layers.Add, keras.layers.Concatenate)
    names = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            names += [f"{layer.name}/{n}" for n in conv_layers(layer) if n != ALL_MEMBERS]
        elif _rank(layer) == 4 and ("conv" in type(layer).__name__.lower()
                                    or (names and isinstance(layer, block_ends))):  # not before the first conv
            names.append(layer.name)
    return names + [ALL_MEMBERS] if _members(model) else names


def default_layer(model) -> str:
    """The last conv-block output before pooling to a vector: the usual Grad-CAM choice
    (most semantic features that are still spatial)."""
    names = conv_layers(model)
    if not names:
        raise ValueError(f"model {model.name!r} has no 2-D convolution layer to explain")
    return names[-1]


def gradcam(model, x_preprocessed: np.ndarray, class_index: int | None = None, layer: str | None = None,
            method: str = "gradcam", size: tuple[int, int] | None = None) -> np.ndarray:
    """Heatmap in [0, 1] for one preprocessed input (1×S×S×C or S×S×C) and a class (default: the predicted one).

    `size` (height, width) resizes the map to a face crop; by default it has the input's S×S size.
    """
    if method not in GRADIENT_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of: {', '.join(GRADIENT_METHODS)}")
    x = np.asarray(x_preprocessed, dtype=np.float32)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or len(x) != 1:
        raise ValueError(f"expected one preprocessed input of shape S×S×C, got {x.shape}")
    layer = layer or default_layer(model)
    n_classes = model.output_shape[-1]
    if class_index is not None and not 0 <= int(class_index) < n_classes:
        raise ValueError(f"class index {class_index} is out of range for {n_classes} classes")
    if _members(model):  # an ensemble: members explain the ensemble's class; "all members" averages their maps
        if class_index is None:
            class_index = int(np.argmax(_cached(model, "forward", lambda: _forward(model))(x).numpy()[0]))
        if layer != ALL_MEMBERS:
            member, _, inner = layer.partition("/")
            return gradcam(model.get_layer(member), x, class_index, inner, method, size)
    weights = [w for _, w in _leaves(model)] if layer == ALL_MEMBERS else [1.0]
    step = _cached(model, (layer, method), lambda: _build(model, layer, method))
    cams = step(x, np.int32(-1 if class_index is None else class_index))
    h, w = size if size is not None else x.shape[1:3]
    maps = [weight * np.clip(np.nan_to_num(cv2.resize(cam.numpy()[0], (int(w), int(h)),
                                                      interpolation=cv2.INTER_CUBIC)), 0.0, 1.0)
            for weight, cam in zip(weights, cams)]
    return np.clip(np.sum(maps, axis=0), 0.0, 1.0).astype(np.float32)


def gradcam_face(classifier, crop_rgb: np.ndarray, class_index: int | None = None, layer: str | None = None,
                 method: str = "gradcam") -> np.ndarray:
    """Heatmap for a uint8 face crop through a `predict.Classifier`, at the crop's height × width.

    `method` "occlusion" explains the classifier itself, export or not, and ignores `layer`.
    """
    x = classifier.preprocessing.apply(crop_rgb)
    if method == "occlusion":
        from .occlusion import occlusion_map

        return occlusion_map(classifier, x, class_index, size=np.asarray(crop_rgb).shape[:2])
    return gradcam(gradient_model(classifier), x, class_index, layer, method, size=np.asarray(crop_rgb).shape[:2])


def gradient_model(classifier):
    """The Keras model Grad-CAM differentiates for a `predict.Classifier`: its own, or for an edge export
    (LiteRT / ONNX: no gradients) its parent's, whose weights the export was converted from. Needs TensorFlow
    (the `train` extra): without it, `MissingExtra` says so in one line."""
    require("tensorflow", "Grad-CAM")
    model = classifier.model
    return model.parent_keras_model(_load_parent) if getattr(model, "runtime", None) else model


def _load_parent(runtime):
    """An export's parent Keras model from the registry, its head narrowed as the export's was."""
    from ..models import registry
    from ..models.ensemble_graph import narrowed

    try:
        parent = registry.get_model(runtime.parent_id, runtime.info.path.parent)
    except registry.RegistryError:
        raise ValueError(f"{runtime.info.id}'s parent {runtime.parent_id!r} is not registered, "
                         "so there is no Keras model to explain") from None
    return narrowed(registry.load_keras_model(parent), runtime.info.model_card.classes_of_parent)


def gradients_unavailable(classifier) -> str | None:
    """Why the gradient methods cannot explain `classifier` (an edge export whose parent Keras model is not
    registered), or None when they can — decided from the cards, without loading any Keras model, so a
    page can offer Grad-CAM and load TensorFlow only when someone asks for it."""
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        return missing_message("tensorflow", "Grad-CAM")
    model = classifier.model
    if not getattr(model, "runtime", None):
        return None
    from ..models import registry

    if not model.parent_id:
        return f"export {classifier.id!r} names no parent model to explain"
    try:
        registry.get_model(model.parent_id, classifier.info.path.parent)
    except registry.RegistryError:
        return (f"{classifier.id}'s parent {model.parent_id!r} is not registered, so there is no Keras model "
                "to explain")
    return None


def overlay(crop_rgb: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The crop with the heatmap blended on top in the JET colormap (red = most important)."""
    crop = np.asarray(crop_rgb)
    if crop.ndim == 2:
        crop = np.repeat(crop[..., None], 3, axis=-1)
    crop = crop[..., :3].astype(np.float32)
    heat = np.asarray(heatmap, np.float32)
    if heat.shape != crop.shape[:2]:
        heat = cv2.resize(heat, (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_CUBIC)
    colored = cv2.applyColorMap(np.uint8(np.clip(heat, 0, 1) * 255), cv2.COLORMAP_JET)[..., ::-1]
    return np.clip((1 - alpha) * crop + alpha * colored, 0, 255).astype(np.uint8)


def overlay_through(image_rgb: np.ndarray, heatmap: np.ndarray, matrix, crop_shape, alpha: float = 0.45) -> np.ndarray:
    """A copy of the full photo with a face's heatmap blended over the pixels its crop came from, whatever the
    crop: `matrix` is the crop's photo→crop affine matrix (`ImageAnalysis.crop_matrices`; a rotated, aligned
    crop included) and `crop_shape` the crop's (height, width)."""
    out = np.array(np.asarray(image_rgb)[..., :3], dtype=np.uint8, copy=True)
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=-1)
    h, w = int(crop_shape[0]), int(crop_shape[1])
    heat = cv2.resize(np.asarray(heatmap, np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    colored = cv2.applyColorMap(np.uint8(np.clip(heat, 0, 1) * 255), cv2.COLORMAP_JET)[..., ::-1]
    size = (out.shape[1], out.shape[0])
    m = np.asarray(matrix, np.float64)[:2]
    back = cv2.warpAffine(colored, m, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    mask = cv2.warpAffine(np.ones((h, w), np.float32), m, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    a = alpha * mask[..., None]
    return np.clip((1 - a) * out + a * back, 0, 255).astype(np.uint8)


def _members(model) -> list:
    from ..models.ensemble_graph import member_models

    return member_models(model)


def _leaves(model, weight: float = 1.0) -> list:
    """(plain network, weight) for every member under an ensemble, nested ones included: the mean of the
    members' maps is the weighted sum of the leaves' maps."""
    members = _members(model)
    if not members:
        return [(model, weight)]
    return [leaf for member in members for leaf in _leaves(member, weight / len(members))]


def _rank(layer) -> int | None:
    try:
        return len(layer.output.shape)
    except (AttributeError, ValueError):
        return None


def _cached(model, key, build):
    """What `build()` makes for `model` under `key` (a compiled step), built on first use."""
    with _LOCK:
        per_model = _CACHE.setdefault(model, {})
        if key not in per_model:
            per_model[key] = build()
        return per_model[key]


def _forward(model):
    """The model's compiled forward pass: an eager call through an ensemble costs more than its Grad-CAM."""
    import tensorflow as tf

    return tf.function(lambda x: model(x, training=False),
                       input_signature=[tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)])


def _build(model, layer: str, method: str):
    """One compiled step returning a map per explained network: `model` at `layer`, or for an ensemble's
    "all members" each member at its default layer (one graph, so one trace for the whole ensemble)."""
    import tensorflow as tf

    targets = [(m, default_layer(m)) for m, _ in _leaves(model)] if layer == ALL_MEMBERS else [(model, layer)]
    cams = [_cam_fn(*_grad_model(m, name), plus=method == "gradcam++") for m, name in targets]

    @tf.function(input_signature=[tf.TensorSpec([None, *model.input_shape[1:]], tf.float32),
                                  tf.TensorSpec([], tf.int32)])
    def step(x, class_index):
        return [cam(x, class_index) for cam in cams]

    return step


def _cam_fn(forward, to_logits, plus: bool):
    """The Grad-CAM (or ++) map of one network for a batch and a class (-1: its own top class), in [0, 1]."""
    import tensorflow as tf

    def cam_of(x, class_index):
        with tf.GradientTape() as tape:
            conv, head = forward(x)
            conv = tf.cast(conv, tf.float32)  # mixed-precision models compute feature maps in float16
            logits = tf.cast(to_logits(head), tf.float32)
            target = tf.where(class_index < 0, tf.argmax(logits, axis=1, output_type=tf.int32),
                              tf.fill([tf.shape(x)[0]], class_index))
            score = tf.gather(logits, target, axis=1, batch_dims=1)
        grads = tape.gradient(score, conv)
        if plus:  # Chattopadhay et al. 2018, closed form for an exponential of the score
            g2, g3 = grads ** 2, grads ** 3
            denom = 2.0 * g2 + tf.reduce_sum(conv, axis=(1, 2), keepdims=True) * g3
            alpha = g2 / tf.where(tf.abs(denom) > 1e-12, denom, tf.ones_like(denom))
            weights = tf.reduce_sum(alpha * tf.nn.relu(grads), axis=(1, 2))
        else:
            weights = tf.reduce_mean(grads, axis=(1, 2))
        cam = tf.nn.relu(tf.einsum("bhwc,bc->bhw", conv, weights))
        peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
        return tf.math.divide_no_nan(cam, peak)

    return cam_of


def _grad_model(model, layer: str):
    """A function input → (feature maps of `layer`, head) and a function head → logits."""
    import keras

    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    ends_in_softmax = getattr(activation, "__name__", "") == "softmax"
    if isinstance(last, keras.layers.Dense) and ends_in_softmax:
        head_layer, to_logits = last, (lambda h: _dense_logits(last, h))
    elif isinstance(last, keras.layers.Softmax) or (isinstance(last, keras.layers.Activation) and ends_in_softmax):
        head_layer, to_logits = last, (lambda h: h)
    else:
        head_layer, to_logits = None, (lambda h: h)  # no softmax to undo: explain the outputs as they are
    head = head_layer.input if head_layer is not None else model.outputs[0]
    try:
        forward = _features(model, layer, head)
    except ValueError:
        raise
    except Exception as err:  # a graph Keras cannot cut at this layer
        raise ValueError(f"Grad-CAM cannot reach layer {layer!r} of model {model.name!r}: {err}") from None
    if "/" in layer:  # nested: check the split graph still computes the model
        probe = np.random.default_rng(0).random((1, *model.input_shape[1:]), dtype=np.float32)
        out = forward(probe)[1]
        out = head_layer(out) if head_layer is not None else out
        if not np.allclose(np.asarray(out), np.asarray(model(probe, training=False)), atol=1e-4):
            raise ValueError(f"Grad-CAM cannot reach layer {layer!r} of model {model.name!r}; "
                             "choose a top-level layer")
    return forward, to_logits


def _dense_logits(dense, h):
    """The pre-softmax output of a softmax Dense layer for its input `h`."""
    import keras

    z = keras.ops.matmul(keras.ops.cast(h, "float32"), keras.ops.cast(dense.kernel, "float32"))
    return z + keras.ops.cast(dense.bias, "float32") if dense.use_bias else z


def _features(model, layer: str, out_tensor):
    """A function x → (feature maps of `layer`, the value of `out_tensor`), a symbolic tensor of `model`.

    A layer inside a nested sub-model (`sub/layer`) is reached by splitting the outer graph into
    what feeds the sub-model, the sub-model itself (recursively) and what follows it.
    """
    import keras

    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    if "/" not in layer:
        flat = keras.Model(inputs, [model.get_layer(layer).output, out_tensor])
        return lambda x: tuple(flat(x, training=False))
    sub_name, inner = layer.split("/", 1)
    sub = model.get_layer(sub_name)
    nodes = [n for n in sub._inbound_nodes if n.output_tensors and n.output_tensors[0] is not None]
    if len(nodes) != 1 or len(nodes[0].input_tensors) != 1:
        raise ValueError(f"sub-model {sub_name!r} is used {len(nodes)} times; Grad-CAM needs exactly one use")
    fed, made = nodes[0].input_tensors[0], nodes[0].output_tensors[0]
    before = (lambda x: x) if fed is inputs else _model_fn(keras.Model(inputs, fed))
    after = (lambda t: t) if made is out_tensor else _model_fn(keras.Model(made, out_tensor))
    within = _features(sub, inner, sub.outputs[0])

    def forward(x):
        conv, sub_out = within(before(x))
        return conv, after(sub_out)

    return forward


def _model_fn(m):
    return lambda x: m(x, training=False)
