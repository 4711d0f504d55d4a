"""The device and precision decisions training and pages share."""
import keras

from fer_core.base import runtime


def test_device_description_names_the_device_and_backend():
    text = runtime.device_description()
    assert text.endswith(f"Keras backend {keras.backend.backend()}")
    assert text.startswith("CPU" if not runtime.gpu_names() else f"{len(runtime.gpu_names())}× GPU")


def test_precision_policies_and_when_bfloat16_needs_xla():
    try:
        assert runtime.set_precision("bfloat16") == "mixed_bfloat16"
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
        assert runtime.set_precision("off") == "float32"
        assert runtime.set_precision("auto") == ("mixed_float16" if runtime.gpu_names() else "float32")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert runtime.needs_xla("float32") is False
    assert runtime.needs_xla("mixed_bfloat16") is (not runtime.gpu_names())
