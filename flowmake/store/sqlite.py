"""The state database file: its schema, opening it (WAL, retries, read-only fallback),
and its errors as one clear :class:`StateError`. :class:`Database` is what the run
history (runs.py) and the records and stat cache (db.py) are built on.

Writes that come once per target (a target's line in the run, its record) can be queued
(:meth:`Database.queue`) and committed together, one transaction per WRITE_BATCH rows or
WRITE_SECONDS, instead of one each (~150 µs of the scheduler's thread per target). A
queued row is committed by :meth:`Database.commit`, by a timer thread WRITE_SECONDS after
the first row queued, before any other call of the database, and at close. A row whose
commit fails stays queued: the next commit tries again and raises the error, so a queued
row is never dropped without a StateError saying so.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from flowmake import warm
from flowmake.errors import StateError
from flowmake.store.mutex import cannot_write

SCHEMA_VERSION = 4
WRITE_BATCH = 256  # queued rows committed together at most
WRITE_SECONDS = 0.5  # a queued row waits at most this long (a SIGKILL loses only these)
_TABLES = ("records", "stat_cache", "runs", "run_targets", "run_metrics", "changes",
           "change_log", "changed_targets")
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


# The change log: SQLite triggers number every insert, update or delete of a record or of
# a build's target line (``change_log.seq``) and keep, for each target, the number of its
# latest change (``changed_targets``), so that any writer of the file counts (another
# flowmake, an older one included, or a tool of the user's). What is kept beside the
# state and made from those rows (cli/graphstates.py) names the log's epoch and number it
# was made at: it is used as it is while they are the same, and only the targets changed
# since are made again while the epoch is. Made on first use, by the command that needs
# it; a file without it (made before, or by a flowmake that dropped the tables and their
# triggers with them) gets it, and a new random epoch, then.
#
# An outer statement's conflict clause (INSERT OR IGNORE, say) overrides a trigger's own
# (SQLite's CREATE TRIGGER): the triggers' statements must neither skip a count nor fail
# the write under any of them. An UPSERT's DO UPDATE is taken before any such clause
# applies (tests/unit/test_change_log.py holds each one), and no NULL meets a NOT NULL.
_LOGGED = [(table, event) for table in ("records", "run_targets")
           for event in ("INSERT", "UPDATE", "DELETE")]
_LOG_TRIGGERS = tuple(f"log_{table}_{event.lower()}" for table, event in _LOGGED)


def _log_body(event: str) -> str:
    rows = {"INSERT": ("NEW",), "UPDATE": ("OLD", "NEW"), "DELETE": ("OLD",)}[event]
    body = "UPDATE change_log SET seq = seq + 1;"
    for row in rows:  # (no log row: nothing noted, and a new epoch comes)
        body += (f" INSERT INTO changed_targets SELECT coalesce({row}.target, ''), seq"
                 " FROM change_log WHERE seq IS NOT NULL"
                 " ON CONFLICT (target) DO UPDATE SET seq = excluded.seq;")
    return body


_LOG_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS change_log (epoch BLOB NOT NULL, seq INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS changed_targets (target TEXT PRIMARY KEY,"
    " seq INTEGER NOT NULL) WITHOUT ROWID",
    # an earlier flowmake's change mark (one random value): its triggers go; its table
    # stays, for a flowmake of that version that makes them again
    *(f"DROP TRIGGER IF EXISTS mark_{table}_{event.lower()}" for table, event in _LOGGED),
    *(f"CREATE TRIGGER IF NOT EXISTS {name} AFTER {event} ON {table}"
      f" BEGIN {_log_body(event)} END"
      for name, (table, event) in zip(_LOG_TRIGGERS, _LOGGED, strict=True))]
MARK_WAIT_MS = 200  # making the log waits at most this long for a build's write lock


def change_log(db: sqlite3.Connection) -> tuple[str, int] | None:
    """The state's change log as (its epoch in hex, the number of its latest change),
    made first if the file lacks it; None when it cannot be made now (a read-only file,
    another process writing)."""
    names = {r[0] for r in db.execute(
        "SELECT name FROM sqlite_master WHERE name IN ('change_log', 'changed_targets')"
        " OR (type = 'trigger' AND name GLOB 'log_*')")}
    if names.issuperset(_LOG_TRIGGERS) and {"change_log", "changed_targets"} <= names:
        rows = db.execute("SELECT hex(epoch), seq FROM change_log").fetchall()
        if len(rows) == 1 and rows[0][0] and isinstance(rows[0][1], int):
            return str(rows[0][0]), rows[0][1]
    db.execute(f"PRAGMA busy_timeout = {MARK_WAIT_MS}")
    try:
        with contextlib.suppress(sqlite3.OperationalError):  # busy, or read-only
            with transaction(db):
                for statement in _LOG_SCHEMA:
                    db.execute(statement)
                db.execute("DELETE FROM change_log")
                db.execute("DELETE FROM changed_targets")
                db.execute("INSERT INTO change_log VALUES (randomblob(8), 0)")
                epoch = db.execute("SELECT hex(epoch) FROM change_log").fetchone()[0]
            return str(epoch), 0
        return None
    finally:
        db.execute(f"PRAGMA busy_timeout = {BUSY_SECONDS * 1000}")  # as open_state sets it


def changed_since(db: sqlite3.Connection, seq: int) -> list[str]:
    """The targets whose record or target lines changed after change number ``seq``
    (read after :func:`change_log`: a change committed between the two is counted)."""
    return [r[0] for r in db.execute(
        "SELECT target FROM changed_targets WHERE seq > ?", (seq,))]


BUSY_SECONDS = 60  # how long a connection waits for another's lock


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``db`` in one write transaction: committed at the end, rolled back on an error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.in_transaction:  # a failed COMMIT may have ended it already
            db.execute("ROLLBACK")
        raise
    try:
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


class Database:
    """One connection to a state database (``path``), used from one thread (and the
    queue's timer: every call holds ``lock``)."""

    path: Path
    db: sqlite3.Connection
    readonly: bool
    memory = False  # an in-memory database (nothing to checkpoint)

    def __init__(self) -> None:
        self.lock = _thread.RLock()  # not threading: the no-op path never imports it
        self._queued: list[tuple[str, tuple[Any, ...]]] = []
        self.pending: dict[str, Any] = {}  # what lookups answer for queued rows (db.py)
        self._deadline: Any = None  # a Deadline (its thread commits due rows), once queued

    def close(self) -> None:
        """Commit what is queued (a StateError if it cannot be), and close; in a resident
        server's fork, the connection is left to the process's end (see ``_LEFT_OPEN``)."""
        with self.lock:
            try:
                self._cancel_timer()
                guard(self.path, self._commit_queued)
            finally:
                if warm.forked and not self.readonly:
                    # one a path: a watch builds again and again in one fork (the one
                    # before is closed now, not as the last connection: no copy then)
                    before = _LEFT_OPEN.pop(str(self.path), None)
                    _LEFT_OPEN[str(self.path)] = self.db
                    if before is not None:
                        before.close()
                else:
                    self.db.close()

    def checkpoint_behind(self) -> None:
        """Copy SQLite's log into the database file now, on a connection and a thread of
        their own, while the build's commands run: what the forks before this one left
        in the log (``_LEFT_OPEN``). A checkpoint cut short by the process's end is
        harmless (the log stays the truth until it is complete)."""
        if self.readonly or self.memory:
            return
        import threading

        threading.Thread(target=_checkpoint, args=(self.path,), daemon=True,
                         name="flowmake-checkpoint").start()

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return transaction(self.db)

    # -- the queue of per-target rows -------------------------------------------------

    def queue(self, *rows: tuple[str, tuple[Any, ...]], commit: bool = False) -> None:
        """Queue writes (sql, params), under ``lock``: these rows are committed together,
        with the others queued by then; now if ``commit``."""
        self._queued.extend(rows)
        if commit or len(self._queued) >= WRITE_BATCH:
            self._commit_queued()
        else:
            if self._deadline is None:
                from flowmake.deadline import Deadline

                self._deadline = Deadline(WRITE_SECONDS, self._commit_due)
            self._deadline.arm()  # one thread for the whole build, not one per commit

    def commit(self) -> None:
        """Commit the queued rows now (a StateError if they cannot be: they stay queued)."""
        with self.lock:
            guard(self.path, self._commit_queued)

    def _commit_queued(self) -> None:
        """The queue in one transaction, one executemany per statement in the order each
        first came (a later row of one statement still replaces an earlier one)."""
        if not self._queued:
            return
        self._cancel_timer()
        by_sql: dict[str, list[tuple[Any, ...]]] = {}
        for sql, params in self._queued:
            by_sql.setdefault(sql, []).append(params)
        with self.transaction() as db:
            for sql, rows in by_sql.items():
                db.executemany(sql, rows)
        self._queued = []
        self.pending.clear()

    def _commit_due(self) -> None:
        """The timer's: commit the queue. A failure leaves the rows queued for the next
        commit on the database's own thread, which raises it."""
        with self.lock, contextlib.suppress(sqlite3.Error):
            self._commit_queued()  # nothing, when a commit came first

    def _cancel_timer(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()


# A resident server's fork ends with its command, by os._exit: its connections are left
# open to that end (kept here, so that no garbage collection closes one). Closing the
# last connection would copy SQLite's log into the database and sync both, 11-16 ms after
# a 55-target build (~190 pages in the log), before the client has its exit code; left
# open, the log stays, complete and synced as each commit left it, and the next opener
# reads it back (~0.5 ms a MB). The next build copies it in the background
# (``checkpoint_behind``), SQLite's own checkpoint at 1,000 pages bounds it meanwhile.
_LEFT_OPEN: dict[str, sqlite3.Connection] = {}


def _checkpoint(path: Path) -> None:
    with contextlib.suppress(sqlite3.Error):
        db = sqlite3.connect(path, timeout=BUSY_SECONDS, isolation_level=None,
                             check_same_thread=False)
        try:  # PASSIVE: never waits for, nor holds up, the build's own commits
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            db.close()  # not the last connection (the build's is open): no second copy


P = ParamSpec("P")
R = TypeVar("R")
D = TypeVar("D", bound=Database)


def guarded(method: Callable[Concatenate[D, P], R]) -> Callable[Concatenate[D, P], R]:
    """A Database method whose database errors become a StateError naming the file; the
    queued rows are committed first (it sees them, and it never commits before them)."""
    import functools

    @functools.wraps(method)
    def wrapper(self: D, *args: P.args, **kwargs: P.kwargs) -> R:
        with self.lock:
            try:
                if self._queued:
                    self._commit_queued()
                return method(self, *args, **kwargs)
            except sqlite3.DatabaseError as exc:
                raise state_error(self.path, exc) from None

    return cast("Callable[Concatenate[D, P], R]", wrapper)


def queueing(method: Callable[Concatenate[D, P], R]) -> Callable[Concatenate[D, P], R]:
    """As :func:`guarded`, for a method that may leave rows queued, or that reads what
    the queue does not change (a record it answers itself, the stat cache)."""
    import functools

    @functools.wraps(method)
    def wrapper(self: D, *args: P.args, **kwargs: P.kwargs) -> R:
        with self.lock:
            try:
                return method(self, *args, **kwargs)
            except sqlite3.DatabaseError as exc:
                raise state_error(self.path, exc) from None

    return cast("Callable[Concatenate[D, P], R]", wrapper)


IN_CHUNK = 500  # values in one IN (...): SQLite before 3.32 allows 999 variables


def rows_in(db: sqlite3.Connection, sql: str, names: list[str]) -> Iterator[Any]:
    """The rows of ``sql`` (its ``{}``: the IN list's placeholders) for ``names``, a
    query per IN_CHUNK: many rows read together instead of one query each."""
    for start in range(0, len(names), IN_CHUNK):
        chunk = names[start:start + IN_CHUNK]
        yield from db.execute(sql.format(", ".join("?" * len(chunk))), chunk)


def guard(path: Path, action: Callable[[], R]) -> R:
    """``action()``, with a database error turned into one clear StateError."""
    try:
        return action()
    except sqlite3.DatabaseError as exc:
        raise state_error(path, exc) from None


def state_error(path: Path, exc: sqlite3.DatabaseError) -> StateError:
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


def open_memory() -> sqlite3.Connection:
    """An empty state database in memory."""
    db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    for statement in _statements(_SCHEMA):
        db.execute(statement)
    return db


def open_state(state_dir: Path, path: Path) -> tuple[sqlite3.Connection, bool]:
    """The database ``path`` in ``state_dir`` (both made if need be), and whether it is
    read-only: a state folder that cannot be written is read as it is."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise StateError(str(state_dir), "exists but is not a folder") from None
    except OSError as exc:
        if not cannot_write(exc):
            raise
        return _open_readonly(path), True
    if path.is_dir():
        raise StateError(str(path), "is a folder, not a database")
    if not os.access(path, os.W_OK) and os.path.exists(path):
        # SQLite would open it read-only without a word, and with its log's files there
        # (a fork leaves them: _LEFT_OPEN) even switch it to WAL: the first write failed
        return _open_readonly(path), True
    try:
        db = sqlite3.connect(path, timeout=BUSY_SECONDS, isolation_level=None, check_same_thread=False)
        retry_locked(lambda: db.execute("PRAGMA journal_mode=WAL"))
    except sqlite3.OperationalError as exc:
        if not _readonly_error(exc):
            raise
        return _open_readonly(path), True
    db.execute("PRAGMA synchronous=NORMAL")
    if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
        retry_locked(lambda: _create_schema(db))
    return db, False


def _open_readonly(path: Path) -> sqlite3.Connection:
    """The state as it is, never written: an empty one where there is none."""
    if not path.is_file():
        return open_memory()
    uri = path.resolve().as_uri()
    # With its log when the log's files are there (SQLite reads a WAL database from a
    # folder it cannot write then: a resident fork leaves the log, _LEFT_OPEN); else
    # immutable, the database file alone (no -shm can be made).
    for options in ("?mode=ro", "?mode=ro&immutable=1"):
        db = sqlite3.connect(uri + options, uri=True, isolation_level=None,
                             check_same_thread=False)
        try:
            if db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
                return db
        except sqlite3.OperationalError:
            pass  # "unable to open": the log's files cannot be had
        db.close()
    return open_memory()


def _readonly_error(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "readonly" in text or "read-only" in text or "unable to open" in text


def retry_locked(action: Callable[[], Any], wait: float = 60.0) -> Any:
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
            for table in _TABLES:
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
