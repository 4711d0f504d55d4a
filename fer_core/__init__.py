"""fer_core: facial emotion recognition — data, models, training, evaluation and inference.

One file per stage: labels, data, preprocess, architectures, train, evaluate, registry,
faces, predict, gradcam, video. Importable without Streamlit; `python -m fer_core` is its CLI.
"""
__version__ = "0.1.0"
