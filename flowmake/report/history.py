"""The build history as data: a build's times and duration, and a build as JSON, as
``flowmake log --json`` and the build report page show them."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowmake.store.runs import Run


def iso(ts: float | None) -> str | None:
    """A local time with its offset, for tools: ``2024-05-01T12:00:03.123+02:00``."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="milliseconds")


def run_duration(run: Run) -> float | None:
    return None if run.finished is None else max(0.0, run.finished - run.started)


def run_json(run: Run) -> dict[str, Any]:
    """One build; ``finished`` and ``duration`` are None while it runs (or if it was killed)."""
    took = run_duration(run)
    return {"run_id": run.run_id, "started": iso(run.started), "finished": iso(run.finished),
            "duration": None if took is None else round(took, 4),
            "result": run.result, "command": run.command, "counts": run.counts}
