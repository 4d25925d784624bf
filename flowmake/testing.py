"""Test doubles for the scheduler's seams, for flowmake's own tests and plugin authors'.

:class:`FakeExecutor` implements the Executor interface without starting anything: each
job's outcome comes from a script (a function of the Job), its outputs are written as the
script says, and jobs finish one at a time, oldest first, when the scheduler waits, so
that a test sees a deterministic order (``batch``: that many at once). It records what
the scheduler did: every job submitted, how many ran at once, whether it was cancelled.
A script can deliver a real SIGINT to this process, as a Ctrl-C would, at a chosen moment
(``Script(signal=...)``), so a test can land the interrupt exactly where a race would. :func:`memory_store` is a
:class:`~flowmake.store.db.Store` in memory (the same SQLite schema, nothing on disk).

A scheduler test on both::

    executor = FakeExecutor(script={"b": FakeExecutor.fails("exit code 1")})
    parts = Collaborators(checker, memory_store(), lambda: executor, QuietReporter())
    summary = Scheduler(project, graph, names, SchedulerConfig(run_id=1, jobs=2), parts).run()
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from flowmake.executor import Job, JobResult, LineSink, finish_outputs
from flowmake.store.db import Store


class Script(NamedTuple):
    """What a fake job does: succeed or fail, the text it prints, what it writes."""

    ok: bool = True
    output: str = ""
    error: str | None = None
    writes: Mapping[str, str] | None = None  # output path -> content; None: "NAME\n"
    interrupt: bool = False  # raise KeyboardInterrupt when the scheduler waits for it
    # SIGINT to this process (the default handler raises KeyboardInterrupt at once):
    # "submit": right after the job started, before submit() returns its handle;
    # "finish": right after the job finished, before wait() returns it.
    signal: str | None = None


class FakeHandle:
    """A submitted fake job; resolved by :meth:`FakeExecutor.wait`."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self._result: JobResult | None = None

    def done(self) -> bool:
        return self._result is not None

    def result(self, timeout: float | None = None) -> JobResult:
        assert self._result is not None, f"{self.job.name} was never waited for"
        return self._result


class FakeExecutor:
    """An Executor that runs nothing: see the module docstring."""

    NAME = "fake"

    def __init__(self, jobs: int = 1, options: Mapping[str, Any] | None = None, *,
                 script: Mapping[str, Script | Callable[[Job], Script]] | None = None,
                 batch: int = 1) -> None:
        self.jobs = jobs
        self.batch = batch  # jobs finished by one wait(): several ending at the same moment
        self.script = dict(script or {})
        self.submitted: list[str] = []
        self.running: list[FakeHandle] = []
        self.most_at_once = 0
        self.cancelled = False
        self.shut_down = False

    @staticmethod
    def fails(error: str, output: str = "") -> Script:
        return Script(ok=False, output=output, error=error)

    def submit(self, job: Job, on_line: LineSink | None = None) -> FakeHandle:
        handle = FakeHandle(job)
        self.submitted.append(job.name)
        self.running.append(handle)
        self.most_at_once = max(self.most_at_once, len(self.running))
        if self._script(job).signal == "submit":
            interrupt_now()
        return handle

    def wait(self, handles: Iterable[FakeHandle]) -> list[FakeHandle]:
        """Finish the ``batch`` oldest running jobs among ``handles``; oldest first (a
        list, not a set: the scheduler takes them in this order, every time)."""
        wanted = set(handles)
        done: list[FakeHandle] = []
        for handle in [h for h in self.running if h in wanted][:self.batch]:
            step = self._script(handle.job)
            if step.interrupt:
                raise KeyboardInterrupt
            self.running.remove(handle)
            handle._result = self._run(handle.job, step)
            done.append(handle)
            if step.signal == "finish":
                interrupt_now()
        return done

    def _script(self, job: Job) -> Script:
        found = self.script.get(job.name, Script())
        return found(job) if callable(found) else found

    def _run(self, job: Job, step: Script) -> JobResult:
        if not step.ok:
            return JobResult(job.name, False, step.output, 0.0, step.error or "failed")
        for _, path in job.outputs:
            if "://" in path:
                continue
            content = (step.writes or {}).get(path, f"{job.name}\n")
            full = Path(job.root, path)
            full.parent.mkdir(parents=True, exist_ok=True)
            full.write_text(content)
        return finish_outputs(job, True, step.output, 0.0, None)

    def cancel(self) -> None:
        self.cancelled = True
        for handle in self.running:
            handle._result = JobResult(handle.job.name, False, "", 0.0, "interrupted",
                                       interrupted=True)
        self.running.clear()

    def shutdown(self) -> None:
        self.shut_down = True


def interrupt_now() -> None:
    """SIGINT to this process, as a Ctrl-C; its handler runs before this returns (Python's
    default raises KeyboardInterrupt; one that defers it lets this return)."""
    signal.raise_signal(signal.SIGINT)


def memory_store() -> Store:
    """A Store in memory: records, runs and the stat cache, gone when closed."""
    return Store(Path(os.devnull), memory=True)
