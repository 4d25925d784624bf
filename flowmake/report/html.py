"""The build report: one build as a self-contained HTML page (SPEC §8; the command,
`flowmake report [RUN_ID] [-o FILE]`, is cli/report.py).

The page (``assets/report.*``, inlined as the graph page is: no network) shows a timeline
of the targets as bars from start to end, one lane per parallel slot, coloured by status;
a sortable, filterable table of the targets; each failure with its output; for each
target a small chart of its duration over its recent builds; and a chart of each metric
(``metrics`` outputs) over the builds up to this one. Its data is the history in
``.flowmake/state.db`` (``run_targets``: status, duration, reasons, times, output),
embedded as JSON.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flowmake.model import OutcomeStatus
from flowmake.report.history import run_duration, run_json
from flowmake.report.page import render_page

if TYPE_CHECKING:
    from flowmake.store.runs import Run, TargetLine

DEFAULT_OUTPUT = "flowmake-report.html"
HISTORY = 20  # builds per target in its duration chart
OUTPUT_LINES = 200  # of a failed target's output, on the page
_LETTER = {OutcomeStatus.BUILT: "b", OutcomeStatus.RESTORED: "r", OutcomeStatus.FAILED: "f",
           OutcomeStatus.SKIPPED: "s", OutcomeStatus.FRESH: "=",
           "accepted": "a"}  # the line `flowmake accept` writes: no build's outcome


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
    if line.status == OutcomeStatus.FAILED:
        lines = (line.output or "").rstrip("\n").split("\n")
        data["output"] = "\n".join(lines[-OUTPUT_LINES:]) if line.output.strip() else ""
        data["output_cut"] = max(0, len(lines) - OUTPUT_LINES)
    return data


def report_json(project: str, run: Run, lines: list[TargetLine],
                history: dict[str, list[tuple[int, str, float]]],
                metrics: Iterable[tuple[int, str, str, float]]) -> dict[str, Any]:
    """The page's data: the run, its targets (``lines``, in the order they finished) with
    their lanes on the timeline and their recent durations (``history``: the store's
    ``recent_durations``), and the metrics' values (``metrics``: ``metrics_history``)."""
    targets = [_target(line, history.get(line.target, [])) for line in lines]
    timed = [t for t in targets if t["started"] is not None and t["finished"] is not None]
    for target, lane in zip(timed, assign_lanes((t["started"], t["finished"]) for t in timed),
                            strict=True):
        target["lane"] = lane
    end = max([run.finished or run.started, *(t["finished"] for t in timed)])
    return {"project": project, "run": run_json(run), "t0": run.started, "t1": end,
            "took": run_duration(run), "lanes": 1 + max((t["lane"] for t in timed), default=-1),
            "targets": targets, "metrics": metrics_json(metrics, run.run_id)}


def metrics_json(rows: Iterable[tuple[int, str, str, float]],
                 run_id: int) -> list[dict[str, Any]]:
    """Each metric's values over the builds up to this one (``flowmake metrics --history``),
    for the page's charts: ``[{"target", "path", "name", "points": [[run_id, value]]}]``."""
    series: dict[tuple[str, str], list[list[float]]] = {}
    for rid, target, key, value in rows:
        if rid <= run_id:
            series.setdefault((target, key), []).append([rid, value])
    return [{"target": t, "path": k.partition(":")[0], "name": k.partition(":")[2],
             "points": points[-HISTORY:]} for (t, k), points in series.items()]


def render_report(doc: dict[str, Any]) -> str:
    """The self-contained page: template, styles, script and data in one substitution."""
    title = f"flowmake report — {doc['project']}, run {doc['run']['run_id']}"
    return render_page("report", title, doc)
