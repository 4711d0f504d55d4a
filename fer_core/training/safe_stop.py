"""Stopping a run safely: SIGTERM (a scheduler's time limit, `timeout`) and Ctrl-C become KeyboardInterrupt,
held back while a checkpoint is written, and every checkpoint file is replaced atomically, so the files
on disk always agree with each other and an interrupted run can resume or ship its best epoch.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from ..base.files import atomic_write


def replace_atomically(path: Path, write) -> None:
    """`write(temporary path)` next to `path`, then rename it over `path`: a crash leaves the old file whole
    (`base.files.atomic_write`; the temp name keeps the suffix Keras checks, .keras or .weights.h5)."""
    atomic_write(path, write)


_STOP = {"deferring": False, "pending": False}  # a stop signal that arrived while a checkpoint was written


@contextlib.contextmanager
def signals_deferred():
    """Hold a stop signal (see `stop_signals_interrupt`) until the block ends, then act on it."""
    _STOP["deferring"] = True
    try:
        yield
    finally:
        _STOP["deferring"] = False
    if _STOP["pending"]:
        _STOP["pending"] = False
        raise KeyboardInterrupt


@contextlib.contextmanager
def stop_signals_interrupt():
    """Let SIGTERM (a scheduler's time limit, `timeout`) and Ctrl-C stop training with KeyboardInterrupt,
    but never halfway through writing a checkpoint. Only the main thread may set signal handlers, so
    elsewhere (a Streamlit page) this changes nothing."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        if _STOP["deferring"]:
            _STOP["pending"] = True
        else:
            raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _STOP["pending"] = False
