"""The run history in the state database: one row per build (``runs``), one line per
target of each build (``run_targets``), the metric values each build recorded
(``run_metrics``). :class:`RunHistory` is the part of :class:`~flowmake.store.db.Store`
that reads and writes them."""

from __future__ import annotations

import time
from typing import Any, NamedTuple

from flowmake.store.sqlite import Database, guarded, rows_in

# The counts every run reports (SPEC §3), in this order.
COUNT_KEYS = ("built", "restored", "fresh", "failed", "skipped")


class Run(NamedTuple):
    run_id: int
    started: float
    finished: float | None
    command: str
    result: str
    counts: dict[str, int]


class TargetLine(NamedTuple):
    """One target's line in one build of the history."""

    run_id: int
    target: str
    status: str
    duration: float
    reasons: list[str]
    output: str
    started: float | None  # wall-clock time the job was started (or the restore began)
    finished: float | None
    error: str | None


class RunHistory(Database):
    """Builds and their targets' lines: the ``runs``, ``run_targets`` and ``run_metrics``
    tables (a target's line written with its record: ``Store.finish_target``)."""

    @guarded
    def start_run(self, command: str) -> int:
        with self.transaction() as db:
            cur = db.execute("INSERT INTO runs (started, command, result, counts) VALUES"
                             " (?, ?, 'running', '{}')", (time.time(), command))
        return int(cur.lastrowid or 0)

    @guarded
    def finish_run(self, run_id: int, result: str, counts: dict[str, int], keep: int) -> None:
        with self.transaction() as db:
            db.execute("UPDATE runs SET finished = ?, result = ?, counts = ? WHERE run_id = ?",
                       (time.time(), result, _counts_json(counts), run_id))
            _prune(db, keep)

    @guarded
    def add_finished_run(self, command: str, result: str, counts: dict[str, int],
                         keep: int) -> int:
        """A build that ran nothing (the no-op fast path's), started and finished in one
        transaction: ``start_run`` and ``finish_run`` at once."""
        with self.transaction() as db:
            now = time.time()
            cur = db.execute("INSERT INTO runs (started, finished, command, result, counts)"
                             " VALUES (?, ?, ?, ?, ?)",
                             (now, now, command, result, _counts_json(counts)))
            _prune(db, keep)
        return int(cur.lastrowid or 0)

    @guarded
    def forget_run(self, run_id: int) -> None:
        """Take a build out of the history (``build --no-record``): its run and its targets'
        lines; the records it wrote stay."""
        with self.transaction() as db:
            db.execute("DELETE FROM run_targets WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM run_metrics WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))

    @guarded
    def set_environment(self, run_id: int, environment: dict[str, Any]) -> None:
        """Keep what a build ran in (provenance.py) with its run."""
        import json

        with self.transaction() as db:
            db.execute("UPDATE runs SET environment = ? WHERE run_id = ?",
                       (json.dumps(environment), run_id))

    @guarded
    def environment(self, run_id: int) -> dict[str, Any] | None:
        """The environment kept with a run; None when it was not recorded."""
        import json

        row = self.db.execute("SELECT environment FROM runs WHERE run_id = ?",
                              (run_id,)).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    @guarded
    def put_metrics(self, run_id: int, target: str, values: dict[str, float]) -> None:
        """A target's metric values as this build built or restored them."""
        with self.transaction() as db:
            db.execute("DELETE FROM run_metrics WHERE run_id = ? AND target = ?",
                       (run_id, target))
            db.executemany("INSERT INTO run_metrics VALUES (?, ?, ?, ?)",
                           ((run_id, target, k, v) for k, v in values.items()))

    @guarded
    def metrics_history(self, targets: list[str]) -> list[tuple[int, str, str, float]]:
        """(run_id, target, name, value) of these targets' recorded metrics, oldest first."""
        rows = self.db.execute("SELECT run_id, target, name, value FROM run_metrics"
                               " ORDER BY run_id, target, name")
        wanted = set(targets)
        return [(r[0], r[1], r[2], r[3]) for r in rows if r[1] in wanted]

    @guarded
    def unfinished_runs(self) -> list[Run]:
        """Runs still marked running: under the project lock, builds that were killed."""
        import json

        rows = self.db.execute(
            "SELECT run_id, started, finished, command, result, counts FROM runs"
            " WHERE result = 'running' ORDER BY run_id")
        return [Run(r[0], r[1], r[2], r[3], r[4], json.loads(r[5] or "{}")) for r in rows]

    @guarded
    def close_run(self, run_id: int, result: str, finished: float | None = None
                  ) -> dict[str, int]:
        """End a run with the counts of what it recorded (its targets' lines), which it
        returns; ``finished`` None where the time is not known (a killed build)."""
        rows = self.db.execute(
            "SELECT status, COUNT(*) FROM run_targets WHERE run_id = ? GROUP BY status",
            (run_id,))
        found = dict(rows.fetchall())
        counts = {k: int(found.get(k, 0)) for k in COUNT_KEYS}
        with self.transaction() as db:
            db.execute("UPDATE runs SET finished = ?, result = ?, counts = ? WHERE run_id = ?",
                       (finished, result, _counts_json(counts), run_id))
        return counts

    @guarded
    def runs(self, limit: int = 20) -> list[Run]:
        import json

        rows = self.db.execute(
            "SELECT run_id, started, finished, command, result, counts FROM runs"
            " ORDER BY run_id DESC LIMIT ?", (limit,))
        return [Run(r[0], r[1], r[2], r[3], r[4], json.loads(r[5] or "{}")) for r in rows]

    @guarded
    def run(self, run_id: int) -> Run | None:
        """One build of the history, or None when it was pruned (or never was)."""
        import json

        r = self.db.execute(
            "SELECT run_id, started, finished, command, result, counts FROM runs"
            " WHERE run_id = ?", (run_id,)).fetchone()
        return Run(r[0], r[1], r[2], r[3], r[4], json.loads(r[5] or "{}")) if r else None

    @guarded
    def last_runs(self, names: list[str] | None = None) -> dict[str, tuple[int, str, float]]:
        """Each target's latest line in the history: (run_id, status, duration); only
        those of ``names`` if given."""
        select, group = "SELECT target, MAX(run_id), status, duration FROM run_targets", \
            " GROUP BY target"
        rows = self.db.execute(select + group) if names is None else rows_in(
            self.db, select + " WHERE target IN ({})" + group, names)
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    @guarded
    def run_targets(self, run_id: int) -> list[tuple[str, str, float, list[str], str]]:
        import json

        rows = self.db.execute(
            "SELECT target, status, duration, reasons, output FROM run_targets"
            " WHERE run_id = ? ORDER BY rowid", (run_id,))
        return [(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in rows]

    @guarded
    def lines_of_run(self, run_id: int) -> list[TargetLine]:
        """A build's target lines, every column, in the order the build finished them."""
        rows = self.db.execute(
            f"SELECT {_LINE_COLUMNS} FROM run_targets WHERE run_id = ? ORDER BY rowid",
            (run_id,))
        return [_line(r) for r in rows]

    @guarded
    def lines_of_target(self, target: str, limit: int = 20) -> list[TargetLine]:
        """A target's newest ``limit`` lines, every column, newest first."""
        rows = self.db.execute(
            f"SELECT {_LINE_COLUMNS} FROM run_targets WHERE target = ?"
            " ORDER BY run_id DESC LIMIT ?", (target, limit))
        return [_line(r) for r in rows]

    @guarded
    def recent_durations(self, run_id: int, limit: int = 20
                         ) -> dict[str, list[tuple[int, str, float]]]:
        """For each target with a line in build ``run_id``: its newest ``limit`` lines up to
        that build, oldest first, as (run_id, status, duration)."""
        rows = self.db.execute(
            "SELECT target, run_id, status, duration FROM ("
            " SELECT target, run_id, status, duration, ROW_NUMBER() OVER ("
            "  PARTITION BY target ORDER BY run_id DESC) AS n FROM run_targets"
            " WHERE run_id <= ? AND target IN (SELECT target FROM run_targets WHERE run_id = ?))"
            " WHERE n <= ? ORDER BY target, run_id", (run_id, run_id, limit))
        found: dict[str, list[tuple[int, str, float]]] = {}
        for target, rid, status, duration in rows:
            found.setdefault(target, []).append((rid, status, duration or 0.0))
        return found

    @guarded
    def target_history(self, target: str, limit: int = 20) -> list[tuple[int, str, float, list[str], str]]:
        import json

        rows = self.db.execute(
            "SELECT run_id, status, duration, reasons, output FROM run_targets"
            " WHERE target = ? ORDER BY run_id DESC LIMIT ?", (target, limit))
        return [(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in rows]


_LINE_COLUMNS = "run_id, target, status, duration, reasons, output, started, finished, error"


def _line(row: tuple[Any, ...]) -> TargetLine:
    import json

    return TargetLine(row[0], row[1], row[2], row[3] or 0.0, json.loads(row[4] or "[]"),
                      row[5] or "", row[6], row[7], row[8])


def _prune(db: Any, keep: int) -> None:
    """History pruned to the newest ``keep`` runs (counted: the ids of builds kept out of
    it, ``--no-record``, leave gaps)."""
    db.execute("DELETE FROM runs WHERE run_id < (SELECT MIN(run_id) FROM ("
               "SELECT run_id FROM runs ORDER BY run_id DESC LIMIT ?))", (keep,))
    db.execute("DELETE FROM run_targets WHERE run_id < (SELECT MIN(run_id) FROM runs)")
    db.execute("DELETE FROM run_metrics WHERE run_id < (SELECT MIN(run_id) FROM runs)")


def _counts_json(counts: dict[str, int]) -> str:
    """JSON for a run's counts (our own ASCII keys, int values), without importing json:
    the no-op fast path records its run with this, and json costs ~2 ms to import."""
    return "{" + ", ".join(f'"{k}": {int(v)}' for k, v in counts.items()) + "}"


