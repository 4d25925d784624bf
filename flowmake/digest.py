"""Content digests (XXH3-128) of bytes, files and folders: the kernel's hashing primitives.

No cache here: ``plan/fingerprint.py``'s Hasher puts a stat cache in front of these, and
workers call :func:`digest_output` on outputs they just wrote. Every digest value is part
of records, flow.lock and cache blob ids, so none of these may change what it returns.
"""

from __future__ import annotations

import mmap
import os
import stat
import time
from collections.abc import Iterable
from io import FileIO

import xxhash

from flowmake.errors import FlowmakeError
from flowmake.model import StatEntry

_CHUNK = 1 << 20
_WINDOW = 64 << 20  # mapped at a time: a multiple of the page size, as offsets must be
_SKIP_DIRS = {".flowmake", ".git"}


def hash_bytes(data: bytes | str) -> str:
    return xxhash.xxh3_128_hexdigest(data.encode() if isinstance(data, str) else data)


def hash_file(path: str) -> str:
    """XXH3-128 of a file's content: a small file in one read (its cost is syscalls), a
    larger one mapped window by window and hashed without copying it out of the page
    cache (~1.5-2x a read loop; git's index_core maps every blob over 32 KiB). Windows
    keep the resident set small; a file cut short meanwhile is read, not mapped, from
    there on (touching a mapped page past the end of a file would be a SIGBUS)."""
    with open(path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        if size <= _CHUNK:
            return xxhash.xxh3_128_hexdigest(f.readall())
        h = xxhash.xxh3_128()
        for offset in range(0, size, _WINDOW):
            length = min(_WINDOW, size - offset)
            if os.fstat(f.fileno()).st_size < offset + length or not _hash_window(
                    h, f.fileno(), offset, length):
                f.seek(offset)
                return _hash_chunks(f, h)
        return h.hexdigest()


def _hash_window(h: xxhash.xxh3_128, fd: int, offset: int, length: int) -> bool:
    """Feed ``length`` bytes of ``fd`` from ``offset`` to ``h`` through a map; False if
    the file cannot be mapped (then nothing was fed)."""
    try:
        window = mmap.mmap(fd, length, prot=mmap.PROT_READ, offset=offset)
    except (OSError, ValueError):
        return False
    with window:
        window.madvise(mmap.MADV_SEQUENTIAL)
        window.madvise(mmap.MADV_WILLNEED)
        h.update(window)  # update() releases the GIL (the one-shot functions keep it)
    return True


def _hash_chunks(f: FileIO, h: xxhash.xxh3_128 | None = None) -> str:
    """The rest of ``f`` (fed to ``h``, a new hash by default) in 1 MiB chunks into one
    reused buffer."""
    h = h if h is not None else xxhash.xxh3_128()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    while n := f.readinto(buf):
        h.update(view[:n])
    return h.hexdigest()


def _utf8_name(path: str, shown: str | None = None) -> str:
    """``path``, if its name is UTF-8 text: keys and records hold paths as text, so a
    file named with other bytes under an input folder or glob is an error naming it
    (``shown``, by default ``path``)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(shown or path).decode("utf-8", "backslashreplace")
        raise FlowmakeError(f"{shown}: the file name is not valid UTF-8",
                            hint="rename it, or keep it out of the inputs' folders and globs"
                            ) from None
    return path


def tree_digest(files: Iterable[tuple[str, str | None]]) -> str:
    """A folder's digest from its files' (relative path, digest) pairs, in sorted order.

    The artifact cache recomputes it from a folder manifest to verify a download.
    """
    h = xxhash.xxh3_128()
    for rel, digest in files:
        h.update(f"{rel}\0{digest}\n".encode())
    return "d" + h.hexdigest()[1:]  # folders and files never share a digest


def walk_files(base: str, shown: str) -> list[str]:
    """Files below folder ``base``, relative to it, sorted; symlinked folders are not
    followed, ``.flowmake`` and ``.git`` are skipped. ``shown`` names ``base`` in errors.
    The same walk as the Hasher's (``plan/fingerprint.py``): both must give one digest."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        rel = os.path.relpath(dirpath, base)
        for name in filenames:
            found.append(name if rel == "." else f"{rel}/{name}".replace(os.sep, "/"))
    return sorted(_utf8_name(rel, f"{shown}/{rel}") for rel in found)


def _file_or_none(path: str) -> str | None:
    """A file's digest, None if it is gone (a dangling symlink); a folder's if it is one."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return folder_digest(path) if stat.S_ISDIR(st.st_mode) else hash_file(path)


def folder_digest(base: str) -> str:
    """A folder's digest without any cache (the Hasher's digest of it, uncached)."""
    return tree_digest((rel, _file_or_none(f"{base}/{rel}")) for rel in walk_files(base, base))


def digest_output(full_path: str) -> tuple[str, StatEntry | None] | None:
    """A fresh output's digest and its stat-cache entry (None for a folder), without any
    cache; None when it does not exist. Stat first, then read: a file written meanwhile
    has a newer mtime than its entry says, so it is hashed again next time."""
    try:
        st = os.stat(full_path)
    except OSError:
        return None
    if stat.S_ISDIR(st.st_mode):
        return folder_digest(full_path), None
    digest = hash_file(full_path)
    return digest, StatEntry(st.st_size, st.st_mtime_ns, st.st_ino, time.time_ns(), digest)


def digest_path(full_path: str) -> str | None:
    """Digest of a file or folder without any cache (workers use it on fresh outputs)."""
    if os.path.isdir(full_path):
        return folder_digest(full_path)
    if os.path.exists(full_path):
        return hash_file(full_path)
    return None
