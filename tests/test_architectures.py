"""Every builder produces the documented input/output shapes and parameter counts."""
import pytest

from fer_core.models import architectures
from fer_core.models.preprocess import Preprocessing

# (name, documented parameter range for 7 classes)
SEED_AND_OURS = [
    ("baseline_cnn", 0.4e6, 0.7e6),
    ("larger_cnn", 2.2e6, 2.6e6),
    ("complex_cnn", 1.7e6, 1.95e6),
    ("fer_resvgg", 1.0e6, 1.4e6),
    ("fer_resvgg_wide", 2.6e6, 3.0e6),
    ("fer_resvgg_slim", 0.28e6, 0.34e6),
]


@pytest.mark.parametrize("name,low,high", SEED_AND_OURS)
def test_builder_shapes_and_params(name, low, high):
    model = architectures.build(name, 7)
    assert model.input_shape == (None, 48, 48, 1)
    assert model.output_shape == (None, 7)
    assert low <= model.count_params() <= high


def test_builder_follows_label_count_and_preprocessing():
    model = architectures.build("fer_resvgg", 4, Preprocessing(48, 3, "unit"))
    assert model.input_shape == (None, 48, 48, 3)
    assert model.output_shape == (None, 4)


def test_complex_cnn_has_the_seed_ingredients():
    kinds = {type(layer).__name__ for layer in architectures.build("complex_cnn", 7).layers}
    assert {"GaussianNoise", "BatchNormalization", "LeakyReLU", "Dropout"} <= kinds
    layers = architectures.build("complex_cnn", 7).layers
    convs = [layer.filters for layer in layers if type(layer).__name__ == "Conv2D"]
    assert convs == [32, 64, 128, 256, 512]


def test_transfer_model_takes_grayscale_and_resizes_inside():
    arch = architectures.get_architecture("efficientnet_transfer")
    assert arch.preprocessing.channels == 3
    model = architectures.build("efficientnet_transfer", 4, Preprocessing(48, 1, "unit"))
    assert model.input_shape == (None, 48, 48, 1)
    assert model.output_shape == (None, 4)


def test_unknown_architecture_is_a_clear_error():
    with pytest.raises(ValueError, match="choose from"):
        architectures.get_architecture("resnet9000")
