"""The model zoo: named builders for every architecture the product trains.

The seed studies' CNNs are rebuilt faithfully (baseline, larger, complex), transfer-learning
heads sit on Keras applications, and `fer_resvgg` is our own compact design for the best
accuracy per CPU-minute. Every builder uses Keras 3 layers only, so it also runs on JAX.
Each architecture also names the preprocessing its inputs expect.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras
from keras import layers

from .preprocess import Preprocessing


@dataclass(frozen=True)
class Architecture:
    """A named builder, what it is, and the preprocessing its input expects."""

    name: str
    build: Callable[..., keras.Model]
    description: str
    preprocessing: Preprocessing = Preprocessing(48, 1, "unit", equalize=True)
    pretrainable: bool = False  # a Keras application backbone that could start from ImageNet weights


def _head(x, num_classes: int):
    # float32 softmax so mixed precision never returns bfloat16 probabilities
    return layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)


def _seed_cnn(num_classes: int, input_shape, dense_units: int, name: str) -> keras.Model:
    """The seed studies' plain CNN: four valid 3×3 convs (32, 64, 128, 128) with three max-pools,
    two dropouts, then one ReLU dense layer; only the dense width differs between their two sizes."""
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(32, 3, activation="relu")(inputs)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Dropout(0.25)(x)
    x = layers.Conv2D(128, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(128, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Dropout(0.25)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(dense_units, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    return keras.Model(inputs, _head(x, num_classes), name=name)


def baseline_cnn(num_classes: int = 7, input_shape=(48, 48, 1)) -> keras.Model:
    """The seed studies' baseline CNN with a 128-unit dense layer (≈0.5 M)."""
    return _seed_cnn(num_classes, input_shape, 128, "baseline_cnn")


def larger_cnn(num_classes: int = 7, input_shape=(48, 48, 1)) -> keras.Model:
    """The seed studies' larger CNN: the same convs with a 1024-unit dense layer (≈2.4 M)."""
    return _seed_cnn(num_classes, input_shape, 1024, "larger_cnn")


def complex_cnn(num_classes: int = 7, input_shape=(48, 48, 1)) -> keras.Model:
    """The seed studies' "complex CNN": five conv blocks 32→512 with BatchNorm, LeakyReLU 0.1,
    GaussianNoise and Dropout 0.2, then Dense 256→512 (≈1.8 M)."""
    inputs = keras.Input(input_shape)
    x = layers.GaussianNoise(0.1)(inputs)
    for filters in (32, 64, 128, 256, 512):
        x = layers.Conv2D(filters, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.LeakyReLU(0.1)(x)
        x = layers.MaxPooling2D()(x)
        x = layers.Dropout(0.2)(x)
    x = layers.Flatten()(x)
    for units in (256, 512):
        x = layers.Dense(units)(x)
        x = layers.BatchNormalization()(x)
        x = layers.LeakyReLU(0.1)(x)
        x = layers.Dropout(0.2)(x)
    return keras.Model(inputs, _head(x, num_classes), name="complex_cnn")


def _conv_bn(x, filters: int, name: str):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def fer_resvgg(num_classes: int = 7, input_shape=(48, 48, 1), width: int = 32) -> keras.Model:
    """Our compact design: VGG-style stages (conv-BN-ReLU pairs) with a residual shortcut per stage,
    global average pooling and dropout (≈1.2 M at width 32). Every stage costs about the same FLOPs,
    so the net spends its compute where FER's 48×48 faces carry detail."""
    inputs = keras.Input(input_shape)
    x = _conv_bn(inputs, width, "stem")
    for stage, filters in enumerate((width, width * 2, width * 4, width * 8), start=1):
        shortcut = x
        x = _conv_bn(x, filters, f"s{stage}a")
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"s{stage}b_conv")(x)
        x = layers.BatchNormalization(name=f"s{stage}b_bn")(x)
        if shortcut.shape[-1] != filters:
            shortcut = layers.Conv2D(filters, 1, use_bias=False, name=f"s{stage}_proj")(shortcut)
            shortcut = layers.BatchNormalization(name=f"s{stage}_proj_bn")(shortcut)
        x = layers.Activation("relu", name=f"s{stage}_out")(layers.Add(name=f"s{stage}_add")([x, shortcut]))
        if stage < 4:
            x = layers.MaxPooling2D(name=f"s{stage}_pool")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.4)(x)
    return keras.Model(inputs, _head(x, num_classes), name="fer_resvgg" if width == 32 else f"fer_resvgg_w{width}")


def fer_resvgg_wide(num_classes: int = 7, input_shape=(48, 48, 1)) -> keras.Model:
    """`fer_resvgg` at 1.5× the width (48→384 filters, ≈2.8 M params, ≈2.2× the FLOPs): worth its cost
    where a GPU trains it, and a differently shaped ensemble member than the width-32 nets."""
    return fer_resvgg(num_classes, input_shape, width=48)


def fer_resvgg_slim(num_classes: int = 7, input_shape=(48, 48, 1)) -> keras.Model:
    """`fer_resvgg` at half the width (16→128 filters, ≈0.31 M params, a quarter of the multiply-adds): a
    student for distillation where speed matters most (≈1,700 faces/s on 2 CPU cores as a LiteRT export,
    docs/distillation.md)."""
    return fer_resvgg(num_classes, input_shape, width=16)


def _transfer(app_name: str, size: int):
    """A builder putting a global-pooled Keras application under a small classification head.

    FER faces are grayscale 48×48: the model repeats the channel to RGB and resizes inside itself.
    ImageNet weights are used when `weights="imagenet"` and reachable; here training uses weights=None.
    """

    def build(num_classes: int = 7, input_shape=(48, 48, 3), weights=None) -> keras.Model:
        app = getattr(keras.applications, app_name)
        inputs = keras.Input(input_shape)
        x = inputs if input_shape[-1] == 3 else layers.Concatenate()([inputs] * 3)
        x = layers.Resizing(size, size)(x)
        x = layers.Rescaling(255.0)(x)  # the applications expect 0–255 pixels
        x = getattr(keras.applications, _PREPROCESS_MODULE[app_name]).preprocess_input(x) \
            if app_name in _PREPROCESS_MODULE else x
        base = app(include_top=False, weights=weights, input_shape=(size, size, 3), pooling="avg")
        x = base(x)
        x = layers.Dropout(0.3)(x)
        x = layers.Dense(256, activation="relu")(x)
        return keras.Model(inputs, _head(x, num_classes), name=f"{app_name.lower()}_transfer")

    build.__doc__ = f"{app_name} backbone at {size}×{size} with a 256-unit head (grayscale → RGB inside)."
    return build


_PREPROCESS_MODULE = {"VGG16": "vgg16", "ResNet50V2": "resnet_v2"}  # EfficientNet rescales itself

ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (
    Architecture("baseline_cnn", baseline_cnn, "Seed baseline CNN: 4 conv layers, dense 128 (≈0.5 M params)"),
    Architecture("larger_cnn", larger_cnn, "Seed larger CNN: 4 conv layers, dense 1024 (≈2.4 M params)"),
    Architecture("complex_cnn", complex_cnn,
                 "Seed complex CNN: 5 conv blocks 32→512, BatchNorm, LeakyReLU, noise, dense 256→512 (≈1.8 M)"),
    Architecture("fer_resvgg", fer_resvgg,
                 "Ours: residual VGG-style stages 32→256 with BatchNorm and global pooling (≈1.2 M params)"),
    Architecture("fer_resvgg_wide", fer_resvgg_wide,
                 "Ours, 1.5× wider: residual VGG-style stages 48→384 (≈2.8 M params)"),
    Architecture("fer_resvgg_slim", fer_resvgg_slim,
                 "Ours, half the width: residual VGG-style stages 16→128 (≈0.31 M params), a fast student"),
    Architecture("vgg16_transfer", _transfer("VGG16", 64), "VGG16 backbone at 64×64 (transfer learning)",
                 Preprocessing(48, 3, "unit", equalize=True), pretrainable=True),
    Architecture("resnet50v2_transfer", _transfer("ResNet50V2", 64), "ResNet50V2 backbone at 64×64 (transfer learning)",
                 Preprocessing(48, 3, "unit", equalize=True), pretrainable=True),
    Architecture("efficientnet_transfer", _transfer("EfficientNetB0", 64),
                 "EfficientNetB0 backbone at 64×64 (transfer learning)", Preprocessing(48, 3, "unit", equalize=True),
                 pretrainable=True),
)}


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; choose from {', '.join(ARCHITECTURES)}") from None


def build(name: str, num_classes: int, preprocessing: Preprocessing | None = None, **kwargs) -> keras.Model:
    """Build architecture `name` for `num_classes` outputs and the given (or its default) preprocessing."""
    arch = get_architecture(name)
    pre = preprocessing or arch.preprocessing
    shape = (pre.input_size, pre.input_size, pre.channels)
    return arch.build(num_classes=num_classes, input_shape=shape, **kwargs)
