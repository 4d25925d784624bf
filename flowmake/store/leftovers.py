"""What a killed build leaves behind: commands still running, and a run still "running".

Commands run in sessions of their own (so a timeout or Ctrl-C can kill a whole group),
so nothing ends them when flowmake itself is killed with SIGKILL. Left alone, such an
orphan goes on writing an output while the next build rewrites it, and the interleaved
file could be recorded fresh. So every build marks its commands' environment with a token
of its own (``FLOWMAKE_BUILD``, inherited by everything they start), and the next process
that takes the project lock for writing finds any run still marked ``running`` (its
flowmake is dead: it held the lock), stops the processes that carry that run's token,
waits until they are gone, and closes the run as ``interrupted`` with the counts of what
it recorded. Matching the token in ``/proc/PID/environ`` (not a saved pid) means a
reused pid is never killed by mistake.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from flowmake.model import RunResult
from flowmake.store.db import Store
from flowmake.store.mutex import project_lock
from flowmake.store.runs import Run

ENV_NAME = "FLOWMAKE_BUILD"
GRACE = 2.0  # seconds between SIGTERM and SIGKILL
GIVE_UP = 10.0  # seconds after which processes that will not die are reported


def token(state_dir: str, run: Run) -> str:
    """The mark of one build's commands: unique to the project and the run."""
    import xxhash

    return xxhash.xxh3_64_hexdigest(os.fsencode(f"{state_dir}\0{run.run_id}\0{run.started!r}"))


def mark_environment(state_dir: str, run: Run) -> None:
    """Give every command this build starts (and what they start) its token."""
    os.environ[ENV_NAME] = token(state_dir, run)


def carrying(mark: str) -> list[int]:
    """The pids of live processes whose environment holds ``FLOWMAKE_BUILD=mark``."""
    needle = f"\0{ENV_NAME}={mark}\0".encode()
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:  # no /proc (not Linux): nothing can be found, nothing is killed
        return []
    me = os.getpid()
    for entry in entries:
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = b"\0" + f.read()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if needle in environ:
            found.append(int(entry))
    return found


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        for kill in (os.killpg, os.kill):  # its whole group first (it leads a session)
            try:
                kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass


def stop(mark: str) -> int:
    """Stop every process carrying ``mark`` (SIGTERM, then SIGKILL after GRACE) and wait
    until none is left; the number found at first."""
    pids = carrying(mark)
    if not pids:
        return 0
    count = len(pids)
    _signal(pids, signal.SIGTERM)
    start = time.monotonic()
    killed = False
    while pids and time.monotonic() - start < GIVE_UP:
        time.sleep(0.02)
        pids = carrying(mark)
        if pids and not killed and time.monotonic() - start >= GRACE:
            _signal(pids, signal.SIGKILL)
            killed = True
    return count


def close_dead_runs(store: Store, state_dir: str, say: Callable[[str], None]) -> list[int]:
    """Under the project lock: stop what killed builds left running and close their runs;
    their ids. Costs one query when there is nothing to do."""
    runs = store.unfinished_runs()
    for run in runs:
        stopped = stop(token(state_dir, run))
        counts = store.close_run(run.run_id, RunResult.INTERRUPTED)
        note = f"; stopped {stopped} process(es) it had left running" if stopped else ""
        done = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
        say(f"build {run.run_id} did not finish (killed, or its state could not be written);"
            f" closed as interrupted: {done or 'nothing recorded'}{note}")
    return [run.run_id for run in runs]


def say(message: str) -> None:
    """One line for the user, on stderr (stdout may carry a JSON document)."""
    print(f"flowmake: {message}", file=sys.stderr)


@contextlib.contextmanager
def writing_lock(store: Store, state_dir: Path) -> Iterator[list[int]]:
    """The project lock for a command that writes records or outputs (build, clean,
    accept, cache): it waits for a running build, then stops what a killed one left.
    It gives the ids of the killed builds it closed (their records join flow.lock)."""
    with project_lock(state_dir, say):
        yield close_dead_runs(store, str(state_dir), say)
