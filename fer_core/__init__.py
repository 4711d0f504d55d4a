"""fer_core: facial emotion recognition — data, models, training, evaluation and inference.

One file per stage: labels, data (loading), explore and quality (dataset analysis), preprocess,
architectures, train, evaluate, registry, images (photo intake), faces, predict, gradcam, video,
runtime (device). Importable without Streamlit; `python -m fer_core` is its CLI.
"""
__version__ = "0.1.0"

from . import quiet as _quiet

_quiet.install()  # before anything can import TensorFlow: keep its start-up log lines off the console
