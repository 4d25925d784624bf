"""What a build produces, target by target (Outcome) and in all (Summary), and the two
interfaces the scheduler hands them to: the Reporter (what the user sees) and the
Restorer (the artifact cache). Observer plugins receive Outcome and Summary; their
import path ``flowmake.schedule`` stays valid (the scheduler imports them from here)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterator, Mapping
from collections.abc import Set as AbstractSet
from typing import Any, NamedTuple, Protocol

from flowmake.executor import JobResult
from flowmake.graph import Graph
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


_NO_REASONS: list[str] = []


def fresh(name: str) -> Outcome:
    """A fresh target's Outcome (made as a tuple: ~3x quicker than through the class)."""
    return tuple.__new__(Outcome, (name, OutcomeStatus.FRESH, 0.0, _NO_REASONS, "", None, 0,
                                   None, None))


class Outcomes(Mapping[str, Outcome]):
    """A build's outcomes by name, in build order, when some targets were trusted fresh
    without a check (a cone build, cli/cone.py). Those are not made one by one: at
    10,000 targets making and walking an Outcome each cost more than the cone's whole
    check (and, in a fork of the resident server, a page copied for every one touched).
    A trusted target's Outcome is made when it is looked up; iterating makes them all,
    in build order."""

    def __init__(self, graph: Graph, names: list[str], stepped: dict[str, Outcome],
                 trusted: AbstractSet[str]) -> None:
        self._graph, self._names = graph, names  # every target's name, in build order
        self.stepped = stepped  # the outcomes of the targets stepped through
        self.trusted = trusted  # fresh without a check; none of them is in ``stepped``

    def __getitem__(self, name: str) -> Outcome:
        found = self.stepped.get(name)
        if found is not None:
            return found
        if name in self.trusted:
            return fresh(name)
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return name in self.stepped or name in self.trusted

    def __iter__(self) -> Iterator[str]:
        return iter(self._graph.order(self._names))

    def __len__(self) -> int:
        return len(self.stepped) + len(self.trusted)


def stepped(outcomes: Mapping[str, Outcome]) -> Mapping[str, Outcome]:
    """The outcomes that are not trusted-fresh (every one, unless ``outcomes`` is an
    Outcomes): what a caller looking for the built, failed or skipped ones need walk."""
    return outcomes.stepped if isinstance(outcomes, Outcomes) else outcomes


class Summary(NamedTuple):
    run_id: int | None  # None: a build kept out of the history (build --no-record)
    result: RunResult  # success | failed | interrupted
    outcomes: Mapping[str, Outcome]  # by name, in build order
    duration: float

    def counts(self) -> dict[str, int]:
        found = Counter(o.status for o in stepped(self.outcomes).values())
        if isinstance(self.outcomes, Outcomes):
            found[OutcomeStatus.FRESH] += len(self.outcomes.trusted)
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
    def targets_fresh(self, names: Collection[str]) -> None:
        """Targets fresh without a check (a cone build's trusted ones), told at once."""
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
