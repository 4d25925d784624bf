"""The project lock, ``.flowmake/lock``: one writer (build, clean, accept, cache gc) at a
time. An flock, so the kernel releases it when its holder dies, even by SIGKILL."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from flowmake.errors import StateError
from flowmake.store import paths

if TYPE_CHECKING:
    from pathlib import Path


def cannot_write(exc: OSError) -> bool:
    """Whether ``exc`` says the file or folder cannot be written (a read-only state)."""
    import errno

    return exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS)


@contextlib.contextmanager
def project_lock(state_dir: Path, on_wait: Callable[[str], None] | None) -> Iterator[bool]:
    """Hold ``.flowmake/lock`` (flock: released by the kernel if we are killed).

    A second build waits for the first, telling the user once which process it waits for.
    Without ``on_wait`` nothing waits: the lock is held if it was free, and the value says
    whether it is.
    """
    try:
        fd = _open_lock(state_dir)
    except OSError as exc:
        if on_wait is None and cannot_write(exc):
            yield False  # a read-only state: nobody can build here, nothing to wait for
            return
        raise _lock_error(state_dir, exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is None:
                yield False
                return
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            on_wait(f"waiting for another flowmake build (pid {holder}) to finish...")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield True
    finally:
        os.close(fd)


def _open_lock(state_dir: Path) -> int:
    state_dir.mkdir(parents=True, exist_ok=True)
    return os.open(state_dir / paths.LOCK, os.O_RDWR | os.O_CREAT, 0o644)


def _lock_error(state_dir: Path, exc: OSError) -> StateError:
    """The lock (or its folder) cannot be made: one StateError naming which."""
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        return StateError(str(state_dir), "exists but is not a folder")
    return StateError(str(state_dir / paths.LOCK), (exc.strerror or str(exc)).lower())
