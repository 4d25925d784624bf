"""The no-op fast path: answer "everything is fresh" from stats alone, as ninja does.

After a build in which every selected target was fresh, we save the stat of every file
and folder that entered those targets' keys (inputs, outputs, code), with the build's
selection and params. The next identical `flowmake build` stats those paths; if none
changed it is done, without parsing flow.toml, loading the graph or reading records.
`flowmake status` with the same selection answers from it too ("all fresh": the targets
and their upstream are saved for its tree).
Those stats are the whole cost of a large no-op (20,000 system calls for 10,000 copy
targets), so a long list is shared among forked processes, one part each (``unchanged``).

Anything that could change the answer disables or invalidates it: globs, URLs and
`always` targets are never saved; flow.toml's stat, the overrides, the selection, the
env values in keys, flowmake's version and the site folders' mtimes are in the
signature; an entry modified within RACY_NS of the save is not trusted; and every write
of a record deletes the file (``Store``), so `clean`, `accept` or another build never
leave it stale. (The store does not know of this module: it is told records changed, and
the command's callback calls :func:`invalidate`.)

This module is the snapshot only: save, read (:func:`still_fresh`), :func:`invalidate`; it
never prints and knows no file name: its callers hand it the snapshot's path
(``store/paths.py``). The command half, a whole no-op `build` or `status`, is
``cli/noop.py``.
"""

from __future__ import annotations

import marshal
import os
import struct
import sys
import time
from collections.abc import Iterable
from typing import Any

FORMAT = 4
RACY_NS = 2_000_000_000
SEP = "\0"  # paths and names are kept as one string each: one object to load, not 20,000
_ENTRY = struct.Struct("<QqQ")  # size, mtime_ns, inode: one fixed-size record per path
# From this many paths on, the check is shared among processes: each os.stat is a ~2-3 us
# system call, and on 2 cores two halves take ~35 ms instead of ~65 ms for 20,000 paths,
# while a fork costs ~1-2 ms.
PARALLEL_MIN = 4000
MAX_PROCESSES = 4


def _stat(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _stats(paths: list[str]) -> bytes:
    """The (size, mtime_ns, inode) of every path as fixed-size records; OSError if one is
    missing. Compared as bytes: nothing of the last save has to be unpacked."""
    pack = _ENTRY.pack
    return b"".join([pack(s.st_size, s.st_mtime_ns, s.st_ino) for s in map(os.stat, paths)])


def _same(paths: list[str], saved: bytes) -> bool:
    try:
        return _stats(paths) == saved
    except OSError:
        return False


def unchanged(paths: list[str], saved: bytes) -> bool:
    """Whether every path still has the stat saved for it, checked by up to MAX_PROCESSES
    processes at once for a long list (forked: the caller has started no thread)."""
    size = _ENTRY.size
    if len(saved) != len(paths) * size:
        return False
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    parts = min(cpus, MAX_PROCESSES, len(paths) // (PARALLEL_MIN // 2))
    if parts < 2 or not hasattr(os, "fork"):
        return _same(paths, saved)
    step = -(-len(paths) // parts)
    children: list[int] = []
    for i in range(1, parts):
        chunk = paths[i * step:(i + 1) * step]
        expected = saved[i * step * size:(i * step + len(chunk)) * size]
        try:
            pid = os.fork()
        except OSError:  # no process to spare: this one checks that part too
            if not _same(chunk, expected):
                return _reap(children, False)
            continue
        if pid == 0:  # the child: its answer is its exit status
            code = 1
            try:
                code = 0 if _same(chunk, expected) else 1
            finally:
                os._exit(code)
        children.append(pid)
    return _reap(children, _same(paths[:step], saved[:step * size]))


def _reap(children: list[int], ok: bool) -> bool:
    for pid in children:
        _, status = os.waitpid(pid, 0)
        ok = ok and os.waitstatus_to_exitcode(status) == 0
    return ok


def signature(flow_file: str, overrides: list[str], selection: list[str],
              env: Iterable[str], site_dirs: Iterable[str]) -> tuple[Any, ...] | None:
    from flowmake import __version__

    st = _stat(flow_file)
    if st is None:
        return None
    env_values = tuple((n, os.environ.get(n)) for n in sorted(env))
    # Installing or removing a package (a new observer plugin, say) changes the mtime of
    # its site folder, and with it the signature (another environment has other folders).
    installed = tuple((d, found[1]) for d in site_dirs if (found := _stat(d)) is not None)
    return (__version__, sys.hexversion, flow_file, *st, tuple(overrides),
            tuple(selection), env_values, installed)


def _site_dirs() -> list[str]:
    """Where packages are installed (sysconfig is imported only when the answer is saved)."""
    import site
    import sysconfig

    paths = sysconfig.get_paths()
    return list(dict.fromkeys([paths["purelib"], paths["platlib"], site.getusersitepackages()]))


def load(snapshot: str) -> tuple[Any, ...] | None:
    """The saved snapshot at path ``snapshot``; None when there is none, or none whole."""
    try:
        with open(snapshot, "rb") as f:
            saved = marshal.loads(f.read())  # loads(read()): marshal.load(f) reads in dribs
    except (OSError, EOFError, ValueError, TypeError):
        return None
    return saved if isinstance(saved, tuple) and len(saved) == 11 and saved[0] == FORMAT \
        else None


def still_fresh(snapshot: str, flow_file: str, overrides: list[str],
          selection: list[str]) -> tuple[Any, ...] | None:
    """If nothing changed since the last all-fresh build: (the fresh targets' names joined
    by SEP in build order, their count, history to keep, each one's upstream as indices
    into the names, joined by "," then SEP, and the status tree's roots as indices);
    else None."""
    saved = load(snapshot)
    if saved is None:
        return None
    _, sig, env_names, site_dirs, paths, stats, names, count, history, upstream, roots = saved
    if sig != signature(flow_file, overrides, selection, env_names, site_dirs):
        return None
    if not unchanged(paths.split(SEP), stats):
        return None
    return names, count, history, upstream, roots


def save(snapshot: str, flow_file: str, overrides: list[str], selection: list[str],
         env_names: Iterable[str], paths: Iterable[str], names: list[str], history: int,
         upstream: dict[str, list[str]], roots: list[str]) -> bool:
    """Save the stats of ``paths`` (files and folders, walked); False if one is racy.
    ``names`` (in build order), ``upstream`` and ``roots`` let `status` answer too."""
    deadline = time.time_ns() - RACY_NS
    expanded = list(_expand(paths))
    try:
        stats = _stats(expanded)
    except OSError:
        return False
    if any(mtime_ns >= deadline for _, mtime_ns, _ in _ENTRY.iter_unpack(stats)):
        return False
    env_names = sorted(set(env_names))
    site_dirs = _site_dirs()
    sig = signature(flow_file, overrides, selection, env_names, site_dirs)
    if sig is None or sig[4] >= deadline:  # sig[4]: flow.toml's mtime_ns
        return False
    from flowmake.fsutil import atomic_write  # only when an answer is saved

    index = {n: str(i) for i, n in enumerate(names)}
    data = marshal.dumps((FORMAT, sig, env_names, site_dirs, SEP.join(expanded), stats,
                          SEP.join(names), len(names), history,
                          SEP.join(",".join(index[u] for u in upstream[n]) for n in names),
                          ",".join(index[r] for r in roots)))
    try:
        atomic_write(snapshot, data, fsync=False)
    except OSError:
        return False
    return True


def _expand(paths: Iterable[str]) -> Iterable[str]:
    """Files as they are; a folder as itself, its subfolders and every file inside."""
    for path in dict.fromkeys(paths):
        yield path
        if os.path.isdir(path):
            for dirpath, dirnames, filenames in os.walk(path):
                for name in dirnames + filenames:
                    yield os.path.join(dirpath, name)


def invalidate(snapshot: str) -> None:
    """Delete the snapshot at ``snapshot`` (nothing to do if there is none)."""
    try:
        os.unlink(snapshot)
    except FileNotFoundError:
        pass
