"""The command half of the no-op fast path (fastpath.py holds the stat snapshot): a whole
no-op `flowmake build` (lock, check, the run it records, what it prints) and `flowmake
status`'s all-fresh answer. Called by cli/main.py before anything else is imported: it
imports the fast path, the store's layout names and, for a build that answers, the lock,
the run history and the summary line; nothing more."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from flowmake import fastpath
from flowmake.store import paths

# What the last no-op check found when some paths had changed: (flow file, overrides,
# selection, fastpath.check's answer), for the full build that follows (cli/cone.py), so
# that it does not stat every path again. Taken once (``take_check``).
_checked: list[tuple[str, tuple[str, ...], tuple[str, ...], Any]] = []


def saved_in(flow_file: str) -> str | None:
    """The project's state folder if a saved answer is there (one stat), else None."""
    state_dir = paths.state_dir_of(flow_file)
    return state_dir if os.path.exists(paths.snapshot(state_dir)) else None


def fresh_status(flow_file: str, overrides: list[str], selection: list[str]
                 ) -> tuple[list[str], list[str], list[int]] | None:
    """`flowmake status` when the fast path holds: (every target in build order, each
    one's upstream as the snapshot keeps it: indices into the names joined by ",", the
    tree's roots as indices), all of them fresh; None if it does not hold. Like `status`
    itself, it never waits for a build's lock."""
    found = fresh_answer(flow_file, overrides, selection)
    return None if found is None else status_parts(found)


def status_parts(found: tuple[Any, ...]) -> tuple[list[str], list[str], list[int]]:
    """``fastpath.fresh_answer``'s fields as `status` draws them (``fresh_status``)."""
    joined, count, _, upstream, roots = found
    if not count:
        return [], [], []
    return (joined.split(fastpath.SEP), upstream.split(fastpath.SEP),
            [int(i) for i in roots.split(",") if i])


def fresh_answer(flow_file: str, overrides: list[str], selection: list[str]
                 ) -> tuple[Any, ...] | None:
    """``fastpath.fresh_answer`` if nothing changed since the last all-fresh build, for a
    command that never waits for a build's lock (`status`, `graph`); None if not (see
    ``fresh_saved``)."""
    saved = fresh_saved(flow_file, overrides, selection)
    return None if saved is None else fastpath.fresh_answer(saved)


def fresh_saved(flow_file: str, overrides: list[str], selection: list[str]
                ) -> tuple[Any, ...] | None:
    """The saved snapshot if nothing changed since the last all-fresh build; None if not.
    When some paths changed, what the check found is kept for the cone check that
    follows (``take_check``): the paths are not stat'ed twice (at 100,000 targets each
    pass is ~0.3 s)."""
    state_dir = saved_in(flow_file)
    _checked.clear()
    checked = None if state_dir is None else fastpath.check(
        paths.snapshot(state_dir), flow_file, overrides, selection)
    if checked is None:
        return None
    if checked[2]:
        _checked.append((flow_file, tuple(overrides), tuple(selection), checked))
        return None
    return checked[1]


def run_noop(flow_file: str, overrides: list[str], selection: list[str], command: str,
             as_json: bool, quiet: bool, verbose: bool = False, record: bool = True
             ) -> int | None:
    """A whole no-op `flowmake build` (lock, check, record the run unless ``record`` is
    false: ``--no-record``, print); None if not one."""
    state_dir = saved_in(flow_file)
    if state_dir is None:
        return None
    start = time.monotonic()
    found = _locked_check(state_dir, flow_file, overrides, selection, command, record)
    if found is None:
        return None
    names, count, run_id = found
    counts = {"built": 0, "restored": 0, "fresh": count, "failed": 0, "skipped": 0}
    _print(names if count else "", count, counts, run_id, time.monotonic() - start,
           as_json=as_json, quiet=quiet, verbose=verbose)
    return 0


def noop_build(flow_file: str, overrides: list[str], selection: list[str], command: str
               ) -> tuple[list[str], int | None] | None:
    """A no-op build for the Python API (``flowmake.build``): (every target, fresh, in
    build order; the run's id), the run recorded as the command records it; None if the
    fast path does not hold. Prints nothing."""
    state_dir = saved_in(flow_file)
    found = None if state_dir is None else _locked_check(
        state_dir, flow_file, overrides, selection, command, True)
    if found is None:
        return None
    names, count, run_id = found
    return (names.split(fastpath.SEP) if count else []), run_id


def _locked_check(state_dir: str, flow_file: str, overrides: list[str], selection: list[str],
                  command: str, record: bool) -> tuple[str, int, int | None] | None:
    """Under the project lock: the snapshot still fresh, and the run recorded (unless not
    ``record``): (the names joined by SEP, their count, the run's id); None if not fresh."""
    from pathlib import Path

    from flowmake.store.mutex import project_lock

    _checked.clear()
    with project_lock(Path(state_dir), lambda msg: print(f"flowmake: {msg}", file=sys.stderr)):
        checked = fastpath.check(paths.snapshot(state_dir), flow_file, overrides, selection)
        if checked is None:
            return None
        if checked[2]:  # some paths changed: the build checks only their targets' cone
            _checked.append((flow_file, tuple(overrides), tuple(selection), checked))
            return None
        names, count, history, _, _ = fastpath.fresh_answer(checked[1])
        run_id = _record_run(state_dir, command, count, history) if record else None
    return names, count, run_id


def take_check(flow_file: str, overrides: list[str], selection: list[str]) -> Any:
    """The no-op check's answer (fastpath.check's) just made for this build, or None."""
    if not _checked:
        return None
    found = _checked.pop()
    return found[3] if found[:3] == (flow_file, tuple(overrides), tuple(selection)) else None


def _record_run(state_dir: str, command: str, count: int, history: int) -> int:
    """The no-op build's run in the history: started and finished, every target fresh."""
    from pathlib import Path

    from flowmake.store.db import Store

    counts = {"built": 0, "restored": 0, "fresh": count, "failed": 0, "skipped": 0}
    store = Store(Path(state_dir))  # no record is written: nothing to tell the fast path
    try:
        run_id = store.add_finished_run(command, "success", counts, keep=history)
    finally:
        store.close()
    return run_id


def _print(names: str, count: int, counts: dict[str, int], run_id: int | None,
           duration: float, *, as_json: bool, quiet: bool, verbose: bool) -> None:
    if as_json:
        from flowmake.report import jsonout

        doc: dict[str, Any] = {
            "run_id": run_id, "result": "success", "duration": round(duration, 4),
            "counts": counts,
            "targets": [{"name": n, "status": "fresh", "duration": 0.0}
                        for n in (names.split(fastpath.SEP) if count else ())]}
        sys.stdout.write(jsonout.dumps(doc) + "\n")
    if verbose:
        print(f"flowmake: no input, output or setting changed since the last all-fresh build"
              f" ({count} targets, no-op fast path)", file=sys.stderr)
    if not as_json and not quiet:
        from flowmake.report.live import format_summary

        print(format_summary("success", counts, duration, run_id))
