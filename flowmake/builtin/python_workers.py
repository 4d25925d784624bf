"""The pool of worker processes that run python targets (``python -m flowmake.builtin.worker``).

Workers are started on first use, up to ``size``, and reused for the rest of the build,
so a target pays for a pipe round trip rather than an interpreter start. A worker that
crashes (``os._exit``, a segfault) or runs past its target's ``timeout`` fails that target
only: it is killed and replaced by a new one on the next job.

Each attempt's output goes to its own capture file, which the worker points its fd 1 and
2 at; the pool reads it when the attempt ends, and with ``-v`` tails it while it runs.
"""

from __future__ import annotations

import itertools
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, cast

from flowmake.builtin.worker import recv, send
from flowmake.executor import Job, JobResult, LineSink, finish_outputs, prepare_outputs

_FLOWMAKE_DIR = os.path.dirname(os.path.abspath(__file__))  # flowmake/builtin
POLL = 0.1  # seconds between looks at a capture file while streaming (-v)


class WorkerDied(Exception):
    """The worker process ended (crash, signal, killed on timeout or cancel)."""


class Tail:
    """Reads one attempt's capture file, passing whole lines on as they come (-v)."""

    def __init__(self, path: str, name: str, on_line: LineSink | None) -> None:
        self.path, self.name, self.on_line = path, name, on_line
        self.data = bytearray()
        self.sent = 0  # bytes of ``data`` already passed on as lines

    def poll(self) -> None:
        """Read what was appended since the last poll; pass complete lines on."""
        try:
            with open(self.path, "rb") as f:
                f.seek(len(self.data))
                self.data += f.read()
        except FileNotFoundError:
            return
        if self.on_line is None:
            return
        end = self.data.rfind(b"\n") + 1
        if end > self.sent:
            for line in bytes(self.data[self.sent:end]).splitlines(keepends=True):
                self.on_line(self.name, line.decode("utf-8", errors="replace"))
            self.sent = end

    def finish(self) -> str:
        """The whole captured text; the last (unterminated) line is passed on too."""
        self.poll()
        rest = bytes(self.data[self.sent:]).decode("utf-8", errors="replace")
        if self.on_line is not None and rest:
            self.on_line(self.name, rest + "\n")
        return bytes(self.data).decode("utf-8", errors="replace")


class Worker:
    """One ``python -m flowmake.builtin.worker`` process in its own session (its process group)."""

    def __init__(self, cwd: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "flowmake.builtin.worker", str(os.getpid())], cwd=cwd, bufsize=0,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.wfd, self.rfd = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        self.timed_out = False

    def run(self, request: dict[str, Any], deadline: float | None,
            poll: Callable[[], None] | None) -> dict[str, Any]:
        """Send one request and wait for its reply; WorkerDied if the process ends first.

        ``poll`` (streaming) is called every POLL seconds while the job runs.
        """
        try:
            send(self.wfd, request)
        except (BrokenPipeError, OSError):
            raise WorkerDied(self._death()) from None
        while True:
            wait = POLL if poll is not None else None
            if deadline is not None:
                left = max(0.0, deadline - time.monotonic())
                wait = left if wait is None else min(wait, left)
            readable, _, _ = select.select([self.rfd], [], [], wait)
            if poll is not None:
                poll()
            if readable:
                break
            if deadline is not None and time.monotonic() >= deadline:
                self.timed_out = True
                self.kill()
                raise WorkerDied("timed out")
        try:
            return cast("dict[str, Any]", recv(self.rfd))
        except (EOFError, OSError):
            raise WorkerDied(self._death()) from None

    def _death(self) -> str:
        code = self.proc.wait()
        if code < 0:
            return f"worker died: killed by signal {signal.Signals(-code).name}"
        return f"worker died: exit code {code}"

    def kill(self) -> None:
        """SIGKILL the worker and anything it started."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self) -> None:
        """Ask the worker to stop: the end of its stdin."""
        try:
            self.proc.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass

    def close(self, grace: float = 2.0) -> None:
        """Stop the worker and wait for it; kill it if it has not gone after ``grace``."""
        self.stop()
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait()
        self.proc.stdout.close()  # type: ignore[union-attr]


class WorkerPool:
    """Runs python jobs on up to ``size`` reused worker processes.

    Args:
        size: the most jobs (and workers) at once; the executor's ``-j``.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.threads = ThreadPoolExecutor(max_workers=size, thread_name_prefix="flowmake-py")
        self.idle: list[Worker] = []
        self.busy: set[Worker] = set()
        self.lock = threading.Lock()
        self.cancelled = threading.Event()
        self.spawned = 0  # worker processes started, for tests and benchmarks
        self.tmp = tempfile.mkdtemp(prefix="flowmake-py-")
        self._ids = itertools.count()

    def submit(self, job: Job, on_line: LineSink | None = None) -> Future[JobResult]:
        """Run ``job`` (with its retries); the future resolves to its JobResult."""
        return self.threads.submit(self._run, job, on_line)

    def _run(self, job: Job, on_line: LineSink | None) -> JobResult:
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
        """One attempt on one worker; None on success, else why it failed."""
        capture = os.path.join(self.tmp, f"{next(self._ids)}.log")
        tail = Tail(capture, job.name, on_line)
        deadline = time.monotonic() + job.timeout if job.timeout else None
        worker = self._acquire(job.cwd)
        try:
            reply = worker.run({"job": _request(job), "capture": capture}, deadline,
                               tail.poll if on_line is not None else None)
        except WorkerDied as exc:
            self._discard(worker)
            error = f"timed out after {job.timeout:g}s" if worker.timed_out else str(exc)
            output.append(_without_internals(tail.finish()))
        else:
            self._release(worker)
            error = reply["error"]
            output.append(tail.finish())
        try:
            os.unlink(capture)
        except FileNotFoundError:
            pass
        return error

    def _acquire(self, cwd: str) -> Worker:
        with self.lock:
            worker = self.idle.pop() if self.idle else None
        if worker is None:
            worker = Worker(cwd)
            with self.lock:
                self.spawned += 1
        with self.lock:
            self.busy.add(worker)
        if self.cancelled.is_set():
            worker.kill()  # cancel() may have run between the two locks
        return worker

    def _release(self, worker: Worker) -> None:
        with self.lock:
            self.busy.discard(worker)
            self.idle.append(worker)

    def _discard(self, worker: Worker) -> None:
        with self.lock:
            self.busy.discard(worker)
        worker.kill()
        worker.close(grace=0)

    def cancel(self) -> None:
        """Ctrl-C: kill every busy worker now; their jobs resolve as interrupted."""
        self.cancelled.set()
        with self.lock:
            busy = list(self.busy)
        for worker in busy:
            worker.kill()

    def shutdown(self) -> None:
        """Wait for running jobs, then stop every worker and remove the capture folder."""
        self.threads.shutdown(wait=True)
        with self.lock:
            workers, self.idle = self.idle, []
        for worker in workers:
            worker.stop()  # all at once: they exit in parallel
        for worker in workers:
            worker.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _without_internals(text: str) -> str:
    """Drop flowmake's own frames from faulthandler's dump of a crashed worker."""
    internal = (f'  File "{os.path.dirname(_FLOWMAKE_DIR)}{os.sep}', '  File "<frozen runpy>"')
    return "".join(line for line in text.splitlines(keepends=True)
                   if not line.startswith(internal))


def _request(job: Job) -> dict[str, Any]:
    """The job as plain values (the worker needs no flowmake classes to read it)."""
    return {"function": job.function, "kwargs": dict(job.kwargs), "inputs": list(job.inputs),
            "outputs": list(job.outputs), "root": job.root, "cwd": job.cwd,
            "plugins": list(job.plugins), "env": dict(job.env) if job.env else None,
            "bound": dict(job.bound) if job.bound is not None else None}
