"""Writing files atomically: the content goes to a temp file beside the target, then one rename puts it
in place, so a reader (or a crash) never sees half a file and concurrent writers never share a temp name.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable, Union

Content = Union[bytes, str, Callable[[Path], object]]  # bytes, text (UTF-8) or a writer given the temp path


def temp_path(path: Path | str) -> Path:
    """A new hidden temp file name beside `path` that ends in `path`'s whole name, so it keeps the
    suffixes writers check or add (`.npz`, `.keras`, `.weights.h5`, `.parquet`)."""
    path = Path(path)
    return path.with_name(f".partial-{uuid.uuid4().hex[:12]}-{path.name}")


def write_temp(path: Path | str, content: Content, *, mode: int | None = None, fsync: bool = False) -> Path:
    """`content` written to a new temp file beside `path` (see `temp_path`), which is returned; it is removed
    again if writing fails. `mode` sets its permissions regardless of the umask (else the umask's, as `open`
    gives); `fsync` flushes it to disk. Move it into place with `os.replace`, or use `atomic_write`."""
    tmp = temp_path(path)
    try:
        if callable(content):
            content(tmp)
        else:
            with open(tmp, "xb") as fh:
                fh.write(content.encode("utf-8") if isinstance(content, str) else content)
        if mode is not None:
            os.chmod(tmp, mode)
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def atomic_write(path: Path | str, content: Content, *, mode: int | None = None, fsync: bool = False) -> Path:
    """Write `content` to `path` atomically: bytes, a str (as UTF-8) or `writer(temp_path)` (e.g.
    `lambda p: np.savez(p, ...)`, `frame.to_parquet`, `model.save`) fills a temp file in the same folder,
    which then replaces `path` in one rename. On any error the temp file is removed and `path` is untouched.
    `mode` and `fsync` as in `write_temp`. Returns `path`."""
    tmp = write_temp(path, content, mode=mode, fsync=fsync)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Path(path)
