"""The scheduler: run stale targets in dependency order through an Executor.

A target is checked when its upstream is done (so early cutoff falls out: a rebuilt
target whose outputs hash as before leaves its dependents' keys unchanged). Fresh targets
take no job slot. A success's record and each target's line are queued (store/sqlite.py),
committed when nothing can start until a job ends, and before the build's end is reported.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, cast

from flowmake.errors import StateError
from flowmake.executor import Executor, JobHandle, JobResult
from flowmake.graph import Graph
from flowmake.jobs import make_job
from flowmake.model import OutcomeStatus, Project, RunResult, Target
from flowmake.outcome import Outcome, Outcomes, Reporter, Restorer, Summary, fresh
from flowmake.plan.check import Checker, State, Step
from flowmake.plugin.urls import digest_url_outputs
from flowmake.signalgate import SignalGate
from flowmake.store.db import Record, Store

__all__ = ["Collaborators", "Outcome", "Reporter", "Restorer", "Scheduler", "SchedulerConfig",
           "Summary", "make_job"]


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    """How one build runs (from BuildOptions and the project's settings)."""

    run_id: int  # the store's run the targets' lines are written to
    jobs: int = 1  # at most this many jobs at once
    keep_going: bool = False  # -k: go on with independent targets after a failure
    stream: bool = False  # -v: each job's output lines to the reporter as they come
    kept: bool = True  # false: the run leaves the history at its end (--no-record)


@dataclass(frozen=True, slots=True)
class Collaborators:
    """What the scheduler works with: the seams a test replaces (FakeExecutor, an
    in-memory store, a quiet reporter)."""

    checker: Checker
    store: Store
    executor_factory: Callable[[], Executor]  # called when the first job starts
    reporter: Reporter
    restorer: Restorer | None = None  # the artifact cache (None: --no-cache)
    on_event: Callable[[str, Any], None] | None = None  # the plugins' observer hooks
    # fresh without a check (a cone build, cli/cone.py): never stepped through; none is
    # downstream of a target that is not
    trusted: AbstractSet[str] = frozenset()


class Scheduler:
    """One build: a ready queue, a bounded set of running jobs, and the records."""

    def __init__(self, project: Project, graph: Graph, names: list[str],
                 config: SchedulerConfig, parts: Collaborators) -> None:
        self.project, self.graph, self.config = project, graph, config
        self.checker, self.store, self.reporter = parts.checker, parts.store, parts.reporter
        self.jobs, self.keep_going, self.run_id = config.jobs, config.keep_going, config.run_id
        self.stream, self.kept, self.restorer = config.stream, config.kept, parts.restorer
        self.executor_factory = parts.executor_factory
        self.executor: Executor | None = None
        self.on_event = parts.on_event or (lambda name, payload: None)
        self.observed = parts.on_event is not None
        # The trusted targets (a subset of ``names``) are fresh from the start: the loop
        # steps only through the rest, in ``order``; none of them is walked one by one.
        self.names, self.trusted = names, parts.trusted
        checked = [n for n in names if n not in self.trusted] if self.trusted else names
        self.order = graph.order(checked)
        chosen = set(checked)
        self.waiting = {n: sum(1 for u in graph.upstream[n] if u in chosen) for n in self.order}
        self.ready: deque[str] = deque(n for n in self.order if self.waiting[n] == 0)
        self.runnable: deque[Step] = deque()
        self.running: dict[JobHandle, tuple[Step, float]] = {}
        self.finishing: list[tuple[JobResult, Step, float]] = []  # ended, not yet recorded
        self.outcomes: dict[str, Outcome] = {}  # of the targets stepped through
        self.in_use: dict[str, float] = {}  # resource -> amount held by running jobs
        self.stopping = False
        self.held: list[Step] | None = None  # starts not yet reported (see _loop)
        self.ended = 0.0  # wall-clock time the last finished jobs were seen done
        self.start = time.monotonic()
        self.recorded: dict[str, Record] = {}  # records written by this build (flow.lock)
        self.gate = SignalGate()  # no Ctrl-C between a job's steps that go together

    def run(self) -> Summary:
        start = self.start = time.monotonic()
        self.reporter.build_start(len(self.names), self.jobs)
        self._report_trusted()
        result = RunResult.SUCCESS
        self.gate.install()
        try:
            self._loop()
        except KeyboardInterrupt:
            result = RunResult.INTERRUPTED
            self._interrupt()
        except BaseException:  # flowmake itself failed (a full disk): no job outlives it
            self._interrupt()
            raise
        finally:
            try:
                if self.executor is not None:
                    self.executor.shutdown()
            finally:
                self.gate.uninstall()
        for name in self.order:  # never reached: stopped after a failure, or interrupted
            if name not in self.outcomes:
                self.outcomes[name] = Outcome(name, OutcomeStatus.SKIPPED)
                self.on_event("target_finish", self.outcomes[name])  # observers see every target
        if result is RunResult.SUCCESS and any(o.status is OutcomeStatus.FAILED
                                               for o in self.outcomes.values()):
            result = RunResult.FAILED
        self.store.commit()  # every record of the build, before it says it is done
        ordered = {n: self.outcomes[n] for n in self.order}
        summary = Summary(self.run_id if self.kept else None, result,
                          self._with_trusted(ordered), time.monotonic() - start)
        self.reporter.build_finish(summary)
        return summary

    def _report_trusted(self) -> None:
        """The trusted targets' outcomes (fresh), told at once (observers one by one, in
        build order, as the loop would have told them)."""
        if not self.trusted:
            return
        self.reporter.targets_fresh(self.trusted)
        if self.observed:
            for name in self.graph.order(self.trusted):
                self.on_event("target_finish", fresh(name))

    def _with_trusted(self, ordered: dict[str, Outcome]) -> Mapping[str, Outcome]:
        """``ordered`` (an outcome for each target stepped through, in build order), with
        the trusted targets' (made on demand: outcome.Outcomes) when there are any."""
        if not self.trusted:
            return ordered
        return Outcomes(self.graph, self.names, ordered, self.trusted)

    def partial(self, result: RunResult) -> Summary:
        """What this build did, when flowmake stopped outside the loop (every target not
        finished is skipped)."""
        outcomes = {n: self.outcomes.get(n) or Outcome(n, OutcomeStatus.SKIPPED)
                    for n in self.order}
        return Summary(self.run_id if self.kept else None, result,
                       self._with_trusted(outcomes), time.monotonic() - self.start)

    def _loop(self) -> None:
        while True:
            self._fill()
            if not self.running:
                return
            if self.stopping or not (self.ready or self.runnable):
                self.store.commit()  # nothing to start until a job ends, maybe in hours
            done = self._wait()
            with self.gate:  # off the running list and onto finishing together
                finished = self.finishing = [(handle.result(), *self.running.pop(handle))
                                             for handle in done]
            self.ended = time.time()  # when these jobs were seen done (their bars' ends)
            for _, step, _ in finished:
                self._release(step.target)
            self.held = []  # reported after the finishes: `ok A` before `run B`, as it happened
            if self.keep_going or all(result.ok for result, _, _ in finished):
                self._start_runnable()  # the freed slots are refilled before the bookkeeping
            for result, step, started in finished:
                self._finish(step, result, started)
            self.finishing = []
            held, self.held = self.held, None
            for step in held:
                self.reporter.target_start(step)

    def _fill(self) -> None:
        """Check ready targets and start jobs until every slot is busy and as many steps
        again are checked and waiting (so that a slot freed is refilled at once), or until
        nothing is ready."""
        while True:
            self._start_runnable()
            if self.stopping or not self.ready:
                return
            if len(self.running) >= self.jobs and len(self.runnable) >= self.jobs:
                return
            self._check(self.ready.popleft())

    def _wait(self) -> Iterable[JobHandle]:
        """The running jobs that are done, once there is at least one."""
        assert self.executor is not None
        waiter = getattr(self.executor, "wait", None)
        if waiter is not None:  # an executor that drives its jobs from this thread
            return cast("Iterable[JobHandle]", waiter(self.running))
        from concurrent.futures import FIRST_COMPLETED, wait

        futures: Any = self.running  # an executor without wait() returns Futures
        return cast("Iterable[JobHandle]", wait(futures, return_when=FIRST_COMPLETED)[0])

    def _check(self, name: str) -> None:
        step = self.checker.check(self.graph.targets[name])
        if step.state is State.FRESH:
            if step.source == "lock":
                self._adopt(step)
            self._done(Outcome(name, OutcomeStatus.FRESH))
        elif step.state is not State.RESTORABLE or not self._restore(step):
            self.runnable.append(step)

    def _restore(self, step: Step) -> bool:
        assert self.restorer is not None
        started, wall = time.monotonic(), time.time()
        log = self.restorer.restore(step)
        if log is None:
            return False
        self.checker.hasher.forget(o.path for o in step.target.outputs)
        outcome = Outcome(step.name, OutcomeStatus.RESTORED, time.monotonic() - started,
                          [str(r) for r in step.reasons], log, started=wall, finished=time.time())
        self._conclude(step, outcome, None)
        return True

    def _fits(self, target: Target) -> bool:
        capacity = self.project.settings.resources
        return all(self.in_use.get(r, 0.0) + amount <= capacity.get(r, float("inf"))
                   for r, amount in target.resources.items())

    def _release(self, target: Target) -> None:
        for r, amount in target.resources.items():
            self.in_use[r] = self.in_use.get(r, 0.0) - amount

    def _start_runnable(self) -> None:
        skipped: deque[Step] = deque()
        while self.runnable and len(self.running) < self.jobs and not self.stopping:
            step = self.runnable.popleft()
            if not self._fits(step.target):
                skipped.append(step)  # waits for resources; later steps may still fit
                continue
            if self.executor is None:
                self.executor = self.executor_factory()
            with self.gate:  # a job started is a job on the running list
                self._submit(self.executor, step)
        self.runnable.extendleft(reversed(skipped))

    def _submit(self, executor: Executor, step: Step) -> None:
        for r, amount in step.target.resources.items():
            self.in_use[r] = self.in_use.get(r, 0.0) + amount
        if self.held is None:
            self.reporter.target_start(step)
        else:
            self.held.append(step)
        self.on_event("target_start", step)
        self.checker.hasher.forget(o.path for o in step.target.outputs)
        job = make_job(self.project, step.target)
        self.store.commit_before(self.graph.upstream[step.name])  # kept if killed while it runs
        line = self.reporter.line if self.stream else None
        self.running[executor.submit(job, line)] = (step, time.time())

    def _finish(self, step: Step, result: JobResult, started: float) -> None:
        """``started``: the wall-clock time the job was submitted."""
        reasons = [str(r) for r in step.reasons]
        times = {"started": started, "finished": self.ended}
        if result.interrupted:
            outcome = Outcome(step.name, OutcomeStatus.FAILED, result.duration, reasons,
                              result.output, "interrupted", result.attempts, **times)
            with self.gate:
                self._record_interrupted(step, outcome)
                self._done(outcome)
            return
        result = digest_url_outputs(self.checker.hasher, step.target, result)
        if not result.ok:
            outcome = Outcome(step.name, OutcomeStatus.FAILED, result.duration, reasons,
                              result.output, result.error, result.attempts, **times)
            self._conclude(step, outcome, None)
            return
        hasher = self.checker.hasher
        for path, digest in result.digests.items():
            hasher.memo[path] = digest
        for path, entry in result.stats.items():
            hasher.learn(path, entry)
        outcome = Outcome(step.name, OutcomeStatus.BUILT, result.duration, reasons,
                          result.output, None, result.attempts, **times)
        if self.restorer is not None and step.target.cache:
            self.restorer.save(step, result)
        self._conclude(step, outcome, result.digests)

    def _conclude(self, step: Step, outcome: Outcome, digests: dict[str, str] | None) -> None:
        """The record and the outcome, with no interrupt between them."""
        with self.gate:
            self._record(step, outcome, digests)
            self._done(outcome)

    def _record(self, step: Step, outcome: Outcome, digests: dict[str, str] | None) -> None:
        """Write the record (on success) and the run's line for this target, atomically."""
        record = None
        if outcome.status in (OutcomeStatus.BUILT, OutcomeStatus.RESTORED) \
                and step.key is not None:
            if digests is None:  # restored: digest what the cache put in place
                digests = {o.path: self.checker.hasher.digest(o.path) or ""
                           for o in step.target.outputs}
            record = Record(step.name, step.key, json.dumps(step.parts, default=str),
                            json.dumps(digests),
                            self.run_id, time.time(), outcome.duration)
        self.store.finish_target(self.run_id, outcome.name, outcome.status, outcome.duration,
                                 outcome.reasons, outcome.output, record,
                                 started=outcome.started, finished=outcome.finished,
                                 error=outcome.error, commit=False)
        if record is not None:  # a dependent's ``deps`` part reads it
            self.checker.records[step.name] = record
            self.recorded[step.name] = record

    def _record_interrupted(self, step: Step, outcome: Outcome) -> None:
        """The line of a target stopped by Ctrl-C (no record), so that ``log N`` names it;
        a state that cannot be written then is left for the next build to close."""
        try:
            self._record(step, outcome, None)
        except StateError:
            pass

    def _adopt(self, step: Step) -> None:
        """A target fresh through its flow.lock entry gets that entry as its local record,
        so that the next build needs the lock no more."""
        entry = self.checker.records[step.name]
        record = Record(step.name, entry.key, entry.parts_json, entry.outputs_json,
                        self.run_id, time.time(), entry.duration)
        with self.gate:  # recorded is in `recorded` (flow.lock)
            self.store.put_record(record, commit=False)
            self.checker.records[step.name] = record
            self.recorded[step.name] = record

    def _done(self, outcome: Outcome) -> None:
        self.outcomes[outcome.name] = outcome
        self.reporter.target_finish(outcome)
        self.on_event("target_finish", outcome)
        if outcome.status is OutcomeStatus.FAILED:
            self._skip_downstream(outcome.name)
            if not self.keep_going:
                self.stopping = True
            return
        for down in self.graph.downstream[outcome.name]:
            if down in self.waiting and down not in self.outcomes:
                self.waiting[down] -= 1
                if self.waiting[down] == 0:
                    self.ready.append(down)

    def _skip_downstream(self, name: str) -> None:
        for down in sorted(self.graph.downstream_cone([name]) - {name}):
            if down in self.waiting and down not in self.outcomes:
                skipped = Outcome(down, OutcomeStatus.SKIPPED, error=f"upstream '{name}' failed")
                self.outcomes[down] = skipped
                self.reporter.target_finish(skipped)
                self.on_event("target_finish", skipped)

    def _interrupt(self) -> None:
        """Ctrl-C or SIGTERM: stop every job, wait for them, record none of them fresh.
        A job that had ended before (done, or taken off the running list but not yet
        recorded) is finished as it would have been: built and recorded, or failed."""
        self.stopping = True
        ended = [(step, result, started) for result, step, started in self.finishing]
        stopped: list[tuple[JobHandle, Step, float]] = []
        for handle, (step, started) in self.running.items():
            result = _result_if_done(handle)
            if result is None:
                stopped.append((handle, step, started))
            else:
                ended.append((step, result, started))
        if self.executor is not None:
            self.executor.cancel()
        self.ended = time.time()
        for step, result, started in ended:
            if step.name not in self.outcomes:  # not already recorded, before the Ctrl-C
                try:
                    self._finish(step, result, started)
                except StateError:  # the state cannot be written (the build's own error?)
                    self._stopped(step, started, result)
        held, self.held = self.held or [], None  # started in freed slots, not yet reported
        for step in held:
            self.reporter.target_start(step)
        for handle, step, started in stopped:
            self._stopped(step, started, _stopped_result(handle, step))
        self.running.clear()
        self.finishing = []

    def _stopped(self, step: Step, started: float, result: JobResult) -> None:
        """A job still running at the interrupt (or one whose record could not be
        written): failed, "interrupted", no record."""
        outcome = Outcome(step.name, OutcomeStatus.FAILED, result.duration,
                          [str(r) for r in step.reasons], result.output, "interrupted",
                          result.attempts, started=started, finished=time.time())
        with self.gate:
            self.outcomes[step.name] = outcome
            self._record_interrupted(step, outcome)
        self.on_event("target_finish", outcome)


def _stopped_result(handle: JobHandle, step: Step) -> JobResult:
    """What a job stopped by cancel() reports."""
    try:
        return handle.result(timeout=30)
    except Exception:  # a job that cannot even report is simply not recorded
        return JobResult(step.name, False, "", 0.0, "interrupted", interrupted=True)


def _result_if_done(handle: JobHandle) -> JobResult | None:
    """The result of a job that has ended (None: still running, or it cannot report)."""
    if not handle.done():
        return None
    try:
        return handle.result()
    except Exception:
        return None
