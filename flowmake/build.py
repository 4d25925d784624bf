"""`flowmake build`: select, check sources, take the lock, schedule, record the run."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from . import fastpath
from .execute import Scheduler, Summary
from .report import make_reporter, summary_line
from .store import project_lock
from .workspace import Workspace

EXIT_FOR_RESULT = {"success": 0, "failed": 1, "interrupted": 130}


def default_jobs(ws: Workspace, requested: int | None) -> int:
    jobs = requested or ws.project.settings.jobs or os.cpu_count() or 1
    if jobs < 1:
        from .errors import UsageError

        raise UsageError(f"-j must be at least 1, got {jobs}")
    return jobs


def run_build(ws: Workspace, args: argparse.Namespace, command: str) -> int:
    names = ws.graph.closure(ws.select(args.targets))
    jobs = default_jobs(ws, args.jobs)
    ws.checker().check_sources(names)
    if args.dry_run:
        return _dry_run(ws, names, args)
    out = sys.stderr if args.json else sys.stdout
    reporter = make_reporter(out, no_color=args.no_color, quiet=args.quiet, verbose=args.verbose)
    with project_lock(ws.project.state_dir, lambda msg: print(f"flowmake: {msg}", file=sys.stderr)):
        from .cli import install_sigterm

        install_sigterm()
        checker = ws.checker(force=args.always_make)  # records as they are now, under the lock
        run_id = ws.store.start_run(command)
        scheduler = Scheduler(
            ws.project, ws.graph, list(names), checker, ws.store,
            lambda: _executor(ws, jobs), reporter, jobs=jobs, keep_going=args.keep_going,
            run_id=run_id, stream=args.verbose)
        summary = scheduler.run()
        ws.save_stats()
        ws.store.finish_run(run_id, summary.result, summary.counts(), ws.project.settings.history)
        if not args.always_make and all(o.status == "fresh" for o in summary.outcomes.values()):
            _save_fast_path(ws, args, list(summary.outcomes))
    if args.json:
        sys.stdout.write(json.dumps(summary.to_json(), indent=2) + "\n")
    _report_failures(summary, args)
    return EXIT_FOR_RESULT[summary.result]


def _executor(ws: Workspace, jobs: int) -> Any:
    from .builtin.local_executor import LocalExecutor

    return LocalExecutor(jobs, {})


def _report_failures(summary: Summary, args: argparse.Namespace) -> None:
    failed = [o.name for o in summary.outcomes.values() if o.status == "failed"]
    if failed and args.json:
        print(summary_line(summary), file=sys.stderr)


def _dry_run(ws: Workspace, names: set[str], args: argparse.Namespace) -> int:
    from .views import dry_run_json, step_line

    plan = ws.checker(force=args.always_make).plan(names)
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


def _save_fast_path(ws: Workspace, args: argparse.Namespace, names: list[str]) -> None:
    """Remember the stats behind an all-fresh build, for the next no-op (fastpath.py)."""
    root = str(ws.root)
    paths: list[str] = []
    env: set[str] = set()
    for name in names:
        target = ws.graph.targets[name]
        if target.always or any(i.glob or i.url for i in target.inputs) or any(
                o.url for o in target.outputs):
            return
        paths += [f"{root}/{i.path}" for i in target.inputs]
        paths += [f"{root}/{o.path}" for o in target.outputs]
        paths += ws.code_files(target)
        env.update(target.env)
    fastpath.save(str(ws.project.state_dir), str(ws.path), args.param, args.targets, env,
                  paths, names, ws.project.settings.history)
