"""`flowmake report [RUN_ID] [-o FILE]`: one build as a self-contained HTML page (SPEC §8).

The page (``assets/report.*``, inlined as the graph page is: no network) shows a timeline
of the targets as bars from start to end, one lane per parallel slot, coloured by status;
a sortable, filterable table of the targets; each failure with its output; for each
target a small chart of its duration over its recent builds; and a chart of each metric
(``metrics`` outputs) over the builds up to this one. Its data is the history in
``.flowmake/state.db`` (``run_targets``: status, duration, reasons, times, output),
embedded as JSON.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from flowmake.cli.graph import _MARKER, _asset, _write_output, script_json
from flowmake.cli.log import run_duration, run_json
from flowmake.cli.workspace import Workspace
from flowmake.config.values import printable
from flowmake.errors import UsageError
from flowmake.store.db import Run, TargetLine

DEFAULT_OUTPUT = "flowmake-report.html"
HISTORY = 20  # builds per target in its duration chart
OUTPUT_LINES = 200  # of a failed target's output, on the page
_LETTER = {"built": "b", "restored": "r", "failed": "f", "skipped": "s", "fresh": "=",
           "accepted": "a"}


def report_command(ws: Workspace, args: argparse.Namespace) -> int:
    try:
        run = _pick_run(ws, args.run)
        doc = report_json(ws, run)
    finally:
        ws.close()
    text = render_report(doc)
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    path = Path(args.directory or ".") / (args.output or DEFAULT_OUTPUT)
    _write_output(path, text)
    if not args.quiet:
        print(f"flowmake: wrote {printable(str(path))} (run {run.run_id}, {run.result},"
              f" {len(doc['targets'])} targets that ran)", file=sys.stderr)
    return 0


def _pick_run(ws: Workspace, ref: str | None) -> Run:
    """RUN_ID, or the latest build for none or ``-``."""
    if ref is None or ref == "-":
        runs = ws.store.runs(1)
        if not runs:
            raise UsageError("no build recorded yet", hint="`flowmake build` records one")
        return runs[0]
    if not ref.isdigit():
        raise UsageError(f"RUN_ID must be a build's number or -, got {printable(ref)!r}",
                         hint="`flowmake log` lists the builds kept")
    run = ws.store.run(int(ref))
    if run is None:
        raise UsageError(f"no build {int(ref)} in the history",
                         hint="`flowmake log` lists the builds kept")
    return run


def assign_lanes(spans: Iterable[tuple[float, float]]) -> list[int]:
    """Greedy interval colouring: each span (start, end), taken by start, goes to the
    lowest lane free by its start; the result lists each span's lane in input order."""
    indexed = sorted(enumerate(spans), key=lambda item: (item[1][0], item[1][1]))
    ends: list[float] = []
    lanes = [0] * len(indexed)
    for index, (start, end) in indexed:
        lane = next((i for i, busy_until in enumerate(ends) if busy_until <= start), len(ends))
        if lane == len(ends):
            ends.append(end)
        ends[lane] = end
        lanes[index] = lane
    return lanes


def _target(line: TargetLine, history: list[tuple[int, str, float]]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": line.target, "status": line.status, "duration": round(line.duration, 4),
        "reasons": line.reasons, "started": line.started, "finished": line.finished,
        "error": line.error, "lane": None,
        # [run_id, duration, status letter], oldest first, this build last
        "history": [[rid, round(d, 4), _LETTER.get(s, "?")] for rid, s, d in history]}
    if line.status == "failed":
        lines = (line.output or "").rstrip("\n").split("\n")
        data["output"] = "\n".join(lines[-OUTPUT_LINES:]) if line.output.strip() else ""
        data["output_cut"] = max(0, len(lines) - OUTPUT_LINES)
    return data


def report_json(ws: Workspace, run: Run) -> dict[str, Any]:
    """The page's data: the run, its targets (in the order they finished) with their
    lanes on the timeline and their recent durations."""
    lines = ws.store.lines_of_run(run.run_id)
    history = ws.store.recent_durations(run.run_id, HISTORY)
    targets = [_target(line, history.get(line.target, [])) for line in lines]
    timed = [t for t in targets if t["started"] is not None and t["finished"] is not None]
    for target, lane in zip(timed, assign_lanes((t["started"], t["finished"]) for t in timed),
                            strict=True):
        target["lane"] = lane
    end = max([run.finished or run.started, *(t["finished"] for t in timed)])
    return {"project": ws.root.name, "run": run_json(run), "t0": run.started, "t1": end,
            "took": run_duration(run), "lanes": 1 + max((t["lane"] for t in timed), default=-1),
            "targets": targets, "metrics": metrics_json(ws, run.run_id)}


def metrics_json(ws: Workspace, run_id: int) -> list[dict[str, Any]]:
    """Each metric's values over the builds up to this one (``flowmake metrics --history``),
    for the page's charts: ``[{"target", "path", "name", "points": [[run_id, value]]}]``."""
    names = [n for n, t in ws.graph.targets.items() if t.metrics]
    if not names:
        return []
    series: dict[tuple[str, str], list[list[float]]] = {}
    for rid, target, key, value in ws.store.metrics_history(names):
        if rid <= run_id:
            series.setdefault((target, key), []).append([rid, value])
    return [{"target": t, "path": k.partition(":")[0], "name": k.partition(":")[2],
             "points": points[-HISTORY:]} for (t, k), points in series.items()]


def render_report(doc: dict[str, Any]) -> str:
    """The self-contained page: template, styles, script and data in one substitution."""
    from html import escape

    values = {
        "title": escape(f"flowmake report — {doc['project']}, run {doc['run']['run_id']}"),
        "style": _asset("report.css"),
        "script": _asset("report.js"),
        "data": script_json(doc),
    }
    return _MARKER.sub(lambda m: values[m.group(1) or m.group(2)], _asset("report.html"))
