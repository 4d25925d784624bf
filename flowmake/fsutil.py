"""File-system idioms written once: an atomic write (temporary file, then rename), a new
file written whole, a copy that shares storage where it can (reflink, copy_file_range), a
verified copy, removing a file or folder."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Sequence
from pathlib import Path

from flowmake.digest import hash_bytes, hash_file

Buffer = bytes | bytearray | memoryview  # a piece atomic_write writes
_CHUNK = 1 << 20
_SMALL_COPY = 1 << 20  # copied from memory in one read; larger files are copied, then verified
_FICLONE = 0x40049409  # Linux ioctl: share the extents of another file (btrfs, xfs)


def atomic_write(path: Path | str, data: bytes | Sequence[Buffer], *,
                 fsync: bool = True) -> os.stat_result:
    """Replace ``path`` with ``data`` so that a reader sees the old or the new file, never
    a part; a crash leaves at most a ``.NAME.PID.tmp`` file beside it. Returns the stat
    of the file written (taken before the rename: a stat of ``path`` after it could be of
    a file another program put there meanwhile). ``data`` may be pieces to write one
    after another (written as they are, not joined into one copy first).

    With ``fsync`` the data reach the disk before the rename (for files that must survive
    a power cut: flow.lock), without it the rename alone orders nothing (for caches)."""
    path = os.fspath(path)
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        try:
            _write_all(fd, [data] if isinstance(data, (bytes, bytearray, memoryview)) else data)
            if fsync:
                os.fsync(fd)
            written = os.fstat(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return written


_IOV_MAX = 1024  # pieces one writev takes (Linux's and POSIX's least UIO_MAXIOV)


def _write_all(fd: int, pieces: Sequence[Buffer]) -> None:
    views = [memoryview(p) for p in pieces if len(p)]
    while views:
        left = os.writev(fd, views[:_IOV_MAX])
        done = 0
        while done < len(views) and left >= views[done].nbytes:
            left -= views[done].nbytes
            done += 1
        views = views[done:]
        if left:
            views[0] = views[0].cast("B")[left:]


def keep_blocks(path: str, aside: str) -> bool:
    """Give ``path``'s file a second name, ``aside`` (replacing a file of that name), so
    that a rename over ``path`` does not free its blocks then: whoever removes ``aside``
    later does (replacing a 3.3 MB flow.lock took ~3 ms here, 0.1 ms with it kept). False
    when there is no file, or no link can be made (another filesystem, no hard links)."""
    try:
        os.unlink(aside)
    except FileNotFoundError:
        pass
    except OSError:  # a read-only folder, a folder of that name: the rename frees them
        return False
    try:
        os.link(path, aside)
    except OSError:
        return False
    return True


def discard(path: str) -> None:
    """Remove the file ``path`` if it can be (what is left is harmless: a cache's spare)."""
    with contextlib.suppress(OSError):
        os.unlink(path)


def write_new(path: str, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` (created with ``mode``, the umask applying, or truncated)."""
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as out:
        out.write(data)


def temp_beside(dest: str) -> str:
    """A hidden temporary name in ``dest``'s folder (made if need be), for a rename into place."""
    parent = os.path.dirname(dest) or "."
    os.makedirs(parent, exist_ok=True)
    return os.path.join(parent, f".{os.path.basename(dest)}.flowmake-{os.urandom(6).hex()}")


def remove_path(path: str) -> None:
    """Remove a file, a symlink (never what it points to) or a folder, if there."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def copy_verified(source: str, dest: str, digest: str, mode: int) -> bool:
    """Copy ``source`` to a new file ``dest``; False (``dest`` left to the caller to remove)
    when the content does not hash to ``digest``."""
    if os.path.getsize(source) <= _SMALL_COPY:  # one read, verified before it is written
        data = Path(source).read_bytes()
        if hash_bytes(data) != digest:
            return False
        write_new(dest, data, mode)
        return True
    copy_file(source, dest, mode)  # a reflink where the filesystem can, then a verifying read
    return hash_file(dest) == digest


def copy_file(source: str, dest: str, mode: int = 0o666) -> None:
    """A copy that shares storage where it can: reflink, then copy_file_range, then copy."""
    with open(source, "rb") as src:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as dst:
            if not _fast_copy(src.fileno(), dst.fileno()):
                src.seek(0)
                dst.seek(0)
                dst.truncate()
                shutil.copyfileobj(src, dst, _CHUNK)


def _fast_copy(src: int, dst: int) -> bool:
    """Copy inside the kernel: a reflink (btrfs, xfs), else copy_file_range; False if neither."""
    try:
        import fcntl

        fcntl.ioctl(dst, _FICLONE, src)
        return True
    except (OSError, ImportError):
        pass
    try:
        size, copied = os.fstat(src).st_size, 0
        while copied < size:
            n = os.copy_file_range(src, dst, size - copied)
            if n == 0:
                break
            copied += n
        return copied == size
    except (OSError, AttributeError):  # another filesystem, an old kernel, not Linux
        return False


def is_executable(path: str) -> bool:
    try:
        return bool(os.stat(path).st_mode & stat.S_IXUSR)
    except OSError:
        return False
