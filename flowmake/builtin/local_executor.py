"""The built-in ``local`` executor: shell commands as process groups on this machine.

Each command runs with ``sh -c`` (or directly, when it has nothing for a shell to do:
see :mod:`flowmake.builtin.shell`) in a new session (its own process group), so a timeout
or Ctrl-C kills the command and everything it started, and a terminal's SIGINT reaches
flowmake first, which then stops its jobs cleanly.

One thread runs every command, as ninja does: the scheduler's own. Commands are started
when submitted and a selector over their output pipes tells when they end
(:meth:`LocalExecutor.wait`), so no thread per job fights the scheduler for the GIL
(measured: with one thread per job, 1,000 small targets spent ~40% of the build waiting
for it).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flowmake.builtin.attempt import EXIT_POLL, KILL_GRACE, READ_SIZE, Attempt
from flowmake.executor import Job, JobResult, LineSink, finish_outputs
from flowmake.hookspecs import hookimpl


class JobHandle:
    """The pending result of one shell job (what ``submit`` returns), Future-like."""

    __slots__ = ("_loop", "_result", "current", "job", "number", "on_line", "output", "started")

    def __init__(self, loop: _Loop, job: Job, on_line: LineSink | None) -> None:
        self._loop, self.job, self.on_line = loop, job, on_line
        self._result: JobResult | None = None
        self.output: list[bytes] = []
        self.number = 0  # attempts made
        self.current: Attempt | None = None
        self.started = time.monotonic()

    def done(self) -> bool:
        return self._result is not None

    def result(self, timeout: float | None = None) -> JobResult:
        """The result, running the loop until there is one (``timeout`` is ignored: the
        loop itself enforces the job's timeout and the kill grace)."""
        while self._result is None:
            self._loop.pump({self})
        return self._result


class _Loop:
    """Starts attempts and multiplexes their pipes; owned by one thread."""

    def __init__(self, runner: CommandRunner) -> None:
        self.runner = runner
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        self.selector.register(self.wake_r, selectors.EVENT_READ, None)
        self.active: set[JobHandle] = set()
        self.exiting: set[JobHandle] = set()  # output closed, process not yet gone

    def close(self) -> None:
        if self.wake_w < 0:
            return
        self.selector.close()
        os.close(self.wake_r)
        wake_w, self.wake_w = self.wake_w, -1  # a late wake() must not write to a reused fd
        os.close(wake_w)

    def wake(self) -> None:
        try:
            if self.wake_w >= 0:
                os.write(self.wake_w, b"x")
        except OSError:
            pass  # already awake (the pipe is full), or closed meanwhile

    def start(self, job: Job, on_line: LineSink | None) -> JobHandle:
        handle = JobHandle(self, job, on_line)
        self._next_attempt(handle, None)
        return handle

    def _next_attempt(self, handle: JobHandle, error: str | None) -> None:
        """Start the handle's next attempt, or resolve it when there is none to make."""
        job = handle.job
        if self.runner.cancelled.is_set():
            self._resolve(handle, None, interrupted=True)
            return
        if handle.number > 0:
            if error is None or handle.number > job.retries:
                self._resolve(handle, error)
                return
            handle.output.append(
                f"--- attempt {handle.number + 1} of {job.retries + 1} ({error}) ---\n".encode())
        handle.number += 1
        try:
            attempt = Attempt(job, self.runner)
        except OSError as exc:  # no such cwd, no sh: a failure of this target, not of the build
            self._resolve(handle, f"cannot start the command: {exc}")
            return
        handle.current = attempt
        self.active.add(handle)
        assert attempt.fd is not None
        self.selector.register(attempt.fd, selectors.EVENT_READ, handle)
        if attempt.pidfd is not None:
            self.selector.register(attempt.pidfd, selectors.EVENT_READ, attempt)
        # cancel() sets the event, then takes the lock: one of us kills it
        with self.runner.lock:
            self.runner.running[attempt] = self
            cancelled = self.runner.cancelled.is_set()
        if cancelled:  # cancelled while it was starting
            attempt.terminate()

    def _resolve(self, handle: JobHandle, error: str | None, interrupted: bool = False) -> None:
        self.active.discard(handle)
        handle.current = None
        job = handle.job
        output = b"".join(handle.output).decode("utf-8", errors="replace")
        duration = time.monotonic() - handle.started
        if interrupted or self.runner.cancelled.is_set():
            handle._result = JobResult(job.name, False, output, duration, "interrupted",
                                       max(handle.number, 1), interrupted=True)
        else:
            try:
                handle._result = finish_outputs(job, error is None, output, duration, error,
                                                handle.number)
            except Exception as exc:  # never leave a handle unresolved: the loop would hang
                handle._result = JobResult(job.name, False, output, duration,
                                           f"cannot check the outputs: {exc!r}", handle.number)

    def pump(self, wanted: Iterable[Any], timeout: float | None = None) -> None:
        """Handle events until one of ``wanted`` is done (or ``timeout`` passes)."""
        end = None if timeout is None else time.monotonic() + timeout
        while not any(h.done() for h in wanted):
            now = time.monotonic()
            wait = self._next_deadline(now)
            if end is not None:
                wait = max(0.0, end - now) if wait is None else min(wait, max(0.0, end - now))
            for key, _ in self.selector.select(wait):
                if key.data is None:
                    os.read(self.wake_r, 4096)  # a python job finished, or a cancel
                elif isinstance(key.data, Attempt):  # its process ended: _check_exits reaps
                    self._drop_pidfd(key.data)
                else:
                    self._readable(key.data, key.fd)
            self._check_exits()
            self._check_deadlines()
            if end is not None and time.monotonic() >= end:
                return

    def _next_deadline(self, now: float) -> float | None:
        times = [t for h in self.active if (a := h.current) is not None
                 for t in (a.deadline, a.kill_at) if t is not None]
        if any(h.current is not None and not self._watched(h.current) for h in self.exiting):
            times.append(now + EXIT_POLL)  # no pidfd to tell us: look again soon
        return max(0.0, min(times) - now) if times else None

    def _readable(self, handle: JobHandle, fd: int) -> None:
        attempt = handle.current
        if attempt is None or attempt.fd != fd:  # left over by a Ctrl-C in mid-step
            self.selector.unregister(fd)
            return
        data = os.read(fd, READ_SIZE)
        if data:
            if handle.on_line is None:
                handle.output.append(data)
            else:
                self._stream(handle, attempt, data)
            return
        if attempt.partial:  # a last line without a newline
            self._emit(handle, attempt.partial)
            attempt.partial = b""
        self.exiting.add(handle)  # first: a Ctrl-C from here on leaves nothing stuck
        self._drop_pipe(attempt)

    def _stream(self, handle: JobHandle, attempt: Attempt, data: bytes) -> None:
        *lines, attempt.partial = (attempt.partial + data).split(b"\n")
        for line in lines:
            self._emit(handle, line + b"\n")

    @staticmethod
    def _emit(handle: JobHandle, raw: bytes) -> None:
        handle.output.append(raw)
        assert handle.on_line is not None
        handle.on_line(handle.job.name, raw.decode("utf-8", errors="replace"))

    def _check_exits(self) -> None:
        for handle in list(self.exiting):
            attempt = handle.current
            if attempt is not None and attempt.fd is not None \
                    and attempt.fd not in self.selector.get_map():
                self._drop_pipe(attempt)  # at EOF, a Ctrl-C cut _readable short
            if attempt is None or attempt.fd is not None:  # resolved, or a new attempt
                self.exiting.discard(handle)
                continue
            code = attempt.proc.poll()  # a second poll() returns the same code
            if code is None:
                continue
            self._drop_pidfd(attempt)  # reaped before its pidfd event came round
            with self.runner.lock:
                self.runner.running.pop(attempt, None)
            self._next_attempt(handle, attempt.exit_error(code, handle.job.timeout))
            self.exiting.discard(handle)  # last: a Ctrl-C before this only repeats the step

    def _drop_pipe(self, attempt: Attempt) -> None:
        """Stop reading the attempt's output (at EOF)."""
        if attempt.fd is not None:
            with contextlib.suppress(KeyError):  # unregistered by a call a Ctrl-C cut short
                self.selector.unregister(attempt.fd)
            attempt.close_pipe()

    def _watched(self, attempt: Attempt) -> bool:
        """Whether the attempt's exit wakes the selector (its pidfd is registered)."""
        return attempt.pidfd is not None and attempt.pidfd in self.selector.get_map()

    def _drop_pidfd(self, attempt: Attempt) -> None:
        """Stop watching for the attempt's exit. A Ctrl-C between the two steps leaves a
        pidfd closed or unwatched, never one that _next_deadline counts on."""
        if attempt.pidfd is not None:
            with contextlib.suppress(KeyError):  # unregistered by a call a Ctrl-C cut short
                self.selector.unregister(attempt.pidfd)
            attempt.close_pidfd()

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        for handle in self.active:
            attempt = handle.current
            if attempt is None:
                continue
            if attempt.deadline is not None and now >= attempt.deadline and not attempt.timed_out:
                attempt.timed_out = True
                attempt.terminate()
            if attempt.kill_at is not None and now >= attempt.kill_at:
                attempt._signal(signal.SIGKILL)
                attempt.kill_at = now + KILL_GRACE  # and again, should it still be there


class CommandRunner:
    """Runs shell jobs as process groups, with timeout and retries, and kills them on demand.

    The local executor is one; a remote executor (flowmake-dask) uses one on each worker
    (``run``, from any number of threads) so that shell targets behave the same wherever
    they run.

    Args:
        preexec_fn: called in the child before ``sh`` starts (after ``setsid``); a remote
            worker uses it to have commands die with the worker process.
    """

    def __init__(self, preexec_fn: Callable[[], None] | None = None) -> None:
        self.running: dict[Attempt, _Loop] = {}
        self.lock = threading.Lock()
        self.cancelled = threading.Event()
        self.preexec_fn = preexec_fn
        self.memo: dict[tuple[str, ...], Any] = {}  # lookups of shell.direct_start

    def run(self, job: Job, on_line: LineSink | None) -> JobResult:
        """Run ``job`` to its end on this thread."""
        loop = _Loop(self)
        try:
            return loop.start(job, on_line).result()
        finally:
            loop.close()

    def cancel(self) -> None:
        """SIGTERM every running command's process group (SIGKILL after KILL_GRACE);
        later attempts do not start."""
        self.cancelled.set()
        with self.lock:
            running = list(self.running.items())
        for attempt, loop in running:
            attempt.terminate()
            loop.wake()  # a loop in another thread recomputes its deadlines


class LocalExecutor(CommandRunner):
    """Runs up to ``jobs`` commands at once (the scheduler keeps the count), all from the
    scheduler's thread; python targets go to a pool of worker processes."""

    NAME = "local"

    def __init__(self, jobs: int, options: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.jobs = jobs
        self.loop = _Loop(self)
        self.python: Any = None  # the python-target worker pool, started on first use

    def submit(self, job: Job, on_line: LineSink | None = None) -> Any:
        if job.function is not None:
            future = self._python_pool().submit(job, on_line)
            future.add_done_callback(lambda _: self.loop.wake())
            return future
        return self.loop.start(job, on_line)

    def wait(self, handles: Iterable[Any]) -> set[Any]:
        """Block until at least one of ``handles`` is done; return those that are."""
        handles = list(handles)
        self.loop.pump(handles)
        return {h for h in handles if h.done()}

    def _python_pool(self) -> Any:
        if self.python is None:
            from flowmake.builtin.python_workers import WorkerPool

            self.python = WorkerPool(self.jobs)
        return self.python

    def cancel(self) -> None:
        super().cancel()
        if self.python is not None:
            self.python.cancel()

    def shutdown(self) -> None:
        if self.python is not None:
            self.python.shutdown()
        self.loop.close()


@hookimpl
def flowmake_register_executors() -> list[type]:
    return [LocalExecutor]
