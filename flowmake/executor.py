"""The Executor interface: what runs a target's action, locally or on a cluster.

The scheduler (``execute.py``) keeps every decision; an executor only runs a :class:`Job`
and returns a :class:`JobResult` (exit status, captured output, output digests). Jobs and
results are plain picklable values so that a remote executor can ship them as they are.

A whole minimal executor plugin::

    import concurrent.futures, subprocess
    import flowmake
    from flowmake.executor import Job, JobResult, finish_outputs

    class InlineExecutor:
        NAME = "inline"

        def __init__(self, jobs: int, options: dict) -> None:
            self.pool = concurrent.futures.ThreadPoolExecutor(jobs)

        def submit(self, job: Job, on_line=None):
            return self.pool.submit(self.run, job)

        def run(self, job: Job) -> JobResult:
            proc = subprocess.run(["sh", "-c", job.command], cwd=job.cwd,
                                  capture_output=True, text=True)
            return finish_outputs(job, proc.returncode == 0, proc.stdout + proc.stderr,
                                  0.0, None if proc.returncode == 0 else "failed")

        def cancel(self) -> None: ...
        def shutdown(self) -> None: self.pool.shutdown()

    @flowmake.hookimpl
    def flowmake_register_executors():
        return [InlineExecutor]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple, Protocol

from flowmake.digest import digest_output
from flowmake.errors import FlowmakeError
from flowmake.model import StatEntry

LineSink = Callable[[str, str], None]  # (target name, line) for -v streaming


# Jobs and results are NamedTuples: defining a frozen dataclass cost ~1.7 ms at every
# start, a NamedTuple ~0.2 ms. Their empty mappings are shared defaults, never mutated.
class Job(NamedTuple):
    """One run of one target's action; paths are absolute on the machine that runs it.
    A changed copy: ``job._replace(retries=0)``."""

    name: str
    root: str
    cwd: str
    command: str | None = None  # shell command for ``sh -c``
    function: str | None = None  # ``module:function`` for python targets
    kwargs: Mapping[str, Any] = {}
    inputs: tuple[tuple[str, str], ...] = ()  # table-form inputs: (argument name, path)
    outputs: tuple[tuple[str | None, str], ...] = ()  # (key, root-relative path or URL)
    timeout: float | None = None
    retries: int = 0
    env: Mapping[str, str] | None = None
    resources: Mapping[str, float] = {}
    plugins: tuple[str, ...] = ()  # [flow] plugins modules, for formats and backends in workers
    # A plugin kind's job (model.PluginAction): ``function`` is its runner, called as
    # ``function(bound, **kwargs)``; ``bound`` holds the action, the target and the root.
    bound: Mapping[str, Any] | None = None


class JobResult(NamedTuple):
    """What a job reports back: success, output, error and the digests of its outputs."""

    name: str
    ok: bool
    output: str
    duration: float
    error: str | None = None
    attempts: int = 1
    digests: dict[str, str] = {}  # noqa: RUF012 - a shared default, never mutated
    stats: dict[str, StatEntry] = {}  # noqa: RUF012 - likewise
    interrupted: bool = False


class JobHandle(Protocol):
    """A submitted job: a ``concurrent.futures.Future`` is one."""

    def done(self) -> bool: ...
    def result(self, timeout: float | None = None) -> JobResult: ...


class Executor(Protocol):
    """Runs jobs concurrently; ``NAME`` is what ``[flow] executor`` names.

    The scheduler waits for the handles ``submit`` returns with
    ``concurrent.futures.wait``, unless the executor has a method
    ``wait(handles) -> set of the done ones`` (blocking until there is one): then it runs
    its jobs from the scheduler's thread, as the local executor does.
    """

    NAME: ClassVar[str]

    def __init__(self, jobs: int, options: Mapping[str, Any]) -> None: ...

    def submit(self, job: Job, on_line: LineSink | None = None) -> JobHandle:
        """Start ``job``; the handle resolves to its JobResult (never raises for job
        failures). Without a ``wait`` method it must be a ``concurrent.futures.Future``."""
        ...

    def cancel(self) -> None:
        """Stop every running job now (Ctrl-C); their futures resolve as interrupted."""
        ...

    def shutdown(self) -> None:
        """Release workers and clusters at the end of a build."""
        ...


def prepare_outputs(job: Job) -> None:
    """Create the parent folders of a job's local outputs before it runs."""
    for _, path in job.outputs:
        if "://" not in path:
            parent = os.path.dirname(os.path.join(job.root, path)) or job.root
            if not os.path.isdir(parent):  # a stat: mkdir of an existing folder costs more
                os.makedirs(parent, exist_ok=True)


def finish_outputs(job: Job, ok: bool, output: str, duration: float, error: str | None,
                   attempts: int = 1) -> JobResult:
    """Check that a successful job produced every declared output, and digest them."""
    if not ok:
        return JobResult(job.name, ok, output, duration, error, attempts)
    digests: dict[str, str] = {}
    stats: dict[str, StatEntry] = {}
    for _, path in job.outputs:
        if "://" in path:
            continue  # URL outputs are fingerprinted by their backend on the client
        try:
            found = digest_output(os.path.join(job.root, path))
        except (FlowmakeError, OSError) as exc:  # e.g. a file name that is not UTF-8
            return JobResult(job.name, False, output, duration,
                             f"cannot digest output {path}: {exc}", attempts)
        if found is None:
            return JobResult(job.name, False, output, duration,
                             f"declared output not produced: {path}", attempts)
        digests[path], entry = found
        if entry is not None:
            stats[path] = entry
    return JobResult(job.name, True, output, duration, None, attempts, digests, stats)
