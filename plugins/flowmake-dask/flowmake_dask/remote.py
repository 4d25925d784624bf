"""What runs on the Dask workers: one attempt of one job, and the kill switch of a build.

Each build has a token; every worker keeps one :class:`_Build` per token, so that
``cancel_build(token)`` (sent to every worker with ``client.run``) kills the process groups
of that build's jobs and nothing else. Shell jobs use the local executor's runner and
python jobs its pool of ``python -m flowmake.builtin.worker`` processes (kept for the build, so a
python target pays for a pipe round trip, not an interpreter start), so timeouts, process
groups, captured output and error texts are the same as in a local build.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, cast

from flowmake.builtin.local_executor import CommandRunner
from flowmake.executor import Job, JobResult

PR_SET_PDEATHSIG = 1  # linux/prctl.h


class _Build:
    """One build's state on this worker: its command runner and (lazily) its python pool."""

    def __init__(self) -> None:
        self.runner = CommandRunner(preexec_fn=die_with_worker())
        self.pool: Any = None
        self.lock = threading.Lock()

    def python_pool(self) -> Any:
        from flowmake.builtin.python_workers import WorkerPool

        with self.lock:
            if self.pool is None:
                self.pool = WorkerPool(_threads())
            return self.pool

    def cancel(self) -> None:
        self.runner.cancel()  # sets the flag first: jobs that start later end at once
        with self.lock:
            pool = self.pool
        if pool is not None:
            pool.cancel()

    def close(self) -> None:
        with self.lock:
            pool, self.pool = self.pool, None
        if pool is not None:
            pool.shutdown()


_builds: dict[str, _Build] = {}
_lock = threading.Lock()


def build_for(token: str) -> _Build:
    """This worker's state for one build (created on first use)."""
    with _lock:
        build = _builds.get(token)
        if build is None:
            build = _builds[token] = _Build()
        return build


def run_job(job: Job, token: str) -> JobResult:
    """One attempt of ``job`` on this worker (the client counts attempts and retries)."""
    build = build_for(token)
    once = job._replace(retries=0)
    if build.runner.cancelled.is_set():
        return JobResult(job.name, False, "", 0.0, "interrupted", interrupted=True)
    if job.function is not None:
        return cast(JobResult, build.python_pool().submit(once).result())
    return build.runner.run(once, None)


def cancel_build(token: str) -> None:
    """Kill this build's jobs on this worker; jobs that start later end at once.

    Runs in the worker's event loop (``client.run``), so the killing (which waits up to
    the SIGTERM grace period) happens in a thread of its own.
    """
    threading.Thread(target=build_for(token).cancel, daemon=True).start()


def forget_build(token: str) -> None:
    """Drop a finished build: stop its python worker processes (in the background)."""
    with _lock:
        build = _builds.pop(token, None)
    if build is not None:
        threading.Thread(target=build.close, daemon=True).start()


def _threads() -> int:
    """How many tasks this Dask worker runs at once (the most python jobs it can have)."""
    try:
        from distributed import get_worker

        return max(1, get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        return os.cpu_count() or 1


def die_with_worker() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has a command's shell killed when its worker process dies.

    A worker killed by the OOM killer or ``kill -9`` cannot stop its commands, which run
    in sessions of their own; without this they would go on writing outputs that nobody
    records. Linux only (``prctl(PR_SET_PDEATHSIG)``); elsewhere, None.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                      ctypes.c_ulong]
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the worker died before prctl took effect
            os._exit(1)

    return preexec
