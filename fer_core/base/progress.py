"""Progress reporting for long jobs: the callback type every stage accepts and the CLI's printer.

A stage takes `progress(done, total, message)` and calls it now and then; the pages pass a
Streamlit progress bar, the CLI passes `stderr_progress`. It lives here, apart from the CLI, so
that stages can use it without importing the CLI (which imports every stage).
"""
from __future__ import annotations

import sys
from typing import Callable

ProgressFn = Callable[[int, int, str], None]


def stderr_progress(done: int, total: int, message: str) -> None:
    """Rewrite one stderr line with `message`, ending it when `done == total`; silent unless stderr is
    a terminal, so piped output and logs stay clean."""
    if sys.stderr.isatty():
        print(f"\r{message}", end="\n" if done >= total else "", file=sys.stderr, flush=True)
