"""Keep TensorFlow's start-up log lines off the console, in every command, page and script.

TensorFlow 2.21 prints oneDNN/CUDA/CPU-feature notices to stderr while it is imported, some of
them (absl's "before InitializeLog" lines) even with `TF_CPP_MIN_LOG_LEVEL` set, and an error line
when it first looks for a GPU on a machine without one. `install()` — called by the entry points
(`fer_core.cli.main`, which runs every command and `serve`, and `pages/common`, which every page
imports), before anything can import TensorFlow — sets the log level and, when TensorFlow is first
imported, filters exactly those notices out of what the import writes to stderr; every other line
(a real warning or error) is passed on. It also lets TensorFlow look for GPUs inside that filter,
as the first look logs an error without one. `import fer_core` does not call it: a library must
leave its host's import system and environment alone.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import threading
from contextlib import contextmanager

log = logging.getLogger(__name__)

ENV_DEFAULTS = {"TF_CPP_MIN_LOG_LEVEL": "2"}  # 2 = warnings and errors only
CHATTER = re.compile(rb"All log messages before absl::InitializeLog|oneDNN custom operations are on|"
                     rb"cudart_stub\.cc|cuda drivers on your machine|cpu_feature_guard\.cc|"
                     rb"To enable the following instructions|rebuild TensorFlow with the appropriate compiler|"
                     rb"Unable to register cu(DNN|FFT|BLAS) factory|computation placer already registered|"
                     rb"failed call to cuInit")


def install() -> None:
    """Set TensorFlow's log level and filter its import-time notices (idempotent; a no-op once TF is loaded)."""
    for key, value in ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


@contextmanager
def filtered_stderr(pattern: re.Pattern = CHATTER):
    """Route file descriptor 2 through a pipe while the block runs; afterwards write back every line
    that does not match `pattern` (C++ libraries write to the descriptor, not to `sys.stderr`)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable stderr (e.g. closed): nothing to filter
        yield
        return
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    chunks: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(read_end, chunks), daemon=True)
    reader.start()
    try:
        yield
    finally:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(saved, 2)  # closes the pipe's only write end, so the reader sees end-of-file
        os.close(saved)
        reader.join(timeout=5)
        kept = [line for line in b"".join(chunks).splitlines(keepends=True) if not pattern.search(line)]
        if kept:
            os.write(2, b"".join(kept))


def _drain(fd: int, chunks: list[bytes]) -> None:
    with os.fdopen(fd, "rb", buffering=0) as pipe:
        while chunk := pipe.read(65536):
            chunks.append(chunk)


def _find_gpus(tf) -> None:
    """Let TensorFlow look for GPUs now, inside the filter: on a machine without one, its first look logs
    a failed cuInit as an error. Listing physical devices does not start the runtime, so device
    settings (visible devices, memory growth) can still be changed afterwards."""
    try:
        tf.config.list_physical_devices("GPU")
    except Exception as err:  # noqa: BLE001 — a broken driver shows up later, where a GPU is actually used
        log.debug("TensorFlow could not list GPUs: %s: %s", type(err).__name__, err)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` once, through the normal finders, and runs its import inside `filtered_stderr`."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # one import only; also keeps the find_spec below from recursing
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            exec_module = spec.loader.exec_module

            def quiet_exec_module(module):
                with filtered_stderr():
                    exec_module(module)
                    _find_gpus(module)

            spec.loader.exec_module = quiet_exec_module
        return spec
