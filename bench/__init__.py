"""Speed scripts: each prints ratios against a baseline run in the same process. Run one from the
repository root as a module, e.g. `python -m bench.bench_default`, so `fer_core` imports without path edits."""
