"""What a build produces, target by target (Outcome) and in all (Summary), and the two
interfaces the scheduler hands them to: the Reporter (what the user sees) and the
Restorer (the artifact cache). Observer plugins receive Outcome and Summary; their
import path ``flowmake.schedule`` stays valid (the scheduler imports them from here)."""

from __future__ import annotations

from collections import Counter
from typing import Any, NamedTuple, Protocol

from flowmake.executor import JobResult
from flowmake.model import OutcomeStatus, RunResult
from flowmake.plan.check import Step


class Outcome(NamedTuple):
    """What happened to one target in this build."""

    name: str
    status: OutcomeStatus  # built | restored | fresh | failed | skipped
    duration: float = 0.0
    reasons: list[str] = []  # noqa: RUF012 (never mutated; a NamedTuple default)
    output: str = ""
    error: str | None = None
    attempts: int = 0
    started: float | None = None  # wall-clock (time.time()): job submitted, restore begun
    finished: float | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "status": self.status,
                                "duration": round(self.duration, 4)}
        if self.reasons:
            data["reasons"] = self.reasons
        if self.error:
            data["error"] = self.error
        return data


class Summary(NamedTuple):
    run_id: int | None  # None: a build kept out of the history (build --no-record)
    result: RunResult  # success | failed | interrupted
    outcomes: dict[str, Outcome]
    duration: float

    def counts(self) -> dict[str, int]:
        found = Counter(o.status for o in self.outcomes.values())
        return {str(k): found.get(k, 0) for k in OutcomeStatus}

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "result": self.result,
                "duration": round(self.duration, 4), "counts": self.counts(),
                "targets": [o.to_json() for o in self.outcomes.values()]}


class Reporter(Protocol):
    """Where the scheduler tells what happens (live view, plain lines, or nothing)."""

    def build_start(self, total: int, jobs: int) -> None: ...
    def target_start(self, step: Step) -> None: ...
    def target_finish(self, outcome: Outcome) -> None: ...
    def line(self, name: str, text: str) -> None: ...
    def build_finish(self, summary: Summary) -> None: ...


class Restorer(Protocol):
    """The artifact cache as the scheduler sees it."""

    def restore(self, step: Step) -> str | None:
        """Put a cached target's outputs in place; its replayed log, or None on a miss."""
        ...

    def save(self, step: Step, result: JobResult) -> None:
        """Keep a built target's outputs and log."""
        ...
