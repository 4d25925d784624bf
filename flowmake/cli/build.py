"""`flowmake build`: select, check sources, take the lock, schedule, record the run."""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar

from flowmake import warm
from flowmake.cli import cone
from flowmake.cli.workspace import Workspace
from flowmake.errors import FlowmakeError
from flowmake.model import OutcomeStatus, RunResult, TargetStatus
from flowmake.options import BuildOptions
from flowmake.outcome import stepped
from flowmake.report import jsonout
from flowmake.report.live import make_reporter
from flowmake.schedule import Collaborators, Scheduler, SchedulerConfig, Summary
from flowmake.store.db import Record
from flowmake.store.leftovers import mark_environment, writing_lock

if TYPE_CHECKING:
    from flowmake.cli.main import BuildSink
    from flowmake.executor import Executor, Job, JobHandle, LineSink
    from flowmake.store.provenance import Background

EXIT_FOR_RESULT = {RunResult.SUCCESS: 0, RunResult.FAILED: 1, RunResult.INTERRUPTED: 130}


def default_jobs(ws: Workspace, requested: int | None) -> int:
    """``-j``, else ``[flow] jobs``, else the CPU count (the CLI and the config loader
    refuse values below 1)."""
    if requested is not None:
        return requested
    return ws.project.settings.jobs or os.cpu_count() or 1


def build_command(options: BuildOptions, command: str, sink: BuildSink) -> int:
    """One full build of the project ``options`` name (the workspace opened and closed)."""
    from flowmake.cli.parser import open_workspace

    ws = open_workspace(options.directory, options.file, options.params, options.targets)
    # The project and graph live as long as the build: the garbage collector's full
    # passes need not walk their 100,000 objects again and again (unfrozen after it: the
    # Python API and --watch run builds in a process that lives on).
    gc.freeze()
    try:
        return run_build(ws, options, command, sink)
    finally:
        warm.thaw(always=options.watch)  # a watch builds again and again, in a fork too
        ws.close()


def run_build(ws: Workspace, options: BuildOptions, command: str, sink: BuildSink) -> int:
    """Build in ``ws`` as ``options`` say; ``sink`` gets the summary (the exit code is
    returned)."""
    names = ws.graph.closure(ws.select(list(options.targets)))
    jobs = default_jobs(ws, options.jobs)
    # Only the cone of what changed is checked, if the no-op snapshot says what did.
    found = cone.plan(ws, options, names)
    executor_name = _checked(ws, options, names if found is None else found.checked)
    if options.dry_run:
        return _dry_run(ws, names, options, found)
    junit = junit_path(options)
    reporter = make_reporter(print_to(options), no_color=options.no_color,
                             quiet=options.quiet, verbose=options.verbose)
    with writing_lock(ws.store, ws.project.state_dir) as dead_runs:
        planned = cone.still_valid(ws, options, found)  # no record written since it was read
        if found is not None and planned is None:
            _checked(ws, options, names)
        build = _Build(ws, options, sink, junit, dict(ws.store.records_of_runs(dead_runs)),
                       planned)
        summary = build.run(command, names, jobs, reporter, lambda: _executor(
            ws, executor_name, jobs, _executor_options(ws, options)))
        build.record(summary)
    after_build(options, sink, junit, summary, build.started)
    if options.json:
        sys.stdout.write(jsonout.dumps(summary.to_json()) + "\n")
    return EXIT_FOR_RESULT[summary.result]


def _checked(ws: Workspace, options: BuildOptions, names: Iterable[str]) -> str:
    """What is checked before anything runs (a missing plugin or an unknown executor is
    exit 2) for the targets ``names``; the executor's name."""
    ws.check_plugins(names)
    executor_name = options.executor or ws.project.settings.executor
    if options.scheduler and not options.executor and executor_name == "local":
        executor_name = "dask"  # --scheduler alone means "build on that Dask cluster"
    ws.plugins.executor_class(executor_name)  # an unknown executor is exit 2, before anything runs
    ws.validate_lock()
    ws.checker(records={}).check_sources(names)  # no record is read for that
    return executor_name


class _Build:
    """One build under the project lock: its run in the store, its scheduler, and what
    it leaves recorded (records, flow.lock, history) whether it succeeds or not."""

    def __init__(self, ws: Workspace, options: BuildOptions, sink: BuildSink,
                 junit: Path | None, changed: dict[str, Record],
                 planned: cone.Cone | None = None) -> None:
        self.ws, self.options, self.sink, self.junit = ws, options, sink, junit
        self.cone = planned  # only these targets are checked (cli/cone.py)
        self.changed: dict[str, Record | None] = dict(changed)  # for flow.lock
        self.scheduler: Scheduler | None = None
        self.run_id = 0
        self.started: float | None = None
        self.environment: Background | None = None  # set once the run is started
        use_cache = not options.no_cache
        # records as they are now, under the lock
        self.checker = cone.checker(ws, planned, force=options.force, cache=use_cache)
        # the artifact cache (cache.artifacts), with prefetch and close besides the
        # scheduler's Restorer
        self.restorer: Any = ws.artifacts if use_cache else None

    def run(self, command: str, names: set[str], jobs: int, reporter: Any,
            executor_factory: Callable[[], Executor]) -> Summary:
        ws = self.ws
        # The cache's signing key is never a command's to see (the cache, if open, has it).
        os.environ.pop("FLOWMAKE_CACHE_KEY", None)
        self.run_id = ws.store.start_run(command)
        ws.store.checkpoint_behind()  # the log earlier commands left, while commands run
        run = ws.store.run(self.run_id)
        assert run is not None
        self.started = run.started
        mark_environment(str(ws.project.state_dir), run)
        from flowmake.store.provenance import Background, git_state

        # git before any command runs (a command may change a tracked file); the rest in
        # a thread once the first job is started, kept when the jobs are done
        taken = self.environment = Background(ws.root, ws.project.state_dir,
                                              dict(ws.plugins.dists), git_state(ws.root))
        config = SchedulerConfig(self.run_id, jobs, self.options.keep_going,
                                 stream=self.options.verbose, kept=not self.options.no_record)
        try:
            # A cone build has no observer plugin (its snapshot is never saved with one):
            # the 10,000 fresh targets' events need not go through pluggy to no hook.
            quiet = self.cone is not None and not ws.plugins.has_observers()
            # The trusted targets are not stepped through, unless -v lists them in order.
            trusted = self.cone.trusted if self.cone and not self.options.verbose else None
            parts = Collaborators(self.checker, ws.store, lambda: _FirstSubmit(
                executor_factory(), self._first_started), reporter, self.restorer,
                on_event=None if quiet else ws.plugins.on_event,
                trusted=trusted or frozenset())
            self.scheduler = Scheduler(ws.project, ws.graph, list(names), config, parts)
            return self._schedule(self.scheduler, taken)
        except BaseException as exc:  # e.g. the executor could not start, a full disk
            self._failed(exc)
            raise

    def _first_started(self) -> None:
        """Once the first commands are started (_FirstSubmit): the environment's thread,
        and the artifact cache opened in a thread of its own (before the first save)."""
        assert self.environment is not None
        self.environment.start()
        if self.restorer is not None:
            self.restorer.open_soon()

    def _schedule(self, scheduler: Scheduler, taken: Background) -> Summary:
        ws, restorer = self.ws, self.restorer
        ws.plugins.build_start(self.run_id, scheduler.order)
        if restorer is not None:
            restorer.prefetch(ws.graph, scheduler.order, self.checker)  # remote hits, in parallel
        summary = scheduler.run()
        _record_environment(ws, self.run_id, taken)
        self.sink.summary = summary  # for the Python API (api.py)
        self.changed.update(scheduler.recorded)
        if restorer is not None:
            # waits for the background saves and pushes (those not started are dropped
            # after Ctrl-C)
            restorer.close(cancel=summary.result is RunResult.INTERRUPTED)
        ws.plugins.build_finish(summary)
        ws.save_stats()
        return summary

    def _failed(self, exc: BaseException) -> None:
        """Flowmake stopped outside the scheduler's loop: the run closed with what it
        recorded, flow.lock updated, the CI reports of what it did."""
        ws, scheduler = self.ws, self.scheduler
        if self.restorer is not None:
            self.restorer.close(cancel=True)
        result = RunResult.INTERRUPTED if isinstance(exc, KeyboardInterrupt) else RunResult.FAILED
        if self.environment is not None:  # what of it is taken by now, if anything
            with contextlib.suppress(FlowmakeError):
                _record_environment(ws, self.run_id, self.environment, timeout=0.5)
        with contextlib.suppress(FlowmakeError):  # else the next build closes it
            # not "running", with what it recorded
            ws.store.close_run(self.run_id, result, time.time())
            if self.options.no_record:
                ws.store.forget_run(self.run_id)
        ws.sync_lock({**self.changed, **(scheduler.recorded if scheduler else {})})
        if scheduler is not None:
            with contextlib.suppress(Exception):  # the first error is the one to show
                after_build(self.options, self.sink, self.junit, scheduler.partial(result),
                            self.started)

    def record(self, summary: Summary) -> None:
        """The finished build's run in the history (or out of it), flow.lock, and the
        no-op fast path's snapshot when every target is fresh."""
        ws, options = self.ws, self.options
        # flow.lock before the run is closed: killed in between, the run is left "running",
        # and the next build, finding it dead, writes its records to flow.lock again
        ws.sync_lock(self.changed)
        if options.no_record:
            ws.store.forget_run(self.run_id)  # what it built stays recorded; the run leaves the log
        else:
            # the targets stepped through: a trusted one was neither built nor restored
            ran = stepped(summary.outcomes)
            if any(ws.graph.targets[name].metrics for name in ran):
                from flowmake.cli.metrics import record

                record(ws, self.run_id, ran)  # before finish_run prunes the history
            ws.store.finish_run(self.run_id, summary.result, summary.counts(),
                                ws.project.settings.history)
        if self.cone is not None:
            ok = (OutcomeStatus.FRESH, OutcomeStatus.BUILT, OutcomeStatus.RESTORED)
            if all(o.status in ok for o in stepped(summary.outcomes).values()):
                cone.resave(ws, self.cone)
        elif not options.force and all(o.status is OutcomeStatus.FRESH
                                       for o in summary.outcomes.values()):
            ws.save_fast_path(list(options.params), list(options.targets),
                              list(summary.outcomes))


def _record_environment(ws: Workspace, run_id: int, taken: Background,
                        timeout: float | None = None) -> None:
    """Keep the build's environment with its run (`flowmake log RUN_ID`); a failure to
    find it out leaves it unrecorded, never stops the build."""
    try:
        env = taken.result(timeout)
    except (OSError, ValueError) as exc:
        print(f"flowmake: warning: build environment not recorded: {exc}", file=sys.stderr)
        return
    if env is not None:
        ws.store.set_environment(run_id, env)


class _FirstSubmit:
    """The build's executor, calling ``then`` once the first jobs are started: when the
    scheduler first waits for one to end, every slot filled (threads started any sooner
    took the interpreter's lock from the starts of the other slots), or at the first
    start for an executor the scheduler does not wait on itself (futures)."""

    NAME: ClassVar[str] = "first-submit"  # never looked up: the executor was chosen by name

    def __init__(self, executor: Executor, then: Callable[[], None]) -> None:
        self._executor = executor
        self._then: Callable[[], None] | None = then
        self._waits = hasattr(executor, "wait")

    def _call_then(self) -> None:
        if self._then is not None:
            then, self._then = self._then, None
            then()

    def submit(self, job: Job, on_line: LineSink | None = None) -> JobHandle:
        handle = self._executor.submit(job, on_line)
        if not self._waits:
            self._call_then()
        return handle

    def cancel(self) -> None:
        self._executor.cancel()

    def shutdown(self) -> None:
        self._executor.shutdown()

    def __getattr__(self, name: str) -> Any:  # wait(), and what else an executor offers
        found = getattr(self._executor, name)
        if name != "wait" or self._then is None:
            return found

        def wait(*args: Any, **kwargs: Any) -> Any:
            self._call_then()
            return found(*args, **kwargs)
        return wait


def junit_path(options: BuildOptions) -> Path | None:
    """``--junit FILE`` (relative to -C DIR, as ``graph -o`` is), checked before the build."""
    if not options.junit:
        return None
    from flowmake.report.junit import check_path

    path = Path(options.directory or ".") / options.junit
    check_path(path)
    return path


def after_build(options: BuildOptions, sink: BuildSink, junit: Path | None, summary: Summary,
                started: float | None) -> None:
    """The reports a build leaves for CI: the JUnit file, GitHub's annotations and summary."""
    sink.reported = True
    if junit is not None:
        from flowmake.report.junit import write_junit

        write_junit(junit, summary, started)
    if os.environ.get("GITHUB_ACTIONS") == "true" or os.environ.get("GITHUB_STEP_SUMMARY"):
        from flowmake.report.github import after_build as github_after_build

        github_after_build(summary, sys.stderr if options.json else sys.stdout)


def interrupted_early(options: BuildOptions, sink: BuildSink) -> None:
    """Ctrl-C before any target ran (waiting for the lock, planning): an empty JUnit
    file, so that CI finds one, unless this build's reports are written already."""
    if options.junit and not sink.reported:
        after_build(options, sink, junit_path(options),
                    Summary(None, RunResult.INTERRUPTED, {}, 0.0), None)


def _executor(ws: Workspace, name: str, jobs: int, options: dict[str, Any]) -> Executor:
    executor: Executor = ws.plugins.executor_class(name)(jobs, options)
    return executor


def _dry_run(ws: Workspace, names: set[str], options: BuildOptions,
             found: cone.Cone | None) -> int:
    from flowmake.report.views import dry_run_json, step_line

    # (a cone's other targets are trusted, as the build would trust them)
    plan = cone.checker(ws, found, force=options.force, cache=not options.no_cache
                        ).plan(names)
    ws.save_stats()
    if options.json:
        doc = {"run_id": None, "result": RunResult.SUCCESS, "dry_run": True,
               "targets": dry_run_json(plan)}
        sys.stdout.write(jsonout.dumps(doc) + "\n")
        return 0
    stale = plan.stale()
    for step in stale:
        verb = "would restore" if step.state is TargetStatus.RESTORABLE else "would build"
        print(f"{verb}: {step_line(step)}")
    print(f"flowmake: {len(stale)} would run, {len(plan.steps) - len(stale)} fresh (dry run)")
    return 0


def _executor_options(ws: Workspace, options: BuildOptions) -> dict[str, Any]:
    """What an executor may need besides -j: [flow] keys it owns, CLI options, the root."""
    found: dict[str, Any] = dict(ws.project.settings.extra)
    found["root"] = str(ws.root)
    found["resources"] = dict(ws.project.settings.resources)
    if options.scheduler:
        found["dask_scheduler"] = options.scheduler
        found["scheduler"] = options.scheduler  # the command line outranks the environment
    return found


def print_to(options: BuildOptions) -> IO[str]:
    """Where the build's own lines go: the Python API passes its own stream (a sink, or
    stderr when live); --json keeps stdout for the document."""
    return options.stream or (sys.stderr if options.json else sys.stdout)
