"""File-system idioms written once: an atomic write (temporary file, then rename), a new
file written whole, a copy that shares storage where it can (reflink, copy_file_range), a
verified copy, removing a file or folder."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from pathlib import Path

from flowmake.digest import hash_bytes, hash_file

_CHUNK = 1 << 20
_SMALL_COPY = 1 << 20  # copied from memory in one read; larger files are copied, then verified
_FICLONE = 0x40049409  # Linux ioctl: share the extents of another file (btrfs, xfs)


def atomic_write(path: Path | str, data: bytes, *, fsync: bool = True) -> os.stat_result:
    """Replace ``path`` with ``data`` so that a reader sees the old or the new file, never
    a part; a crash leaves at most a ``.NAME.PID.tmp`` file beside it. Returns the stat
    of the file written (taken before the rename: a stat of ``path`` after it could be of
    a file another program put there meanwhile).

    With ``fsync`` the data reach the disk before the rename (for files that must survive
    a power cut: flow.lock), without it the rename alone orders nothing (for caches)."""
    path = os.fspath(path)
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
            written = os.fstat(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return written


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
