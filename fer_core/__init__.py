"""fer_core: facial emotion recognition — data, models, training, evaluation and inference.

    import fer_core
    result = fer_core.analyze("photo.jpg")        # every face: .box, .label, .probabilities
    print(result.to_json())                       # the `python -m fer_core predict --json` document

Packages by layer, each importing only from the ones below it (tests/test_import_graph.py checks):
base → data → models → inference → evaluation | video → training | serving, with `api` (`analyze`, `load`),
`cli` and `commands` (one file per CLI command) on top. Each package's docstring says what it owns.
Importable without Streamlit and without loading TensorFlow until a model is used; `python -m fer_core`
is its CLI. Importing it changes nothing global (no import hook, no environment variable): the entry points
(the CLI and its `serve`, the dashboard's pages) quiet TensorFlow's start-up log with `fer_core.base.quiet.install()`.
"""
__version__ = "0.1.0"

__all__ = ["analyze", "load"]


def __getattr__(name: str):
    """`fer_core.analyze` and `fer_core.load` (see `fer_core.api`), imported on first use so that
    `import fer_core` stays light."""
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'fer_core' has no attribute {name!r}")
