"""`flowmake log`: past builds, one build's targets, one target's history and output.

The store keeps the newest ``[flow] history`` builds (``runs``) and, for each, the line of
every target it built, restored or failed (``run_targets``: status, duration, reasons and
the captured output). Every ``--json`` document has the same shape, ``{"runs": [...]}``;
the run and target views nest a ``targets`` list inside each run.

    flowmake log                 the builds, newest first
    flowmake log 12              build 12: its targets, status, duration, reasons
    flowmake log -               the latest build, likewise
    flowmake log train           train's history, and the output of its latest run
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from datetime import datetime
from typing import Any, NamedTuple

from flowmake.cli.workspace import Workspace
from flowmake.errors import UnknownTargetError, UsageError, suggest
from flowmake.model import OutcomeStatus
from flowmake.report import jsonout
from flowmake.report.history import iso, run_duration, run_json
from flowmake.store.provenance import environment_lines, summary_json
from flowmake.store.runs import Run, TargetLine


class Entry(NamedTuple):
    """One target's line in one build (``started``/``finished``: wall-clock seconds)."""

    target: str
    run_id: int
    status: str
    duration: float
    reasons: list[str]
    output: str
    started: float | None = None
    finished: float | None = None
    error: str | None = None


def _entry(line: TargetLine) -> Entry:
    return Entry(line.target, line.run_id, line.status, line.duration, line.reasons,
                 line.output, line.started, line.finished, line.error)


def log_command(ws: Workspace, args: argparse.Namespace) -> int:
    """Dispatch on the argument: nothing, a run id or a target name / pattern."""
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be at least 1, got {args.limit}")
    try:
        if args.ref is None:
            runs = ws.store.runs(args.limit)
            doc, lines = runs_json(runs, environments=_environments(ws, runs)), runs_lines(runs)
        elif args.ref == "-" or _is_run_id(ws, args.ref):
            run = _latest(ws) if args.ref == "-" else _run(ws, int(args.ref))
            entries = _run_entries(ws, run)
            doc, lines = runs_json([run], entries), run_lines(run, entries, args.verbose)
            env = ws.store.environment(run.run_id)
            doc["runs"][0]["environment"] = env  # with the list of distributions
            lines[3:3] = environment_lines(env)
        else:
            names = _target_names(ws, args.ref)
            entries = _history(ws, names, args.limit)
            runs = _runs_of(ws, entries)
            doc = runs_json(runs, entries)
            lines = target_lines(names, runs, entries, every_output=args.verbose)
    finally:
        ws.close()
    if args.json:
        sys.stdout.write(jsonout.dumps(doc) + "\n")
    else:
        print("\n".join(lines))
    return 0


def _environments(ws: Workspace, runs: list[Run]) -> dict[int, Any]:
    """Each run's environment without the distributions' list (its digest stays)."""
    return {r.run_id: summary_json(ws.store.environment(r.run_id)) for r in runs}


def _is_run_id(ws: Workspace, ref: str) -> bool:
    """Digits are a run id, unless no such run exists and a target has that name."""
    return ref.isdigit() and not (ref in ws.graph.targets and ws.store.run(int(ref)) is None)


def _run(ws: Workspace, run_id: int) -> Run:
    run = ws.store.run(run_id)
    if run is None:
        keep = ws.project.settings.history
        raise UsageError(f"no build {run_id} in the history",
                         hint=f"`flowmake log` lists the builds kept ([flow] history = {keep})")
    return run


def _latest(ws: Workspace) -> Run:
    """``log -``: the latest build."""
    runs = ws.store.runs(1)
    if not runs:
        raise UsageError("no build recorded yet", hint="`flowmake build` records one")
    return runs[0]


def _run_entries(ws: Workspace, run: Run) -> list[Entry]:
    """A build's targets in the order the build finished them."""
    return [_entry(line) for line in ws.store.lines_of_run(run.run_id)]


def _target_names(ws: Workspace, ref: str) -> list[str]:
    """Targets of the flow that ``ref`` names, or a name only the history still knows."""
    names = ws.graph.match(ref)
    if names:
        return names
    if ws.store.target_history(ref, 1):
        return [ref]  # removed from flow.toml since; its history is still worth showing
    raise UnknownTargetError(ref, suggest(ref, ws.graph.targets))


def _history(ws: Workspace, names: list[str], limit: int) -> list[Entry]:
    """The newest ``limit`` lines of these targets' history, newest first."""
    rank = {name: i for i, name in enumerate(names)}
    entries = [_entry(line) for name in names for line in ws.store.lines_of_target(name, limit)]
    entries.sort(key=lambda e: (-e[1], rank[e[0]]))
    return entries[:limit]


def _runs_of(ws: Workspace, entries: list[Entry]) -> list[Run]:
    wanted = sorted({e[1] for e in entries}, reverse=True)
    return [r for r in map(ws.store.run, wanted) if r is not None]


# -- formatting -------------------------------------------------------------------------


def when(ts: float | None) -> str:
    """A local time for people: ``2024-05-01 12:00:03``."""
    return "-" if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "nothing"


def runs_lines(runs: list[Run]) -> list[str]:
    """One line per build, newest first."""
    if not runs:
        return ["no builds recorded yet"]
    rows = [(str(r.run_id), when(r.started), _seconds(run_duration(r)), r.result,
             _counts(r.counts), r.command) for r in runs]
    header = ("run", "started", "took", "result", "targets", "command")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(5)]
    return ["  ".join([*(c.ljust(w) for c, w in zip(row[:5], widths, strict=True)), row[5]])
            for row in [header, *rows]]


def run_lines(run: Run, entries: list[Entry], with_output: bool) -> list[str]:
    """One build: its command and result, then each target it ran."""
    lines = [f"run {run.run_id}: {run.result}, started {when(run.started)}, "
             f"took {_seconds(run_duration(run))}",
             f"  command: {run.command}", f"  targets: {_counts(run.counts)}"]
    width = max((len(e[0]) for e in entries), default=0)
    for name, _, status, duration, reasons, output, *_ in entries:
        why = f"  ({'; '.join(reasons)})" if reasons else ""
        lines.append(f"  {name:<{width}}  {status:<8}  {_seconds(duration):>8}{why}")
        if with_output and output:
            lines.extend(_output_block(output, "    "))
    unlisted = _unlisted(run, entries)
    if unlisted:  # the counts say more ran than have lines: stopped before they were kept
        lines.append(f"  ({', '.join(unlisted)} without a line here: interrupted before"
                     " they were recorded)")
    elif not entries:
        fresh_only = not any(n for k, n in run.counts.items() if k != OutcomeStatus.FRESH)
        lines.append("  (no target ran: everything was fresh)" if fresh_only
                     else "  (no target ran)")
    return lines


def _unlisted(run: Run, entries: list[Entry]) -> list[str]:
    """``2 failed``: what the run's counts hold beyond its targets' lines."""
    listed = Counter(e[2] for e in entries)
    ran = (OutcomeStatus.BUILT, OutcomeStatus.RESTORED, OutcomeStatus.FAILED)
    return [f"{run.counts[k] - listed[k]} {k}" for k in ran
            if run.counts.get(k, 0) > listed[k]]


def target_lines(names: list[str], runs: list[Run], entries: list[Entry], *,
                 every_output: bool) -> list[str]:
    """A target's runs, newest first, and its captured output (the latest, or each)."""
    if not entries:
        return [f"{', '.join(names)}: no run recorded in the history"]
    started = {r.run_id: r.started for r in runs}
    width = max(len(e[0]) for e in entries)
    lines = []
    for name, run_id, status, duration, reasons, *_ in entries:
        why = f"  ({'; '.join(reasons)})" if reasons else ""
        lines.append(f"run {run_id:<5} {when(started.get(run_id))}  {name:<{width}}  "
                     f"{status:<8}  {_seconds(duration):>8}{why}")
    shown = entries if every_output else _latest_each(entries)
    for name, run_id, status, _, _, output, *_ in shown:
        lines.append("")
        lines.append(f"output of {name} in run {run_id} ({status}):")
        lines.extend(_output_block(output, "  ") if output else ["  (no output)"])
    return lines


def _latest_each(entries: list[Entry]) -> list[Entry]:
    latest: dict[str, Entry] = {}
    for entry in entries:  # newest first: the first seen per target is its latest
        latest.setdefault(entry[0], entry)
    return list(latest.values())


def _output_block(output: str, indent: str) -> list[str]:
    return [indent + line for line in output.rstrip("\n").splitlines()]


# -- JSON -------------------------------------------------------------------------------


def runs_json(runs: list[Run], entries: list[Entry] | None = None, *,
              environments: dict[int, Any] | None = None) -> dict[str, Any]:
    """``{"runs": [...]}``; with ``entries``, each run carries its ``targets``; with
    ``environments``, its ``environment``."""
    docs = []
    for run in runs:
        doc = run_json(run)
        if environments is not None:
            doc["environment"] = environments.get(run.run_id)
        if entries is not None:
            doc["targets"] = [target_json(e) for e in entries if e.run_id == run.run_id]
        docs.append(doc)
    return {"runs": docs}


def target_json(entry: Entry) -> dict[str, Any]:
    """One target's line: ``started``/``finished`` ISO 8601 (None where not known: a line
    from before times were kept), ``error`` None unless it failed or was skipped."""
    return {"name": entry.target, "status": entry.status,
            "duration": round(entry.duration or 0.0, 4), "reasons": entry.reasons,
            "output": entry.output, "started": iso(entry.started),
            "finished": iso(entry.finished), "error": entry.error}
