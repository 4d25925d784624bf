"""The ``dask`` executor: each attempt of a target is one task on a Dask cluster.

The client keeps every decision (plan, keys, records, cache, resource capacities); a
worker runs one attempt of a job and returns its :class:`~flowmake.executor.JobResult`
(exit status, captured output, output digests). Retries are counted here, on the client,
so that a worker dying mid-target (``KilledWorker``) is just a failed attempt: retried if
the target allows it, and never recorded fresh.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, cast

from flowmake.executor import Job, JobResult, LineSink

from .cluster import Connection, connect

if TYPE_CHECKING:
    from concurrent.futures import Future

CANCEL_WAIT = 5.0  # seconds for killed tasks to report (SIGTERM, then SIGKILL after 2 s)


@dataclass
class _Attempts:
    """One target's run across its attempts: where its result goes and what came before."""

    job: Job
    on_line: LineSink | None
    result: Future[JobResult]
    attempt: int = 1
    output: list[str] = field(default_factory=list)
    duration: float = 0.0


class DaskExecutor:
    """Runs shell and python targets as tasks on a Dask cluster (see the plugin README).

    Args:
        jobs: ``-j``; the core never submits more than this many targets at once, and a
            cluster started here has at most this many workers.
        options: ``scheduler`` (``--scheduler``), ``dask_scheduler`` (flow.toml) and the
            rest of what build.py passes; see :func:`flowmake_dask.cluster.connect`.
    """

    NAME: ClassVar[str] = "dask"

    def __init__(self, jobs: int, options: Mapping[str, Any]) -> None:
        import uuid

        self.token = uuid.uuid4().hex
        self.connection: Connection = connect(options, jobs)
        self.client = self.connection.client
        self.lock = threading.Lock()
        # key -> (distributed.Future, its run): Dask drops a task whose future is garbage
        self.tasks: dict[str, tuple[Any, _Attempts]] = {}
        self.cancelled = threading.Event()
        self._offered: dict[str, float] | None = None

    def submit(self, job: Job, on_line: LineSink | None = None) -> Future[JobResult]:
        from concurrent.futures import Future  # not at import: every command loads plugins

        result: Future[JobResult] = Future()
        result.set_running_or_notify_cancel()
        self._send(_Attempts(job, on_line, result))
        return result

    def _send(self, run: _Attempts) -> None:
        """Submit the next attempt of ``run`` as a Dask task."""
        job = run.job
        try:
            resources, problem = self._resources(job)
            if problem is not None:
                self._resolve(run, JobResult(job.name, False, "", 0.0, problem))
                return
            key = f"flowmake-{job.name}-{run.attempt}-{self.token}"
            # Imported here, not at the top: registering the plugin (every flowmake
            # command) must not pay for ctypes and the local executor.
            from .remote import run_job

            task = self.client.submit(run_job, job, self.token, key=key, pure=False,
                                      resources=resources or None, retries=0)
        except Exception as exc:  # an unreachable scheduler, a job it cannot take
            self._resolve(run, JobResult(job.name, False, "", 0.0, _describe(exc)))
            return
        with self.lock:
            self.tasks[key] = (task, run)
        task.add_done_callback(lambda done: self._attempt_done(run, done))

    def _attempt_done(self, run: _Attempts, task: Any) -> None:
        """A task ended (in distributed's callback thread): retry, or resolve the target."""
        try:
            self._next_step(run, task)
        except Exception as exc:  # never leave the core waiting on a future that won't end
            if not run.result.done():
                self._resolve(run, JobResult(run.job.name, False, "", 0.0, _describe(exc)))

    def _next_step(self, run: _Attempts, task: Any) -> None:
        with self.lock:
            self.tasks.pop(task.key, None)
        got = self._result_of(run.job, task)
        run.duration += got.duration
        retry = (not got.ok and not got.interrupted and run.attempt <= run.job.retries
                 and not self.cancelled.is_set())
        if not retry:
            self._resolve(run, got)
            return
        # The same banner as the local executor, so logs read the same wherever it ran.
        run.output += [got.output,
                       f"--- attempt {run.attempt + 1} of {run.job.retries + 1} ({got.error}) ---\n"]
        run.attempt += 1
        self._send(run)

    def _result_of(self, job: Job, task: Any) -> JobResult:
        """The task's JobResult; a dead worker or a cancelled task as a failed one."""
        if task.status == "finished":
            try:
                return cast(JobResult, task.result())
            except Exception as fetch_error:  # the result could not be fetched after all
                return JobResult(job.name, False, "", 0.0, _describe(fetch_error))
        if task.status == "cancelled" or self.cancelled.is_set():
            return JobResult(job.name, False, "", 0.0, "interrupted", interrupted=True)
        problem: BaseException | None
        try:
            problem = task.exception()
        except Exception as err:  # cancelled between the two looks
            problem = err
        return JobResult(job.name, False, "", 0.0, _describe(problem))

    def _resolve(self, run: _Attempts, last: JobResult) -> None:
        output = "".join(run.output) + last.output
        if run.on_line is not None:  # -v: workers do not stream, so replay the output now
            for line in output.splitlines(keepends=True):
                run.on_line(run.job.name, line)
        run.result.set_result(last._replace(output=output, attempts=run.attempt,
                                            duration=run.duration))

    def _resources(self, job: Job) -> tuple[dict[str, float], str | None]:
        """The job's resources that the cluster's workers declare, for ``client.submit``.

        Resources no worker declares are capacities the core enforces alone (passing them
        on would leave the task waiting forever). An amount larger than any one worker
        offers could never be placed either: that is the second item, a failure message.
        """
        if not job.resources:
            return {}, None
        offered = self._worker_resources()
        wanted = {name: amount for name, amount in job.resources.items() if name in offered}
        for name, amount in wanted.items():
            if amount > offered[name]:
                return wanted, (f"needs {name}={amount:g}, but no Dask worker offers more "
                                f"than {name}={offered[name]:g}")
        return wanted, None

    def _worker_resources(self) -> dict[str, float]:
        """The largest amount of each resource that one worker declares (asked once)."""
        if self._offered is None:
            offered: dict[str, float] = {}
            info = self.client.scheduler_info(n_workers=-1)
            for worker in info.get("workers", {}).values():
                for name, amount in (worker.get("resources") or {}).items():
                    offered[name] = max(offered.get(name, 0.0), float(amount))
            self._offered = offered
        return self._offered

    def cancel(self) -> None:
        """Ctrl-C: kill this build's commands on every worker, then cancel its tasks."""
        self.cancelled.set()
        try:
            from .remote import cancel_build

            self.client.run(cancel_build, self.token, on_error="ignore")
        except Exception:  # a cluster that is going away has nothing left to kill
            pass
        with self.lock:
            pending = list(self.tasks.values())
        # Running tasks end as soon as their command is dead, and queued ones end at once
        # on a worker that knows the build is cancelled: waiting a little keeps their
        # output. Whatever is left (a task stuck on a dead worker) is cancelled.
        from concurrent.futures import wait

        wait([run.result for _, run in pending], timeout=CANCEL_WAIT)
        with self.lock:
            left = [task for task, _ in self.tasks.values()]
        if left:
            try:
                self.client.cancel(left)
            except Exception:
                pass

    def shutdown(self) -> None:
        """Forget this build on the workers; close the client (and the cluster started here)."""
        try:
            from .remote import forget_build

            self.client.run(forget_build, self.token, on_error="ignore")
        except Exception:
            pass
        self.connection.close()


def _describe(exc: BaseException | None) -> str:
    """One line saying why an attempt failed without a result from its worker."""
    from distributed import KilledWorker

    if isinstance(exc, KilledWorker):
        worker = getattr(exc.last_worker, "address", exc.last_worker)
        return f"the Dask worker running it died ({worker})"
    if exc is None:
        return "the Dask task ended without a result"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
