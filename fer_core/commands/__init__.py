"""One file per CLI command group: argparse wiring and a thin `run(args)` over the Python API; the top
layer, beside cli.py. Stage code knows nothing of argparse, and each file here imports its stage lazily
(inside `run`), so `--help` and the light commands start without TensorFlow."""
