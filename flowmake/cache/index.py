"""The cache folder's SQLite index, ``index.db`` (WAL): every action record, and every
blob of up to INLINE_BLOB bytes, inline (see local.py's docstring for the layout).

:class:`Index` is the part of :class:`~flowmake.cache.local.LocalCache` that talks to
the database: opened on first use, one connection shared by the command's threads under
a lock, writes queued and done WRITE_BATCH at a time (or WRITE_SECONDS after the first
queued, by a timer thread) in one transaction, use times of records batched (TOUCH_BATCH). Queued records and
blobs are answered from memory: a lookup never writes the queue. SQLite's errors become
:class:`IndexUnusable`.
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from flowmake.cache.records import ActionRecord
from flowmake.deadline import Deadline
from flowmake.errors import FlowmakeError
from flowmake.store import paths
from flowmake.store.sqlite import BUSY_SECONDS, retry_locked

INDEX = paths.CACHE_INDEX
INDEX_VERSION = 2  # 2: rowid tables (1: WITHOUT ROWID, dropped when met)
# Blobs up to this size are rows of index.db rather than files: a new file costs far more
# than a row (see local.py's docstring); larger ones are copied (reflinked) as files.
INLINE_BLOB = 128 << 10
TOUCH_BATCH = 500
WRITE_BATCH = 256  # queued rows (blobs, records) written in one transaction
WRITE_SECONDS = 1.0  # ... or fewer, once the first of them has waited this long
# The big column last: reading the others never touches its overflow pages. Rowid
# tables, each with its key's index: a new row is appended to its table and only the
# small index entry lands at a random place. (WITHOUT ROWID, which keeps the rows
# themselves in key order, made each of a build's saves write a random page of the big
# rows: 55 saves 5.2 -> 2.5 ms a transaction, its checkpoint at close 7.9 -> 4.3 ms, the
# file 17% smaller, on a 40 MB index of 15,000 blobs.)
_SCHEMA = """
CREATE TABLE actions (key TEXT PRIMARY KEY, used REAL NOT NULL, record BLOB NOT NULL);
CREATE TABLE blobs (
    digest TEXT PRIMARY KEY, size INTEGER NOT NULL, added REAL NOT NULL, data BLOB NOT NULL
);
"""



class IndexUnusable(FlowmakeError):
    """index.db could not be opened, read or written (locked past the busy timeout, disk
    full, not a database): a build warns and goes on without the cache."""


class BlobInfo(NamedTuple):
    """One blob as ``cache gc`` and ``cache status`` see it."""

    digest: str
    size: int
    added: float  # when it was stored (a blob file: its mtime)
    inline: bool  # in index.db, else a file under blobs/


class ActionInfo(NamedTuple):
    """One action record as ``cache gc`` sees it; ``record`` None when it is unreadable."""

    key: str
    used: float  # when it was last saved or restored
    size: int
    record: ActionRecord | None


class Index:
    """index.db of a cache folder: the action records and the inline blobs.

    The database is opened on first use (a command that never touches the cache never
    opens it) and shared by the command's threads (saves, transfers) under a lock. A
    reader finds an empty cache, without creating anything, while index.db does not exist.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._index_path = path / INDEX
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # one connection for every thread, one use at a time
        self._touched: dict[str, float] = {}  # records used, not yet marked (see touch)
        self._queued: list[tuple[str, tuple[Any, ...]]] = []  # writes not yet done (_write)
        self._deadline = Deadline(WRITE_SECONDS, self._write_due)  # the queue's timer
        self._failed: IndexUnusable | None = None  # the timer's error, for the next write
        # what the queue holds, for lookups: record (dumps()) by key, inline blob by digest
        self._pending_actions: dict[str, bytes] = {}
        self._pending_blobs: dict[str, bytes] = {}
        self._making = False  # a new index.db is being made by open_soon's thread

    def open_soon(self) -> None:
        """Open index.db (made if need be) in a thread of its own, now: a build calls this
        once its first commands are started, so that its first save finds the index open
        rather than opening it on the scheduler's thread (a new index.db took 3.5-7 ms:
        the file, SQLite's switch to WAL, the tables; every command that ended meanwhile
        waited for its slot to be refilled). While a new one is being made, lookups answer
        from the queue (all it can hold) instead of waiting for it."""
        if self._db is not None:
            return
        self._making = not self._index_path.exists()

        def open_now() -> None:
            try:  # an error: the first write says it again
                with contextlib.suppress(IndexUnusable), self._index(create=True, flush=False):
                    pass
            finally:
                self._making = False

        threading.Thread(target=open_now, name="flowmake-cache-open", daemon=True).start()

    # -- the database -------------------------------------------------------------------

    @contextlib.contextmanager
    def _index(self, create: bool, *, flush: bool = True) -> Iterator[sqlite3.Connection | None]:
        """The open index, for one use under the lock; None for a reader while there is
        none. Queued writes are done first (``flush``), so that every use sees them.
        SQLite's errors become IndexUnusable."""
        with self._lock:
            try:
                if self._db is None and (create or self._index_path.exists()):
                    self.path.mkdir(parents=True, exist_ok=True)
                    self._db = _open_index(self._index_path)
                if flush and self._queued and self._db is not None:
                    self._write_queued(self._db)
                yield self._db
            except sqlite3.Error as exc:
                raise self._unusable(exc) from exc

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Rows of a query over the whole index (the queue written first)."""
        with self._index(create=False) as db:
            return [] if db is None else db.execute(sql, params).fetchall()

    def _lookup(self, pending: dict[str, bytes], sql: str, key: str) -> Any:
        """The first column of the row ``sql`` finds for ``key``, or its queued value
        (``pending``); None when there is neither. The queue is not written: on the
        scheduler's thread a lookup comes between two saves, and writing the queue there
        made every save a transaction of its own."""
        if self._making:  # a new index.db, being made (open_soon): nothing else is in it
            return pending.get(key)
        with self._index(create=False, flush=False) as db:
            if key in pending:
                return pending[key]
            row = None if db is None else db.execute(sql, (key,)).fetchone()
            return None if row is None else row[0]

    def _write(self, sql: str, params: tuple[Any, ...],
               pending: tuple[dict[str, bytes], str, bytes] | None = None) -> None:
        """Queue one statement (``pending``: the row as lookups see it meanwhile); the
        queue is written in one transaction when it holds WRITE_BATCH, WRITE_SECONDS after
        its first row (by a timer: a build then waiting for a slow target has its saves
        written all the same), before any query of the whole index, and at close. (A
        transaction per row cost ~35 µs on the scheduler's thread for each of two rows a
        target.) Opening the index is not deferred: an unusable one is reported by this
        call."""
        with self._index(create=True, flush=False) as db:
            assert db is not None
            if self._failed is not None:  # the timer could not write the last rows
                failed, self._failed = self._failed, None
                raise failed
            self._deadline.arm()  # no-op while armed; close writes the rest
            self._queued.append((sql, params))
            if pending is not None:
                table, key, value = pending
                table[key] = value  # a blob's value never changes; a record's last one wins
            if len(self._queued) >= WRITE_BATCH:
                self._write_queued(db)

    def _write_due(self) -> None:
        """The timer's: write the queue; an error is raised by the next write or close."""
        with self._lock:
            if self._queued and self._db is not None:  # nothing, once close wrote it
                try:
                    self._write_queued(self._db)
                except sqlite3.Error as exc:
                    self._failed = self._unusable(exc)

    def _unusable(self, exc: sqlite3.Error) -> IndexUnusable:
        return IndexUnusable(f"artifact cache {self._index_path}: {exc}",
                             "deleting the cache folder is safe")

    def _write_queued(self, db: sqlite3.Connection) -> None:
        """Write the queue (under the lock) in one transaction: another process sees a
        record and its blobs together, or neither. Rows of one statement go in one
        executemany (their order within the transaction does not matter). On an error
        its rows are dropped: the cache only loses entries."""
        queued, self._queued = self._queued, []
        by_sql: dict[str, list[tuple[Any, ...]]] = {}
        for sql, params in queued:
            by_sql.setdefault(sql, []).append(params)
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                for sql, rows in by_sql.items():
                    db.executemany(sql, rows)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        finally:  # in the database now, or dropped
            self._pending_actions.clear()
            self._pending_blobs.clear()

    def _write_many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """One transaction for many rows (gc)."""
        with self._index(create=False) as db:
            if db is None or not rows:
                return
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(sql, rows)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def close(self, *, wait: bool = True) -> None:
        """Mark the records used, and close the database (it is opened again if the cache
        is used again). IndexUnusable when the queued writes fail (they are dropped).
        ``wait=False``: the connection itself is closed in the background (``_close_soon``)."""
        try:
            with self._index(create=False):  # the queued writes
                self._deadline.cancel()
                if self._failed is not None:
                    failed, self._failed = self._failed, None
                    raise failed
        finally:
            self.flush()
            with self._lock:
                if self._db is not None:
                    if wait:
                        self._db.close()
                    else:
                        _close_soon(self._db)
                    self._db = None

    def compact(self) -> None:
        """Give the pages freed by removals back to the filesystem (after gc)."""
        with self._index(create=False) as db:
            if db is not None:
                # executescript: a plain execute() frees a single page per call
                db.executescript("PRAGMA incremental_vacuum;")
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- records --------------------------------------------------------------------------

    def read_action(self, key: str) -> ActionRecord | None:
        """The record of ``key``; None when there is none, or none readable."""
        try:
            data = self._lookup(self._pending_actions,
                                "SELECT record FROM actions WHERE key = ?", key)
            record = None if data is None else ActionRecord.loads(data)
        except (IndexUnusable, ValueError):  # a write will say what is wrong
            return None
        return record if record is not None and record.key == key else None

    def write_action(self, record: ActionRecord) -> None:
        """Store a record; its blobs must be stored already (a reader may use it at once)."""
        data = record.dumps()
        self._write("INSERT OR REPLACE INTO actions (key, used, record) VALUES (?, ?, ?)",
                    (record.key, time.time(), data), (self._pending_actions, record.key, data))

    def touch(self, key: str) -> None:
        """Mark a record used now (gc drops the least recently used first).

        Written by :meth:`flush` (at close, or every TOUCH_BATCH records): one transaction
        instead of one per restored target. A process killed first loses only these times.
        """
        self._touched[key] = time.time()
        if len(self._touched) >= TOUCH_BATCH:
            self.flush()

    def flush(self) -> None:
        """Write what is queued: the records' use times, and the rows of :meth:`_write`
        (another process sees them from then on)."""
        with self._lock:
            touched, self._touched = self._touched, {}
        with contextlib.suppress(IndexUnusable):  # only gc's order would suffer
            self._write_many("UPDATE actions SET used = max(used, ?) WHERE key = ?",
                             [(used, key) for key, used in touched.items()])

    def keys(self) -> list[str]:
        return [k for (k,) in self._query("SELECT key FROM actions ORDER BY key")]

    def actions(self) -> list[ActionInfo]:
        """Every record, with when it was last used and its size (for gc)."""
        found = []
        for key, used, data in self._query("SELECT key, used, record FROM actions"):
            try:
                record: ActionRecord | None = ActionRecord.loads(data)
            except ValueError:
                record = None
            if record is not None and record.key != key:
                record = None
            found.append(ActionInfo(key, used, len(data), record))
        return found

    def remove_actions(self, keys: Iterable[str]) -> None:
        """Drop records, in one transaction."""
        self._write_many("DELETE FROM actions WHERE key = ?", [(k,) for k in keys])

    # -- inline blobs ---------------------------------------------------------------------

    def inline_blob(self, digest: str) -> bytes | None:
        """The content of blob ``digest`` when it is in the database; None otherwise (a
        file blob, see :meth:`blob_path`, or no blob at all)."""
        data = self._lookup(self._pending_blobs, "SELECT data FROM blobs WHERE digest = ?",
                            digest)
        return None if data is None else bytes(data)

    def inline_size(self, digest: str) -> int | None:
        """The size of blob ``digest`` when it is in the database; None otherwise."""
        data = self._lookup(self._pending_blobs, "SELECT size FROM blobs WHERE digest = ?",
                            digest)
        return None if data is None else data if isinstance(data, int) else len(data)

    def _add_inline(self, digest: str, data: bytes) -> None:
        """Store verified content (a blob never changes: a second copy is dropped)."""
        self._write("INSERT OR IGNORE INTO blobs (digest, size, added, data) VALUES (?, ?, ?, ?)",
                    (digest, len(data), time.time(), data), (self._pending_blobs, digest, data))


def _close_soon(db: sqlite3.Connection) -> None:
    """Close ``db`` in a thread of its own. Its rows are all committed by now; closing the
    last connection also copies SQLite's log into the database and syncs both (~4 ms
    after a 55-target build, spent off the interpreter's lock), which need not hold up
    the command's record and flow.lock. Not a daemon: the process waits for it at its
    end (and a resident fork joins its threads before it reports its exit)."""
    def close() -> None:
        with contextlib.suppress(sqlite3.Error):  # committed already: only the log stays
            db.close()

    threading.Thread(target=close, name="flowmake-cache-close").start()


def _open_index(path: Path) -> sqlite3.Connection:
    """The index, opened (and made, or moved to this layout, the first time). Several
    processes may open a new cache at once: a step that answers "locked" at once (the
    switch of a new file to WAL while another process switches it, whatever the busy
    timeout: seen in 7 of 1,200 opens by 6 processes at the same instant) is tried again,
    the whole open, on a new connection."""
    db: sqlite3.Connection = retry_locked(lambda: _opened(path))
    return db


def _opened(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=BUSY_SECONDS, isolation_level=None,
                         check_same_thread=False)
    try:
        if db.execute("PRAGMA user_version").fetchone()[0] != INDEX_VERSION:
            db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # takes effect in a new file only
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        if db.execute("PRAGMA user_version").fetchone()[0] != INDEX_VERSION:
            db.execute("BEGIN IMMEDIATE")  # several processes may open a new cache at once
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version != INDEX_VERSION:
                # Version 1's rows are moved to the new tables; another layout (a newer
                # flowmake's?) is dropped: the cache is safe to lose.
                if version == 1:  # once, and as long as copying the cache's small blobs
                    print(f"flowmake: moving the artifact cache's index to its new layout "
                          f"(once): {path}", file=sys.stderr)
                for table in ("actions", "blobs"):
                    if version == 1:
                        db.execute(f"ALTER TABLE {table} RENAME TO {table}_v1")
                    db.execute(f"DROP TABLE IF EXISTS {table}")
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                if version == 1:
                    for table in ("actions", "blobs"):
                        db.execute(f"INSERT INTO {table} SELECT * FROM {table}_v1")
                        db.execute(f"DROP TABLE {table}_v1")
                db.execute(f"PRAGMA user_version = {INDEX_VERSION}")
            db.execute("COMMIT")
    except BaseException:
        db.close()
        raise
    return db
