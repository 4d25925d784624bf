"""`flowmake build`: select, check sources, take the lock, schedule, record the run."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from typing import Any

from flowmake.cli.workspace import Workspace
from flowmake.errors import FlowmakeError
from flowmake.report.live import make_reporter
from flowmake.schedule import Scheduler, Summary
from flowmake.store.db import Record
from flowmake.store.leftovers import mark_environment, writing_lock

EXIT_FOR_RESULT = {"success": 0, "failed": 1, "interrupted": 130}


def default_jobs(ws: Workspace, requested: int | None) -> int:
    """``-j``, else ``[flow] jobs``, else the CPU count (the CLI and the config loader
    refuse values below 1)."""
    if requested is not None:
        return requested
    return ws.project.settings.jobs or os.cpu_count() or 1


def run_build(ws: Workspace, args: argparse.Namespace, command: str) -> int:
    names = ws.graph.closure(ws.select(args.targets))
    jobs = default_jobs(ws, args.jobs)
    ws.check_plugins()
    executor_name = getattr(args, "executor", None) or ws.project.settings.executor
    if getattr(args, "scheduler", None) and not getattr(args, "executor", None) \
            and executor_name == "local":
        executor_name = "dask"  # --scheduler alone means "build on that Dask cluster"
    ws.plugins.executor_class(executor_name)  # an unknown executor is exit 2, before anything runs
    ws.validate_lock()
    ws.checker().check_sources(names)
    if args.dry_run:
        return _dry_run(ws, names, args)
    junit = junit_path(args)
    # The Python API passes its own stream (a sink, or stderr when live).
    out = getattr(args, "stream", None) or (sys.stderr if args.json else sys.stdout)
    reporter = make_reporter(out, no_color=args.no_color, quiet=args.quiet, verbose=args.verbose)
    with writing_lock(ws.store, ws.project.state_dir) as dead_runs:
        changed: dict[str, Record | None] = dict(ws.store.records_of_runs(dead_runs))
        use_cache = not getattr(args, "no_cache", False)
        # records as they are now, under the lock
        checker = ws.checker(force=args.always_make, cache=use_cache)
        restorer = ws.artifacts if use_cache else None
        # The cache's signing key is never a command's to see (the cache, if open, has it).
        os.environ.pop("FLOWMAKE_CACHE_KEY", None)
        run_id = ws.store.start_run(command)
        run = ws.store.run(run_id)
        assert run is not None
        mark_environment(str(ws.project.state_dir), run)
        _record_environment(ws, run_id)
        scheduler: Scheduler | None = None
        try:
            scheduler = Scheduler(
                ws.project, ws.graph, list(names), checker, ws.store,
                lambda: _executor(ws, executor_name, jobs, _executor_options(ws, args)), reporter,
                jobs=jobs, keep_going=args.keep_going, run_id=run_id, stream=args.verbose,
                restorer=restorer, on_event=_observer(ws),
                kept=not getattr(args, "no_record", False))
            ws.plugins.build_start(run_id, scheduler.order)
            if restorer is not None:
                restorer.prefetch(ws.graph, scheduler.order, checker)  # remote hits, in parallel
            summary = scheduler.run()
            args.summary = summary  # for the Python API (api.py)
            changed.update(scheduler.recorded)
            if restorer is not None:
                # waits for the background saves and pushes (those not started are dropped
                # after Ctrl-C)
                restorer.close(cancel=summary.result == "interrupted")
            ws.plugins.build_finish(summary)
            ws.save_stats()
        except BaseException as exc:  # e.g. the executor could not start, a full disk
            if restorer is not None:
                restorer.close(cancel=True)
            result = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            with contextlib.suppress(FlowmakeError):  # else the next build closes it
                ws.store.close_run(run_id, result, time.time())  # not "running", with what it recorded
                if getattr(args, "no_record", False):
                    ws.store.forget_run(run_id)
            ws.sync_lock({**changed, **(scheduler.recorded if scheduler else {})})
            if scheduler is not None:
                with contextlib.suppress(Exception):  # the first error is the one to show
                    after_build(args, junit, scheduler.partial(result), run.started)
            raise
        if getattr(args, "no_record", False):
            ws.store.forget_run(run_id)  # what it built stays recorded; the run leaves the log
        else:
            if any(t.metrics for t in ws.graph.targets.values()):
                from flowmake.cli.metrics import record

                record(ws, run_id, summary.outcomes)  # before finish_run prunes the history
            ws.store.finish_run(run_id, summary.result, summary.counts(),
                                ws.project.settings.history)
        ws.sync_lock(changed)
        if not args.always_make and all(o.status == "fresh" for o in summary.outcomes.values()):
            ws.save_fast_path(args.param, args.targets, list(summary.outcomes))
    after_build(args, junit, summary, run.started)
    if args.json:
        sys.stdout.write(json.dumps(summary.to_json(), indent=2) + "\n")
    return EXIT_FOR_RESULT[summary.result]


def _record_environment(ws: Workspace, run_id: int) -> None:
    """Keep the build's environment with its run (`flowmake log RUN_ID`); a failure to
    find it out leaves it unrecorded, never stops the build."""
    from flowmake.store.provenance import environment

    try:
        env = environment(ws.root, ws.project.state_dir, dict(ws.plugins.dists))
    except (OSError, ValueError) as exc:
        print(f"flowmake: warning: build environment not recorded: {exc}", file=sys.stderr)
        return
    ws.store.set_environment(run_id, env)


def junit_path(args: argparse.Namespace) -> Any:
    """``--junit FILE`` (relative to -C DIR, as ``graph -o`` is), checked before the build."""
    if not getattr(args, "junit", None):
        return None
    from pathlib import Path

    from flowmake.report.junit import check_path

    path = Path(args.directory or ".") / args.junit
    check_path(path)
    return path


def after_build(args: argparse.Namespace, junit: Any, summary: Summary,
                started: float | None) -> None:
    """The reports a build leaves for CI: the JUnit file, GitHub's annotations and summary."""
    args.reported = True
    if junit is not None:
        from flowmake.report.junit import write_junit

        write_junit(junit, summary, started)
    if os.environ.get("GITHUB_ACTIONS") == "true" or os.environ.get("GITHUB_STEP_SUMMARY"):
        from flowmake.report.github import after_build as github_after_build

        github_after_build(summary, sys.stderr if args.json else sys.stdout)


def _executor(ws: Workspace, name: str, jobs: int, options: dict[str, Any]) -> Any:
    return ws.plugins.executor_class(name)(jobs, options)


def _dry_run(ws: Workspace, names: set[str], args: argparse.Namespace) -> int:
    from flowmake.report.views import dry_run_json, step_line

    plan = ws.checker(force=args.always_make,
                      cache=not getattr(args, "no_cache", False)).plan(names)
    ws.save_stats()
    if args.json:
        doc = {"run_id": None, "result": "success", "dry_run": True, "targets": dry_run_json(plan)}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return 0
    stale = plan.stale()
    for step in stale:
        verb = "would restore" if step.state.value == "restorable" else "would build"
        print(f"{verb}: {step_line(step)}")
    print(f"flowmake: {len(stale)} would run, {len(plan.steps) - len(stale)} fresh (dry run)")
    return 0


def _executor_options(ws: Workspace, args: argparse.Namespace) -> dict[str, Any]:
    """What an executor may need besides -j: [flow] keys it owns, CLI options, the root."""
    options: dict[str, Any] = dict(ws.project.settings.extra)
    options["root"] = str(ws.root)
    options["resources"] = dict(ws.project.settings.resources)
    if getattr(args, "scheduler", None):
        options["dask_scheduler"] = args.scheduler
        options["scheduler"] = args.scheduler  # the command line outranks the environment
    return options


def _observer(ws: Workspace) -> Any:
    """Forward the scheduler's events to the plugins' observer hooks."""
    return ws.plugins.on_event
