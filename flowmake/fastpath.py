"""The no-op fast path: answer "everything is fresh" from stats alone, as ninja does.

After a build in which every selected target was fresh, we save the stat of every file
and folder that entered those targets' keys (inputs, outputs, code), with the build's
selection and params. The next identical `flowmake build` stats those paths; if none
changed it is done, without parsing flow.toml, loading the graph or reading records.

Anything that could change the answer disables or invalidates it: globs, URLs and
`always` targets are never saved; flow.toml's stat, the overrides, the selection, the
env values in keys and flowmake's own version are in the signature; an entry modified
within RACY_NS of the save is not trusted; and every write of a record deletes the file
(``Store``), so `clean`, `accept` or another build never leave it stale.
"""

from __future__ import annotations

import marshal
import os
import time
from collections.abc import Iterable
from typing import Any

FILE = "noop.marshal"
FORMAT = 1
RACY_NS = 2_000_000_000


def _stat(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def signature(flow_file: str, overrides: list[str], selection: list[str],
              env: Iterable[str] = ()) -> tuple[Any, ...] | None:
    from . import __version__

    st = _stat(flow_file)
    if st is None:
        return None
    env_values = tuple((n, os.environ.get(n)) for n in sorted(env))
    return (FORMAT, __version__, flow_file, *st, tuple(overrides), tuple(selection), env_values,
            _installed())


def _installed() -> tuple[tuple[str, int], ...]:
    """The mtimes of the package folders: installing or removing a package (a new
    observer plugin, say) changes them, and with them the signature."""
    import site
    import sysconfig

    paths = sysconfig.get_paths()
    found = []
    for entry in dict.fromkeys([paths["purelib"], paths["platlib"], site.getusersitepackages()]):
        st = _stat(entry)
        if st is not None:
            found.append((entry, st[1]))
    return tuple(found)


def load(state_dir: str) -> tuple[Any, ...] | None:
    try:
        with open(os.path.join(state_dir, FILE), "rb") as f:
            return marshal.loads(f.read())  # loads(read()): marshal.load(f) reads in dribs
    except (OSError, EOFError, ValueError, TypeError):
        return None


def check(state_dir: str, flow_file: str, overrides: list[str],
          selection: list[str]) -> tuple[list[str], int] | None:
    """(fresh target names, history to keep) if nothing changed since the last all-fresh
    build, else None."""
    saved = load(state_dir)
    if not saved or len(saved) != 5:
        return None
    sig, env_names, paths, names, history = saved
    if sig != signature(flow_file, overrides, selection, env_names):
        return None
    stat = os.stat
    try:
        for path, size, mtime_ns, ino in paths:
            st = stat(path)
            if st.st_mtime_ns != mtime_ns or st.st_size != size or st.st_ino != ino:
                return None
    except OSError:
        return None
    return names, history


def save(state_dir: str, flow_file: str, overrides: list[str], selection: list[str],
         env_names: Iterable[str], paths: Iterable[str], names: list[str], history: int) -> bool:
    """Save the stats of ``paths`` (files and folders, walked); False if one is racy."""
    deadline = time.time_ns() - RACY_NS
    entries: list[tuple[str, int, int, int]] = []
    for path in _expand(paths):
        st = _stat(path)
        if st is None or st[1] >= deadline:
            return False
        entries.append((path, *st))
    env_names = sorted(set(env_names))
    sig = signature(flow_file, overrides, selection, env_names)
    if sig is None or sig[4] >= deadline:
        return False
    tmp = os.path.join(state_dir, f"{FILE}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            marshal.dump((sig, env_names, entries, names, history), f)
        os.replace(tmp, os.path.join(state_dir, FILE))
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


def invalidate(state_dir: str) -> None:
    try:
        os.unlink(os.path.join(state_dir, FILE))
    except FileNotFoundError:
        pass


def run_noop(flow_file: str, overrides: list[str], selection: list[str], command: str,
             as_json: bool, quiet: bool, verbose: bool = False) -> int | None:
    """A whole no-op `flowmake build` (lock, check, record the run, print); None if not one."""
    import json
    import sys
    from pathlib import Path

    from .report import format_summary
    from .store import Store, project_lock

    state_dir = os.path.join(os.path.dirname(flow_file), ".flowmake")
    if not os.path.exists(os.path.join(state_dir, FILE)):
        return None
    start = time.monotonic()
    with project_lock(Path(state_dir), lambda msg: print(f"flowmake: {msg}", file=sys.stderr)):
        found = check(state_dir, flow_file, overrides, selection)
        if found is None:
            return None
        names, history = found
        counts = {"built": 0, "restored": 0, "fresh": len(names), "failed": 0, "skipped": 0}
        store = Store(Path(state_dir))
        try:
            run_id = store.start_run(command)
            store.finish_run(run_id, "success", counts, keep=history)
        finally:
            store.close()
    duration = time.monotonic() - start
    if as_json:
        doc = {"run_id": run_id, "result": "success", "duration": round(duration, 4),
               "counts": counts,
               "targets": [{"name": n, "status": "fresh", "duration": 0.0} for n in names]}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    if verbose:
        print(f"flowmake: no input, output or setting changed since the last all-fresh build"
              f" ({len(names)} targets, no-op fast path)", file=sys.stderr)
    if not as_json and not quiet:
        print(format_summary("success", counts, duration, run_id))
    return 0
