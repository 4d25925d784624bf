"""Files read whole and decoded (the compiled flow), kept decoded by a resident server for
its forks.

``read(path, kind)`` is ``LOADERS[kind](bytes of path)``, except that in a fork of a
resident server (docs/resident.md) that decoded this very file before, it is the object
the server kept. "This very file" is its identity (device, inode, size, mtime, ctime) as
the open descriptor has it: the state files are replaced by rename, never rewritten in
place, so an equal identity is the same bytes, and the answer is the one reading them
would give. A process keeps a list of what it read or wrote, which a resident child hands to its
server, which then reads those files itself between commands. ``at_end`` defers work that must
be done before a process ends but that its exit code need not wait for.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

LOADERS: dict[str, Callable[[bytes], Any]] = {}  # kind -> decoder, registered at import
# kind -> what a server does to a decoded value before keeping it (work every fork would
# otherwise repeat: the snapshot's paths split, fastpath.py); the value stays the loader's
# in kind: the reader knows both.
PREPARE: dict[str, Callable[[Any], Any]] = {}
KEEP = 4  # files of each kind a server keeps decoded (the latest read)
MAX_BYTES = 64 << 20  # larger ones are read by each fork

Identity = tuple[int, int, int, int, int]
_kept: dict[str, tuple[Identity, str, Any]] = {}  # path -> (identity, kind, value)
read_here: list[tuple[str, str]] = []  # (path, kind) this process read or wrote
forked = False  # a resident server's fork (resident/child.py): it ends with its command


_at_end: list[Callable[[], None]] = []  # in a resident fork: run after its exit code is sent


def at_end(fn: Callable[[], None]) -> None:
    """Run ``fn`` as this process ends: with atexit, except in a resident server's fork,
    which runs it once its client has its exit code (``resident/child.py``), off the
    command's time."""
    if forked:
        _at_end.append(fn)
    else:
        import atexit

        atexit.register(fn)


_at_end_keys: set[tuple[int, str]] = set()  # (process, key): see at_end_once


def at_end_once(key: str, fn: Callable[[], None]) -> None:
    """``at_end(fn)``, unless this process gave one for ``key`` already (a process that
    lives on, the Python API's, would otherwise pile them up)."""
    if (os.getpid(), key) not in _at_end_keys:
        _at_end_keys.add((os.getpid(), key))
        at_end(fn)


def run_at_end() -> None:
    """A resident fork's ``at_end`` functions (each one's errors ignored)."""
    while _at_end:
        try:
            _at_end.pop(0)()
        except Exception:
            pass


def thaw(always: bool = False) -> None:
    """Give what a command froze (``gc.freeze``) back to the collector, unless this is a
    resident server's fork (``always``: even then): it ends with the command, and moving
    its server's frozen objects back would have the exit's collections walk, and so
    copy, every page they are on (6 ms of a 10,000-target no-op)."""
    import gc

    if always or not forked:
        gc.unfreeze()


def _identity(st: os.stat_result) -> Identity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def read(path: str, kind: str) -> Any:
    """The decoded content of ``path`` (OSError as ``open`` raises it; the loader's errors
    as it raises them)."""
    return read_stat(path, kind)[1]


def read_stat(path: str, kind: str) -> tuple[os.stat_result, Any]:
    """``read``, with the stat of the file read."""
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        kept = _kept.get(path)
        if kept is not None and kept[0] == _identity(st) and kept[1] == kind:
            if "resident" in os.environ.get("FLOWMAKE_TRACE", ""):
                os.write(2, f"flowmake: resident: {path} as the server decoded it\n".encode(
                    errors="replace"))
            return st, kept[2]
        data = f.read()
    read_here.append((path, kind))
    return st, LOADERS[kind](data)


def kept(kind: str) -> list[Any]:
    """The values kept of ``kind`` (in a resident server or its fork; none elsewhere)."""
    return [value for _, k, value in _kept.values() if k == kind]


def note(path: str, kind: str) -> None:
    """``path`` was just written: a resident server may decode it for the next command."""
    read_here.append((path, kind))


def keep(path: str, kind: str) -> None:
    """In a resident server, between commands: decode ``path`` and keep it for the forks
    (a file gone or undecodable is dropped: a fork then reads it as usual)."""
    loader = LOADERS.get(kind)
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            kept = _kept.pop(path, None)
            if kept is not None and kept[0] == _identity(st) and kept[1] == kind:
                _kept[path] = kept  # the latest again
                return
            if loader is None or st.st_size > MAX_BYTES:
                return
            value = loader(f.read())
            prepare = PREPARE.get(kind)
            if prepare is not None:
                value = prepare(value)
    except Exception:  # whatever the loader raises, the fork meets it again and reports it
        _kept.pop(path, None)
        return
    _kept[path] = (_identity(st), kind, value)
    of_kind = [p for p, (_, k, _) in _kept.items() if k == kind]
    for old in of_kind[:-KEEP]:
        del _kept[old]
