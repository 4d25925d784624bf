"""State under ``.flowmake/``: a SQLite database (WAL) of records, runs and the stat cache,
and the project lock.

A record is written after each successful target in its own transaction (like ninja's
build log), so an interrupted build keeps the work it finished and nothing else.
Deleting ``.flowmake/`` is always safe: everything becomes stale.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Concatenate, NamedTuple, ParamSpec, TypeVar, cast

from flowmake import fastpath
from flowmake.errors import StateError

SCHEMA_VERSION = 4
_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    target TEXT PRIMARY KEY, key TEXT NOT NULL, parts TEXT NOT NULL, outputs TEXT NOT NULL,
    run_id INTEGER, built_at REAL, duration REAL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stat_cache (
    path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, inode INTEGER,
    hashed_ns INTEGER, digest TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT, started REAL, finished REAL,
    command TEXT, result TEXT, counts TEXT,
    environment TEXT  -- JSON: what the build ran in (provenance.py); NULL: not known
);
CREATE TABLE IF NOT EXISTS run_targets (
    run_id INTEGER, target TEXT, status TEXT, duration REAL, reasons TEXT, output TEXT,
    started REAL, finished REAL, error TEXT,  -- wall-clock seconds; the failure's error
    PRIMARY KEY (run_id, target)
);  -- a rowid table: rowid keeps the order in which the build finished its targets
CREATE INDEX IF NOT EXISTS run_targets_target ON run_targets (target, run_id);
CREATE TABLE IF NOT EXISTS run_metrics (
    run_id INTEGER, target TEXT, name TEXT, value REAL,  -- name: flattened, "roc.auc"
    PRIMARY KEY (target, name, run_id)
) WITHOUT ROWID;
"""

# The counts every run reports (SPEC §3), in this order.
COUNT_KEYS = ("built", "restored", "fresh", "failed", "skipped")

# (size, mtime_ns, inode, hashed_ns, digest)
StatEntry = tuple[int, int, int, int, str]


def _cannot_write(exc: OSError) -> bool:
    import errno

    return exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS)


def _readonly_error(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "readonly" in text or "read-only" in text or "unable to open" in text


def _retry_locked(action: Callable[[], Any], wait: float = 60.0) -> Any:
    """Run ``action``, retrying while another process holds the database.

    SQLite's busy timeout does not cover every step: switching a new database to WAL
    while another process creates it answers "database is locked" at once."""
    deadline = time.monotonic() + wait
    delay = 0.001
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) \
                    or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _create_schema(db: sqlite3.Connection) -> None:
    """Make the tables, once: a process that waited for another's creation leaves it be.
    An older (or newer) layout is dropped: the state is a cache, safe to lose."""
    db.execute("BEGIN IMMEDIATE")
    try:
        if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            for table in ("records", "stat_cache", "runs", "run_targets", "run_metrics"):
                db.execute(f"DROP TABLE IF EXISTS {table}")
            for statement in _statements(_SCHEMA):
                db.execute(statement)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _statements(script: str) -> list[str]:
    """The statements of ``script``, split where SQLite's own tokenizer says one ends (a
    ``;`` in a comment or a string does not end one)."""
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending)
            pending = ""
    return statements


def _guard(path: Path, action: Callable[[], Any]) -> Any:
    """``action()``, with a database error turned into one clear StateError."""
    try:
        return action()
    except sqlite3.DatabaseError as exc:
        raise _state_error(path, exc) from None


def _state_error(path: Path, exc: sqlite3.DatabaseError) -> StateError:
    text = str(exc)
    if "not a database" in text or "malformed" in text:
        return StateError(str(path), f"the state database is damaged ({text})")
    if "full" in text:
        return StateError(str(path), f"no room left on the device ({text})",
                          hint="free some room, then run the command again (what finished"
                               " is recorded; deleting .flowmake/ is always safe)")
    if "readonly" in text or "read-only" in text:
        return StateError(str(path), "cannot be written (read-only)")
    return StateError(str(path), f"cannot use the state database ({text})")


P = ParamSpec("P")
R = TypeVar("R")


def guarded(method: Callable[Concatenate[Store, P], R]) -> Callable[Concatenate[Store, P], R]:
    """A Store method whose database errors become a StateError naming the file."""
    import functools

    @functools.wraps(method)
    def wrapper(self: Store, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise _state_error(self.path, exc) from None

    return cast("Callable[Concatenate[Store, P], R]", wrapper)


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


class Store:
    """The SQLite database of one project. Use from one thread.

    A state folder that cannot be written (a read-only checkout, another user's files)
    is opened read-only, so that `status`, `why` and `log` still answer; writing then
    fails with a :class:`StateError`, and the stat cache is simply not kept. Every
    database error (a damaged file, a full disk) becomes a :class:`StateError` naming the
    file and saying that deleting ``.flowmake/`` is safe.
    """

    def __init__(self, state_dir: Path, *, memory: bool = False) -> None:
        self.dir = state_dir
        self.path = state_dir / "state.db"
        self._fast_voided = memory  # nothing on disk to void
        self.readonly = False
        self.db = self._memory() if memory else _guard(self.path, self._open)

    @staticmethod
    def _memory() -> sqlite3.Connection:
        db = sqlite3.connect(":memory:", isolation_level=None)
        for statement in _statements(_SCHEMA):
            db.execute(statement)
        return db

    def _open(self) -> sqlite3.Connection:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise StateError(str(self.dir), "exists but is not a folder") from None
        except OSError as exc:
            if not _cannot_write(exc):
                raise
            return self._open_readonly()
        if self.path.is_dir():
            raise StateError(str(self.path), "is a folder, not a database")
        try:
            db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            _retry_locked(lambda: db.execute("PRAGMA journal_mode=WAL"))
        except sqlite3.OperationalError as exc:
            if not _readonly_error(exc):
                raise
            return self._open_readonly()
        db.execute("PRAGMA synchronous=NORMAL")
        if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            _retry_locked(lambda: _create_schema(db))
        return db

    def _open_readonly(self) -> sqlite3.Connection:
        """The state as it is, never written: an empty one where there is none."""
        self.readonly = True
        if not self.path.is_file():
            return self._memory()
        # immutable: a WAL database in a folder we cannot write (no -shm can be made)
        uri = f"{self.path.resolve().as_uri()}?mode=ro&immutable=1"
        db = sqlite3.connect(uri, uri=True, isolation_level=None)
        if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            db.close()
            db = self._memory()
        return db

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    @guarded
    def data_version(self) -> int:
        """Changes whenever another connection (another flowmake) commits to the store."""
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    # -- records ----------------------------------------------------------------------

    @guarded
    def records(self, names: Iterable[str] | None = None) -> dict[str, Record]:
        rows = self.db.execute(
            "SELECT target, key, parts, outputs, run_id, built_at, duration FROM records")
        wanted = None if names is None else set(names)
        return {r[0]: Record(*r) for r in rows if wanted is None or r[0] in wanted}

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

    @guarded
    def record(self, name: str) -> Record | None:
        row = self.db.execute(
            "SELECT target, key, parts, outputs, run_id, built_at, duration FROM records"
            " WHERE target = ?", (name,)).fetchone()
        return Record(*row) if row else None

    def _records_change(self) -> None:
        """Any record write voids the no-op fast path's saved answer."""
        if not self._fast_voided:
            fastpath.invalidate(str(self.dir))
            self._fast_voided = True

    @guarded
    def put_record(self, record: Record) -> None:
        self._records_change()
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (record.target, record.key, record.parts_json, record.outputs_json,
                        record.run_id, record.built_at, record.duration))

    @guarded
    def forget(self, names: Iterable[str]) -> None:
        self._records_change()
        with self.transaction() as db:
            db.executemany("DELETE FROM records WHERE target = ?", ((n,) for n in names))

    # -- stat cache -------------------------------------------------------------------

    @guarded
    def stat_cache(self) -> dict[str, StatEntry]:
        rows = self.db.execute(
            "SELECT path, size, mtime_ns, inode, hashed_ns, digest FROM stat_cache")
        return {r[0]: r[1:] for r in rows}

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

    # -- runs -------------------------------------------------------------------------

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
            # History is pruned to the newest ``keep`` runs (counted: the ids of builds kept
            # out of it, ``--no-record``, leave gaps).
            db.execute("DELETE FROM runs WHERE run_id < (SELECT MIN(run_id) FROM ("
                       "SELECT run_id FROM runs ORDER BY run_id DESC LIMIT ?))", (keep,))
            db.execute("DELETE FROM run_targets WHERE run_id < (SELECT MIN(run_id) FROM runs)")
            db.execute("DELETE FROM run_metrics WHERE run_id < (SELECT MIN(run_id) FROM runs)")

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
    def finish_target(self, run_id: int, target: str, status: str, duration: float,
                      reasons: list[str], output: str, record: Record | None, *,
                      started: float | None = None, finished: float | None = None,
                      error: str | None = None) -> None:
        """A target's line in the run and, after a success, its record: one transaction.
        ``started`` and ``finished`` are wall-clock times (``time.time()``)."""
        import json

        if record is not None:
            self._records_change()
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO run_targets (run_id, target, status, duration,"
                       " reasons, output, started, finished, error)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (run_id, target, status, duration, json.dumps(reasons), output,
                        started, finished, error))
            if record is not None:
                db.execute("INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (record.target, record.key, record.parts_json, record.outputs_json,
                            record.run_id, record.built_at, record.duration))

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
    def last_runs(self) -> dict[str, tuple[int, str, float]]:
        """Each target's latest line in the history: (run_id, status, duration)."""
        rows = self.db.execute(
            "SELECT target, MAX(run_id), status, duration FROM run_targets GROUP BY target")
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


def _counts_json(counts: dict[str, int]) -> str:
    """JSON for a run's counts (our own ASCII keys, int values), without importing json:
    the no-op fast path records its run with this, and json costs ~2 ms to import."""
    return "{" + ", ".join(f'"{k}": {int(v)}' for k, v in counts.items()) + "}"


@contextlib.contextmanager
def project_lock(state_dir: Path, on_wait: Callable[[str], None] | None) -> Iterator[bool]:
    """Hold ``.flowmake/lock`` (flock: released by the kernel if we are killed).

    A second build waits for the first, telling the user once which process it waits for.
    Without ``on_wait`` nothing waits: the lock is held if it was free, and the value says
    whether it is.
    """
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(state_dir / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if on_wait is None and _cannot_write(exc):
            yield False  # a read-only state: nobody can build here, nothing to wait for
            return
        where = state_dir if isinstance(exc, (FileExistsError, NotADirectoryError)) \
            else state_dir / "lock"
        problem = "exists but is not a folder" if where == state_dir else (
            exc.strerror or str(exc)).lower()
        raise StateError(str(where), problem) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is None:
                yield False
                return
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            on_wait(f"waiting for another flowmake build (pid {holder}) to finish...")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield True
    finally:
        os.close(fd)

