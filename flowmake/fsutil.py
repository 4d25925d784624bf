"""File-system idioms written once: an atomic write (temporary file, then rename)."""

from __future__ import annotations

import os
from pathlib import Path


def atomic_write(path: Path | str, data: bytes, *, fsync: bool = True) -> None:
    """Replace ``path`` with ``data`` so that a reader sees the old or the new file, never
    a part; a crash leaves at most a ``.NAME.PID.tmp`` file beside it.

    With ``fsync`` the data reach the disk before the rename (for files that must survive
    a power cut: flow.lock), without it the rename alone orders nothing (for caches)."""
    path = os.fspath(path)
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
