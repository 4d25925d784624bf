"""State under ``.flowmake/``: a SQLite database (WAL) of records, runs and the stat cache.

A record is written after each successful target (like ninja's build log), so an
interrupted build keeps the work it finished and nothing else. The scheduler queues a
target's line and record (``commit=False``): they are committed together with the rows
queued with them (sqlite.py: at most WRITE_SECONDS later), never before the target's
outputs are complete; a record committed late only means the target is built again.
Deleting ``.flowmake/`` is always safe: everything becomes stale. The file's schema and
opening are in sqlite.py, the run history in runs.py, the project lock in mutex.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from flowmake.store import paths
from flowmake.store.runs import RunHistory
from flowmake.store.sqlite import (
    change_log,
    changed_since,
    guard,
    guarded,
    open_memory,
    open_state,
    queueing,
    rows_in,
)

if TYPE_CHECKING:
    from pathlib import Path

    from flowmake.model import StatEntry


# NamedTuples rather than dataclasses: the no-op fast path imports this module, and
# dataclasses (with inspect) would add ~8 ms to every `flowmake build`.
class Record(NamedTuple):
    """What a successful build of a target left: its key, the parts of that key, outputs."""

    target: str
    key: str
    parts_json: str
    outputs_json: str
    run_id: int | None
    built_at: float
    duration: float

    @property
    def parts(self) -> dict[str, Any]:
        import json

        return cast("dict[str, Any]", json.loads(self.parts_json))

    @property
    def outputs(self) -> dict[str, str]:
        import json

        return cast("dict[str, str]", json.loads(self.outputs_json))


class Store(RunHistory):
    """The SQLite database of one project. Use from one thread.

    A state folder that cannot be written (a read-only checkout, another user's files)
    is opened read-only, so that `status`, `why` and `log` still answer; writing then
    fails with a :class:`StateError`, and the stat cache is simply not kept. Every
    database error (a damaged file, a full disk) becomes a :class:`StateError` naming the
    file and saying that deleting ``.flowmake/`` is safe.

    ``on_change`` is called once, before the first write of records through this store
    (the command wires it to void the no-op fast path's snapshot: ``fastpath.invalidate``).
    """

    def __init__(self, state_dir: Path, *, memory: bool = False,
                 on_change: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.dir = state_dir
        self.path = state_dir / paths.STATE_DB
        self._on_change = on_change
        self.readonly = False
        if memory:
            self.db, self.memory = open_memory(), True
        else:
            self.db, self.readonly = guard(self.path, lambda: open_state(state_dir, self.path))

    @queueing
    def data_version(self) -> int:
        """Changes whenever another connection (another flowmake) commits to the store."""
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    @guarded
    def change_log(self) -> tuple[str, int] | None:
        """The change log's (epoch, number of the latest change of a record or a build's
        target line) (sqlite.change_log); None when it cannot be had (a read-only state)."""
        return None if self.readonly else change_log(self.db)

    @guarded
    def changed_since(self, seq: int) -> list[str]:
        """The targets whose record or target lines changed after change ``seq``."""
        return changed_since(self.db, seq)

    # -- records ----------------------------------------------------------------------

    @guarded
    def records(self, names: Iterable[str] | None = None) -> dict[str, Record]:
        rows = self.db.execute(
            "SELECT target, key, parts, outputs, run_id, built_at, duration FROM records")
        wanted = None if names is None else set(names)
        return {r[0]: Record(*r) for r in rows if wanted is None or r[0] in wanted}

    @guarded
    def built(self, names: list[str] | None = None
              ) -> dict[str, tuple[int, float, float | None]]:
        """Each record's (run id, built at, duration): what `graph` shows of it, without
        its key's parts and digests (at 100,000 targets most of the bytes of `records`);
        only those of ``names`` if given."""
        sql = "SELECT target, run_id, built_at, duration FROM records"
        rows = self.db.execute(sql) if names is None else rows_in(
            self.db, sql + " WHERE target IN ({})", names)
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    @guarded
    def records_of_runs(self, run_ids: Iterable[int]) -> dict[str, Record]:
        """The records that the given builds wrote (and no later build replaced)."""
        found: dict[str, Record] = {}
        for run_id in run_ids:
            rows = self.db.execute(
                "SELECT target, key, parts, outputs, run_id, built_at, duration FROM records"
                " WHERE run_id = ?", (run_id,))
            found.update((r[0], Record(*r)) for r in rows)
        return found

    @queueing
    def record(self, name: str) -> Record | None:
        """One record (a queued one as it will be committed)."""
        queued = self.pending.get(name)  # a queued record, as it will be committed
        if queued is not None:
            return cast("Record", queued)
        row = self.db.execute(
            "SELECT target, key, parts, outputs, run_id, built_at, duration FROM records"
            " WHERE target = ?", (name,)).fetchone()
        return Record(*row) if row else None

    @queueing
    def records_named(self, names: list[str]) -> dict[str, Record]:
        """The records of ``names`` that exist (a queued one as it will be committed), in
        a query per 500: a cone build reads its targets' together, not one by one."""
        found = {r[0]: Record(*r) for r in rows_in(
            self.db, "SELECT target, key, parts, outputs, run_id, built_at, duration"
            " FROM records WHERE target IN ({})", names)}
        for name in names:
            queued = self.pending.get(name)
            if queued is not None:
                found[name] = cast("Record", queued)
        return found

    def _records_change(self) -> None:
        """Tell the listener, once, that records are about to change."""
        if self._on_change is not None:
            on_change, self._on_change = self._on_change, None
            on_change()

    @queueing
    def put_record(self, record: Record, *, commit: bool = True) -> None:
        """Write a record; ``commit=False`` queues it (committed with the next rows)."""
        self._records_change()
        self.pending[record.target] = record
        self.queue(_record_row(record), commit=commit)

    def commit_before(self, upstream: Iterable[str]) -> None:
        """Commit now if a record of ``upstream`` is queued: a job built from their outputs
        is about to start, and a kill while it runs must not lose what it was built from."""
        if self.pending and any(name in self.pending for name in upstream):
            self.commit()

    @guarded
    def forget(self, names: Iterable[str]) -> None:
        self._records_change()
        with self.transaction() as db:
            db.executemany("DELETE FROM records WHERE target = ?", ((n,) for n in names))

    @queueing
    def finish_target(self, run_id: int, target: str, status: str, duration: float,
                      reasons: list[str], output: str, record: Record | None, *,
                      started: float | None = None, finished: float | None = None,
                      error: str | None = None, commit: bool = True) -> None:
        """A target's line in the run and, after a success, its record, in one
        transaction; ``commit=False`` queues them (committed with the rows queued with
        them, see sqlite.py). ``started`` and ``finished`` are wall-clock times."""
        import json

        if record is not None:
            self._records_change()
        line = ("INSERT OR REPLACE INTO run_targets (run_id, target, status, duration,"
                " reasons, output, started, finished, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, target, status, duration, json.dumps(reasons), output,
                 started, finished, error))
        if record is None:
            self.queue(line, commit=commit)
        else:
            self.pending[record.target] = record
            self.queue(line, _record_row(record), commit=commit)

    # -- stat cache -------------------------------------------------------------------

    @guarded
    def stat_cache(self) -> dict[str, StatEntry]:
        from flowmake.model import StatEntry  # not on the no-op path: it never reads stats

        rows = self.db.execute(
            "SELECT path, size, mtime_ns, inode, hashed_ns, digest FROM stat_cache")
        make = StatEntry._make
        return {r[0]: make(r[1:]) for r in rows}

    @queueing
    def stat_entry(self, path: str) -> StatEntry | None:
        """One path's stat-cache entry (a cone build reads a few, not all of them)."""
        from flowmake.model import StatEntry

        row = self.db.execute("SELECT size, mtime_ns, inode, hashed_ns, digest FROM stat_cache"
                              " WHERE path = ?", (path,)).fetchone()
        return None if row is None else StatEntry._make(row)

    @queueing
    def stat_entries(self, paths: list[str]) -> dict[str, StatEntry]:
        """The stat-cache entries of ``paths`` that exist, in a query per 500."""
        from flowmake.model import StatEntry

        make = StatEntry._make
        return {r[0]: make(r[1:]) for r in rows_in(
            self.db, "SELECT path, size, mtime_ns, inode, hashed_ns, digest FROM stat_cache"
            " WHERE path IN ({})", paths)}

    @guarded
    def put_stats(self, entries: dict[str, StatEntry | None]) -> None:
        """Write changed stat-cache entries; None removes one. A read-only state keeps
        none: it is a cache."""
        if not entries or self.readonly:
            return
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO stat_cache VALUES (?, ?, ?, ?, ?, ?)",
                ((p, *e) for p, e in entries.items() if e is not None))
            db.executemany("DELETE FROM stat_cache WHERE path = ?",
                           ((p,) for p, e in entries.items() if e is None))


def _record_row(record: Record) -> tuple[str, tuple[Any, ...]]:
    return ("INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?, ?)",
            (record.target, record.key, record.parts_json, record.outputs_json,
             record.run_id, record.built_at, record.duration))
