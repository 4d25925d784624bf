"""The built-in ``local`` executor: shell commands as process groups on this machine.

Each command runs with ``sh -c`` in a new session (its own process group), so a timeout
or Ctrl-C kills the command and everything it started, and a terminal's SIGINT reaches
flowmake first, which then stops its jobs cleanly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any

from flowmake.executor import Job, JobResult, LineSink, finish_outputs, prepare_outputs
from flowmake.hookspecs import hookimpl

KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL


def kill_group(proc: subprocess.Popen[bytes], grace: float = KILL_GRACE) -> None:
    """SIGTERM the process group, then SIGKILL it if it has not gone after ``grace``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(grace)
            # The leader is gone; make sure nothing it started outlives it.
            os.killpg(proc.pid, signal.SIGKILL)
            return
        except subprocess.TimeoutExpired:
            continue
        except (ProcessLookupError, PermissionError):
            return


class CommandRunner:
    """Runs shell jobs as process groups, with timeout and retries, and kills them on demand.

    The local executor is one; a remote executor (flowmake-dask) uses one on each worker
    so that shell targets behave the same wherever they run.

    Args:
        preexec_fn: called in the child before ``sh`` starts (after ``setsid``); a remote
            worker uses it to have commands die with the worker process.
    """

    def __init__(self, preexec_fn: Callable[[], None] | None = None) -> None:
        self.running: set[subprocess.Popen[bytes]] = set()
        self.lock = threading.Lock()
        self.cancelled = threading.Event()
        self.preexec_fn = preexec_fn

    def run(self, job: Job, on_line: LineSink | None) -> JobResult:
        start = time.monotonic()
        output: list[str] = []
        error: str | None = None
        attempt = 0
        for attempt in range(1, job.retries + 2):
            if self.cancelled.is_set():
                break
            if attempt > 1:
                output.append(f"--- attempt {attempt} of {job.retries + 1} ({error}) ---\n")
            prepare_outputs(job)
            error = self._once(job, on_line, output)
            if error is None:
                break
        duration = time.monotonic() - start
        if self.cancelled.is_set():
            return JobResult(job.name, False, "".join(output), duration, "interrupted",
                             attempt, interrupted=True)
        return finish_outputs(job, error is None, "".join(output), duration, error, attempt)

    def _once(self, job: Job, on_line: LineSink | None, output: list[str]) -> str | None:
        """Run the command once; None on success, else why it failed."""
        env = None if job.env is None else {**os.environ, **job.env}
        proc = subprocess.Popen(
            ["sh", "-c", job.command or ""], cwd=job.cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=self.preexec_fn)
        with self.lock:  # cancel() sets the event, then takes the lock: one of us kills it
            self.running.add(proc)
            cancelled = self.cancelled.is_set()
        if cancelled:  # cancelled while it was starting
            kill_group(proc)
        timed_out = threading.Event()

        def on_timeout() -> None:
            timed_out.set()
            kill_group(proc)

        timer = threading.Timer(job.timeout, on_timeout) if job.timeout else None
        if timer:
            timer.daemon = True
            timer.start()
        try:
            _read(proc.stdout, job.name, on_line, output)
            code = proc.wait()
        finally:
            if timer:
                timer.cancel()
            with self.lock:
                self.running.discard(proc)
        if timed_out.is_set():
            return f"timed out after {job.timeout:g}s"
        if code < 0:
            return f"killed by signal {signal.Signals(-code).name}"
        return None if code == 0 else f"exit code {code}"

    def cancel(self) -> None:
        """Kill every running command's process group; later attempts do not start."""
        self.cancelled.set()
        with self.lock:
            procs = list(self.running)
        threads = [threading.Thread(target=kill_group, args=(p,), daemon=True) for p in procs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


class LocalExecutor(CommandRunner):
    """Runs up to ``jobs`` commands at once in threads that each wait on one process."""

    NAME = "local"

    def __init__(self, jobs: int, options: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="flowmake-job")
        self.python: Any = None  # the python-target worker pool, started on first use

    def submit(self, job: Job, on_line: LineSink | None = None) -> Future[JobResult]:
        if job.function is not None:
            return self._python_pool().submit(job, on_line)
        return self.pool.submit(self.run, job, on_line)

    def _python_pool(self) -> Any:
        with self.lock:
            if self.python is None:
                from .python_workers import WorkerPool

                self.python = WorkerPool(self.pool._max_workers)
            return self.python

    def cancel(self) -> None:
        super().cancel()
        if self.python is not None:
            self.python.cancel()

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True)
        if self.python is not None:
            self.python.shutdown()


def _read(stream: IO[bytes] | None, name: str, on_line: LineSink | None,
          output: list[str]) -> None:
    """Collect a command's output; with ``on_line`` (-v) pass each line on as it comes."""
    if stream is None:
        return
    with stream:
        if on_line is None:
            output.append(stream.read().decode("utf-8", errors="replace"))
            return
        for raw in stream:
            line = raw.decode("utf-8", errors="replace")
            output.append(line)
            on_line(name, line)


@hookimpl
def flowmake_register_executors() -> list[type]:
    return [LocalExecutor]
