"""The no-op fast path: answer "everything is fresh" from stats alone, as ninja does.

After a build in which every selected target was fresh, we save the stat of every file
and folder that entered those targets' keys (inputs, outputs, code), with the build's
selection and params. The next identical `flowmake build` stats those paths; if none
changed it is done, without parsing flow.toml, loading the graph or reading records.
`flowmake status` with the same selection answers from it too ("all fresh": the targets
and their upstream are saved for its tree).
Those stats are the whole cost of a large no-op (20,000 system calls for 10,000 copy
targets), so a long list is shared among forked processes, one part each (``changed``).

Anything that could change the answer disables or invalidates it: globs, URLs and
`always` targets are never saved; flow.toml's stat, the overrides, the selection, the
env values in keys, flowmake's version and the site folders' mtimes are in the
signature; an entry modified within RACY_NS of the save is not trusted; and every write
of a record deletes the file (``Store``), so `clean`, `accept` or another build never
leave it stale. (The store does not know of this module: it is told records changed, and
the command's callback calls :func:`invalidate`.)

This module is the snapshot only: save, read (:func:`check`), :func:`invalidate`; it
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
from collections.abc import Callable, Iterable
from typing import Any

from flowmake import warm

FORMAT = 6  # 6: the compiled flow's stamp
RACY_NS = 2_000_000_000
SEP = "\0"  # paths and names are kept as one string each: one object to load, not 20,000
_ENTRY = struct.Struct("<QqQ")  # size, mtime_ns, inode: one fixed-size record per path
# From this many paths on, the check is shared among processes: each os.stat is a ~2-3 us
# system call, and on 2 cores two halves take ~35 ms instead of ~65 ms for 20,000 paths,
# while a fork costs ~1-2 ms.
PARALLEL_MIN = 4000
MAX_PROCESSES = 4


_FIELDS: dict[int, tuple[str, list[str]]] = {}  # id(text) -> (text, its fields)


def fields(text: str) -> list[str]:
    """``text.split(SEP)``, split once per command: a cone build reads the snapshot's
    paths, names and index fields in its check, its plan and its re-save (at 100,000
    targets each split is ~5-10 ms). Never to be modified: the list is shared."""
    found = _FIELDS.get(id(text))
    if found is None or found[0] is not text:  # kept with its text: the id stays its own
        return _remember(text, text.split(SEP))
    return found[1]


def _remember(text: str, split: list[str]) -> list[str]:
    """``split``, ``text``'s fields, as ``fields`` answers them from now on."""
    _FIELDS[id(text)] = (text, split)
    while len(_FIELDS) > 8:  # a long-lived process (the Python API) reads many
        del _FIELDS[next(iter(_FIELDS))]
    return split


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


# An entry no stat gives: a path missing now, and one saved as "not trusted" (modified
# within RACY_NS of a partial save: ``update``), which therefore never matches.
MISSING = _ENTRY.pack(2**64 - 2, 0, 0)
UNTRUSTED = _ENTRY.pack(2**64 - 1, 0, 0)


def _lenient(paths: list[str]) -> bytes:
    """As _stats, with MISSING for a path that cannot be stat'ed."""
    try:
        return _stats(paths)
    except OSError:
        pass
    found = []
    for path in paths:
        st = _stat(path)
        found.append(MISSING if st is None else _ENTRY.pack(*st))
    return b"".join(found)


_RUN = 64  # entries compared together before the entries of a run that differs


def _differing(paths: list[str], saved: bytes, offset: int) -> list[int]:
    """The indices (plus ``offset``) of the paths whose stat is not the saved one. Runs of
    _RUN entries are compared as bytes, then the entries of a run that differs one by one:
    an edit changes a few of 10,000 (1.1 ms -> 0.04 ms for 5,500 entries)."""
    now = _lenient(paths)
    if now == saved:
        return []
    size = _ENTRY.size
    step = _RUN * size
    found: list[int] = []
    for start in range(0, len(now), step):
        if now[start:start + step] != saved[start:start + step]:
            first = start // size
            found += [offset + i for i in range(first, min(first + _RUN, len(paths)))
                      if now[i * size:(i + 1) * size] != saved[i * size:(i + 1) * size]]
    return found


def changed(paths: list[str], saved: bytes) -> list[int] | None:
    """The indices of the paths whose stat differs from the one saved for it (None if
    ``saved`` is not theirs), checked by up to MAX_PROCESSES processes at once for a long
    list (forked: the caller has started no thread)."""
    size = _ENTRY.size
    if len(saved) != len(paths) * size:
        return None
    parts = min(_cpus(), MAX_PROCESSES, len(paths) // (PARALLEL_MIN // 2))
    check = _differing
    if parts < 2 or not hasattr(os, "fork"):
        return check(paths, saved, 0)
    step = -(-len(paths) // parts)
    children: list[tuple[int, int]] = []
    found: list[int] = []
    standing = _standing_for(paths, saved)
    for i in range(1, parts):
        if standing:  # forked before the command came, holding these very objects
            pid, request, answer = standing.pop()
            end = min((i + 1) * step, len(paths))
            try:
                _write_all(request, _REQUEST.pack(id(paths), id(saved), i * step, end))
            except OSError:
                pass  # gone (killed): its answer is empty, as if every path changed
            os.close(request)
            children.append((pid, answer))
            continue
        chunk = paths[i * step:(i + 1) * step]
        expected = saved[i * step * size:(i * step + len(chunk)) * size]
        read_end, write_end = os.pipe()
        try:
            pid = os.fork()
        except OSError:  # no process to spare: this one checks that part too
            os.close(read_end)
            os.close(write_end)
            found += check(chunk, expected, i * step)
            continue
        if pid == 0:  # the child: its answer, the indices as 4-byte integers, in the pipe
            code = 1
            try:
                os.close(read_end)
                _write_all(write_end, _answer(check(chunk, expected, i * step)))
                # The answer ends here, not at the exit: a fork of a resident server
                # unmaps its server's pages as it exits (~2-3 ms per 100 MB here).
                os.close(write_end)
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        children.append((pid, read_end))
    for pid, request, answer in standing:  # more than this check has parts for
        os.close(request)  # its EOF: it ends
        os.close(answer)
        _exiting.append(pid)
    found = check(paths[:step], saved[:step * size], 0) + found
    return _reap(children, found)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


ANSWERED = (-2).to_bytes(4, "little", signed=True)  # a helper's last 4 bytes: its whole answer


def _answer(indices: list[int]) -> bytes:
    """A helper's answer: the indices as 4-byte integers, then ANSWERED (``_reap``)."""
    return b"".join(n.to_bytes(4, "little", signed=True) for n in indices) + ANSWERED


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


_exiting: list[int] = []  # helpers that answered and may still be exiting
_reaping_in = 0  # the process in which reap_exiting is registered to run as it ends


# Helpers a resident server's spare forks before its command comes (``stand_by``), each
# holding the paths and stats of the snapshots the server kept, as the spare does: the
# command's check hands each one its part (``changed``) instead of forking it then. Not
# only the fork's own ~2-3 ms: a fork marks every page of the forking process
# copy-on-write again, and the command's next write to each one then faults (~3 us a
# page here; ~900 pages of an edit build of 10,000 targets).
_standing: list[tuple[int, int, int]] = []  # (pid, request fd, answer fd), each used once
_held: dict[int, Any] = {}  # id -> a paths list or a stats string the helpers hold too
_REQUEST = struct.Struct("<QQqq")  # id(paths), id(stats), the part's first and end index


def stand_by(close: Iterable[int] = ()) -> None:
    """In a resident server's spare, before its command: fork the helpers that the check
    of a kept snapshot long enough to share would fork (``close``: descriptors of the
    spare's that a helper must not keep open)."""
    held: dict[int, Any] = {}
    for saved, split in warm.kept(SNAPSHOT):
        paths = split.get(4) if _valid(saved) else None
        if paths is not None and len(paths) >= PARALLEL_MIN:
            held[id(paths)], held[id(saved[5])] = paths, saved[5]
    if not held or not hasattr(os, "fork"):
        return
    for _ in range(min(_cpus(), MAX_PROCESSES) - 1):
        request_read, request_write = os.pipe()
        answer_read, answer_write = os.pipe()
        try:
            pid = os.fork()
        except OSError:  # no process to spare: the check forks its own, as before
            for fd in (request_read, request_write, answer_read, answer_write):
                os.close(fd)
            break
        if pid == 0:
            code = 1
            try:
                mine = (request_read, answer_write)
                for fd in (request_write, answer_read, *close,
                           *(fd for _, *fds in _standing for fd in fds)):
                    os.close(fd)
                del _standing[:]
                _serve(*mine, held)
                code = 0
            finally:
                os._exit(code)
        os.close(request_read)
        os.close(answer_write)
        _standing.append((pid, request_write, answer_read))
    _held.update(held)  # kept alive here: an id found in it is that very object


def _serve(requests: int, answers: int, held: dict[int, Any]) -> None:
    """A standing helper: one part checked, on request; nothing on EOF (the spare's
    command needed none, or the spare ended)."""
    for value in held.values():
        if type(value) is list:
            for _ in value:  # each path's count of references is written to now, not
                pass  # in the command's time: the copy-on-write faults of their pages
    data = b""
    while len(data) < _REQUEST.size:
        more = os.read(requests, _REQUEST.size - len(data))
        if not more:
            return
        data += more
    paths_id, stats_id, start, end = _REQUEST.unpack(data)
    paths, saved = held.get(paths_id), held.get(stats_id)
    size = _ENTRY.size
    if type(paths) is list and type(saved) is bytes and 0 <= start <= end <= len(paths):
        _write_all(answers, _answer(
            _differing(paths[start:end], saved[start * size:end * size], start)))
    os.close(answers)  # (nothing but ANSWERED's absence: the part counts as all changed)


def _standing_for(paths: list[str], saved: bytes) -> list[tuple[int, int, int]]:
    """The standing helpers, taken, when they hold ``paths`` and ``saved`` (none else)."""
    if not _standing or _held.get(id(paths)) is not paths or \
            _held.get(id(saved)) is not saved:
        return []
    taken = _standing[:]
    del _standing[:]
    if "resident" in os.environ.get("FLOWMAKE_TRACE", ""):
        os.write(2, f"flowmake: resident: the stat check shared with {len(taken)} "
                    "helper(s) forked before the command\n".encode())
    return taken


def dismiss() -> None:
    """End the standing helpers no check used (their request's EOF) and wait for them."""
    while _standing:
        pid, request, answer = _standing.pop()
        os.close(request)
        os.close(answer)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def _reap(children: list[tuple[int, int]], found: list[int]) -> list[int]:
    global _reaping_in
    if children and _reaping_in != os.getpid():  # not a flag a fork would inherit set
        _reaping_in = os.getpid()
        warm.at_end(reap_exiting)
    for pid, read_end in children:
        chunks = []
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)
        os.close(read_end)
        data = b"".join(chunks)
        if data.endswith(ANSWERED) and not len(data) % 4:
            found += [int.from_bytes(data[i:i + 4], "little", signed=True)
                      for i in range(0, len(data) - len(ANSWERED), 4)]
        else:
            found.append(-1)  # a child that could not answer: as if all changed
        _exiting.append(pid)
    _sweep()  # those gone by now, and earlier checks' (a watch checks again and again)
    return sorted(found)


def _sweep() -> None:
    for pid in list(_exiting):
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                continue  # still exiting
        except ChildProcessError:
            pass
        _exiting.remove(pid)


def reap_exiting() -> None:
    """Wait for the helpers that answered and were still exiting (each is gone within
    milliseconds), once nothing waits on them: as the command ends."""
    while _exiting:
        pid = _exiting.pop()
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


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
    found = read(snapshot)
    return None if found is None else found[1]


def read(snapshot: str) -> tuple[tuple[int, int, int], tuple[Any, ...]] | None:
    """(the file's identity: size, mtime_ns, inode; the saved snapshot), or None. Every
    write of the snapshot is a new file: the identity says whether it is still the one read
    (and a resident server's fork is given the one its server decoded: warm.py)."""
    try:
        st, (saved, split) = warm.read_stat(snapshot, SNAPSHOT)
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if not _valid(saved):
        return None
    for i, found in split.items():  # split by the server: fields() answers from them
        _remember(saved[i], found)
    return (st.st_size, st.st_mtime_ns, st.st_ino), saved


def _valid(saved: Any) -> bool:
    return isinstance(saved, tuple) and len(saved) == 14 and saved[0] == FORMAT


def _decode(data: bytes) -> tuple[Any, dict[int, list[str]]]:
    return marshal.loads(data), {}  # loads(read()): marshal.load(f) reads in dribs


def _split(decoded: tuple[Any, dict[int, list[str]]]) -> tuple[Any, dict[int, list[str]]]:
    """A resident server's work for its forks: the joined fields a check, a cone's plan
    and its re-save split (the paths, the vouched names, each path's and each target's
    indices), split once."""
    saved, _ = decoded
    if not _valid(saved):
        return decoded
    return saved, {i: saved[i].split(SEP) for i in (4, 6, 11, 12)}


SNAPSHOT = "snapshot"  # its kind for warm.py
warm.LOADERS[SNAPSHOT] = _decode
warm.PREPARE[SNAPSHOT] = _split


def identity(snapshot: str) -> tuple[int, int, int] | None:
    """The snapshot file's (size, mtime_ns, inode) now; None if there is none."""
    return _stat(snapshot)


def check(snapshot: str, flow_file: str, overrides: list[str], selection: list[str]
          ) -> tuple[tuple[int, int, int], tuple[Any, ...], list[int]] | None:
    """The snapshot (its identity, its content) and the indices of its paths whose stat
    changed (empty: the no-op holds; -1 among them: some change not located); None when
    there is no snapshot or its signature (flow.toml, overrides, selection, env values,
    version, site folders) is not this build's."""
    found = read(snapshot)
    if found is None:
        return None
    ident, saved = found
    _, sig, env_names, site_dirs, paths, stats = saved[:6]
    if sig != signature(flow_file, overrides, selection, env_names, site_dirs):
        return None
    differ = changed(fields(paths), stats)
    return None if differ is None else (ident, saved, differ)


def fresh_answer(saved: tuple[Any, ...]) -> tuple[Any, ...]:
    """What a snapshot found unchanged answers: (the fresh targets' names joined by SEP
    in build order, their count, history to keep, each one's upstream as indices into
    the names, joined by "," then SEP, and the status tree's roots as indices)."""
    return saved[6:11]


def compiled(saved: tuple[Any, ...]) -> int | None:
    """The stamp of the compiled flow (cli/workspace.py's flow.pickle) the snapshot was
    saved from; None if there was none. While the snapshot holds, its flow is that one's:
    `graph` uses what was kept for it without loading the flow (cli/graphfresh.py)."""
    stamp = saved[13]
    return stamp if type(stamp) is int else None


def owners(saved: tuple[Any, ...], changed_paths: Iterable[int]) -> set[int] | None:
    """The indices (into the snapshot's names) of the targets whose key has one of those
    paths; None if a change is not located (-1) or a path is no target's (an included or
    params file: the flow itself may have changed)."""
    found: set[int] = set()
    by_path = fields(saved[11])
    for i in changed_paths:
        if i < 0 or not by_path[i]:
            return None
        found.update(int(t) for t in by_path[i].split(","))
    return found


def save(snapshot: str, flow_file: str, overrides: list[str], selection: list[str],
         env_names: Iterable[str], sources: Iterable[str], keyed: list[list[str]],
         names: list[str], history: int, upstream: dict[str, list[str]],
         roots: list[str], seen: Seen, stamp: int | None) -> bool:
    """Save the stats of ``sources`` and of each target's ``keyed`` paths (files and
    folders, walked; ``keyed[i]`` is ``names[i]``'s); False if one is racy or not the
    stat its digest was made at (``seen``). ``names`` (in build order), ``upstream`` and
    ``roots`` let `status` answer too; ``stamp`` names the compiled flow they are of."""
    deadline = time.time_ns() - RACY_NS
    index: dict[str, int] = {}  # in insertion order: the paths' indices
    by_path: list[list[int]] = []

    def at(path: str) -> int:
        i = index.get(path)
        if i is None:
            i = index[path] = len(by_path)
            by_path.append([])
        return i

    for path in _expand(sources):
        at(path)
    by_target: list[list[int]] = []
    for t, paths in enumerate(keyed):
        mine = [at(path) for path in _expand(paths)]
        for i in mine:
            by_path[i].append(t)
        by_target.append(mine)
    expanded = list(index)
    try:
        stats = _stats(expanded)
    except OSError:
        return False
    if any(mtime_ns >= deadline for _, mtime_ns, _ in _ENTRY.iter_unpack(stats)):
        return False
    size = _ENTRY.size
    if not all(seen.vouches(path, stats[i * size:(i + 1) * size])
               for i, path in enumerate(expanded)):
        return False
    env_names = sorted(set(env_names))
    site_dirs = _site_dirs()
    sig = signature(flow_file, overrides, selection, env_names, site_dirs)
    # sig[4]: flow.toml's mtime_ns; edited since the command read it: not this flow's
    if sig is None or sig[4] >= min(deadline, seen.since_ns - RACY_NS):
        return False
    number = {n: str(i) for i, n in enumerate(names)}
    return _write(snapshot, (FORMAT, sig, env_names, site_dirs, SEP.join(expanded), stats,
                             SEP.join(names), len(names), history,
                             SEP.join(",".join(number[u] for u in upstream[n]) for n in names),
                             ",".join(number[r] for r in roots), _joined(by_path),
                             _joined(by_target), stamp))


class Seen:
    """What the digests in a command's keys were made at, for the stats a save keeps:
    ``stat_of(path)`` is the (size, mtime_ns, inode) at which the command hashed the
    path (or found its digest in the stat cache), None if it hashed none (a folder's
    subfolders, an included file); ``since_ns``, a time before the command read any.

    A stat taken at the save, after a long check or build, would vouch for a file
    edited meanwhile, whose new content no key holds: the next no-op would call it
    fresh. Such a path is not saved as it is now (``save`` refuses, ``update`` marks it
    UNTRUSTED); one the command did not hash must be older than the command itself."""

    def __init__(self, stat_of: Callable[[str], tuple[int, int, int] | None],
                 since_ns: int) -> None:
        self.stat_of, self.since_ns = stat_of, since_ns

    def vouches(self, path: str, entry: bytes) -> bool:
        """Whether ``entry`` (``path``'s stat now, packed) is what its digest was made at."""
        was = self.stat_of(path)
        if was is None:
            mtime_ns: int = _ENTRY.unpack(entry)[1]
            return mtime_ns < self.since_ns - RACY_NS
        return _ENTRY.pack(*was) == entry


def _joined(lists: list[list[int]]) -> str:
    return SEP.join(",".join(map(str, sorted(set(one)))) for one in lists)


def _write(snapshot: str, saved: tuple[Any, ...]) -> bool:
    from flowmake.fsutil import atomic_write, discard, keep_blocks  # only when saved

    aside = snapshot + ".replaced"  # its blocks freed after the command (1 MB at 10,000)
    if keep_blocks(snapshot, aside):
        warm.at_end_once(aside, lambda: discard(aside))
    try:
        atomic_write(snapshot, marshal.dumps(saved), fsync=False)
    except OSError:
        return False
    warm.note(snapshot, SNAPSHOT)  # a resident server decodes it for the next command
    return True


def update(snapshot: str, saved: tuple[Any, ...], cone: set[int],
           keyed: dict[int, list[str]], seen: Seen, stamp: int | None) -> bool:
    """Save ``saved`` again after a build that checked (and built) only the targets
    ``cone`` (indices into its names), every one of them ended fresh or built: only their
    paths are stat'ed again. ``keyed`` gives each one's paths now; if they are not the
    saved ones (a new code file, a folder's new file) nothing is saved (False). A path
    modified within RACY_NS is saved as UNTRUSTED (the next build checks its targets),
    as is one whose stat is not the one its digest was made at (``seen``: changed since
    this command hashed it), and one that a target outside the cone also reads and that
    changed since the snapshot was taken (that target was not checked against it).
    ``stamp``: the compiled flow the build loaded (the flow is the snapshot's, or its
    signature would not have matched, but it may have been compiled again)."""
    paths = fields(saved[4])
    by_path, by_target = fields(saved[11]), fields(saved[12])
    mine = sorted({int(i) for t in cone if by_target[t] for i in by_target[t].split(",")})
    if any(sorted(set(_expand(keyed[t]))) != sorted(
            paths[int(i)] for i in by_target[t].split(",") if i) for t in cone):
        return False
    now = _lenient([paths[i] for i in mine])
    deadline = time.time_ns() - RACY_NS
    stats = bytearray(saved[5])
    size = _ENTRY.size
    for n, i in enumerate(mine):
        entry = now[n * size:(n + 1) * size]
        _, mtime_ns, _ = _ENTRY.unpack(entry)
        if entry == MISSING:
            return False
        shared = any(int(t) not in cone for t in by_path[i].split(","))
        if mtime_ns >= deadline or not seen.vouches(paths[i], entry) or (
                shared and entry != stats[i * size:(i + 1) * size]):
            entry = UNTRUSTED
        stats[i * size:(i + 1) * size] = entry
    if saved[1][4] >= deadline:  # flow.toml's mtime_ns (the signature's)
        return False
    return _write(snapshot, (*saved[:5], bytes(stats), *saved[6:13], stamp))


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
