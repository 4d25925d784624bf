"""`flowmake report [RUN_ID] [-o FILE]`: one build as a self-contained HTML page (SPEC §8).

The command reads the build's lines, its targets' recent durations and the metrics from
the store; report/html.py renders the page from them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowmake.cli.workspace import Workspace
from flowmake.config.values import printable
from flowmake.errors import UsageError
from flowmake.report.html import DEFAULT_OUTPUT, HISTORY, render_report, report_json
from flowmake.report.page import write_output

if TYPE_CHECKING:
    from flowmake.store.runs import Run


def report_command(ws: Workspace, args: argparse.Namespace) -> int:
    try:
        run = _pick_run(ws, args.run)
        doc = _report_doc(ws, run)
    finally:
        ws.close()
    text = render_report(doc)
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    path = Path(args.directory or ".") / (args.output or DEFAULT_OUTPUT)
    write_output(path, text)
    if not args.quiet:
        print(f"flowmake: wrote {printable(str(path))} (run {run.run_id}, {run.result},"
              f" {len(doc['targets'])} targets that ran)", file=sys.stderr)
    return 0


def _report_doc(ws: Workspace, run: Run) -> dict[str, Any]:
    """The page's data, from the history in the store."""
    names = [n for n, t in ws.graph.targets.items() if t.metrics]
    metrics = ws.store.metrics_history(names) if names else []
    return report_json(ws.root.name, run, ws.store.lines_of_run(run.run_id),
                       ws.store.recent_durations(run.run_id, HISTORY), metrics)


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
