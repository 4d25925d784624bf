"""The state's change mark (store/sqlite.py): SQLite triggers replace it at every insert,
update or delete of a record or a target line, whoever writes them (a raw connection
here, as another flowmake or a user's tool would be); a file without it gets it, and a
new value, on first use; a read-only or busy file gives None (real SQLite files)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from flowmake.store import sqlite as state_sqlite
from flowmake.store.db import Store

RECORD = ("INSERT OR REPLACE INTO records VALUES (?, 'k', '{}', '{}', 1, 1234.5, 0.25)")
LINE = ("INSERT OR REPLACE INTO run_targets (run_id, target, status, duration)"
        " VALUES (1, ?, 'built', 0.5)")


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / ".flowmake")
    yield s
    s.close()


def raw(store: Store) -> sqlite3.Connection:
    """Another connection to the same file: not flowmake's code."""
    return sqlite3.connect(store.path, isolation_level=None)


def test_the_mark_is_made_once_and_kept_while_nothing_changes(store):
    first = store.change_mark()
    assert first and len(first) == 16
    assert store.change_mark() == first
    store.close()
    again = Store(store.dir)
    try:
        assert again.change_mark() == first  # kept in the file
    finally:
        again.close()


@pytest.mark.parametrize("change", [
    (RECORD, ("a",)), ("UPDATE records SET built_at = 99.0 WHERE target = 'a'", ()),
    ("UPDATE records SET duration = 0.25 WHERE target = 'a'", ()),  # the same value
    ("DELETE FROM records WHERE target = 'a'", ()), (LINE, ("a",)),
    ("UPDATE run_targets SET status = 'failed'", ()), ("DELETE FROM run_targets", ()),
])
def test_every_change_of_a_record_or_a_line_replaces_it(store, change):
    db = raw(store)
    db.execute(RECORD, ("a",))
    db.execute(LINE, ("a",))
    before = store.change_mark()
    db.execute(*change)
    db.close()
    assert store.change_mark() != before


def test_other_tables_leave_it(store):
    before = store.change_mark()
    db = raw(store)
    db.execute("INSERT INTO runs (started, command, result, counts) VALUES (1, 'b', 'ok', '{}')")
    db.execute("INSERT INTO stat_cache VALUES ('p', 1, 2, 3, 4, 'd')")
    db.close()
    assert store.change_mark() == before


def test_a_change_through_flowmake_replaces_it(store):
    from tests.unit.test_store import record

    before = store.change_mark()
    store.put_record(record("a"))
    assert store.change_mark() != before


@pytest.mark.parametrize("damage", [
    "DROP TRIGGER mark_records_update", "DELETE FROM changes",
    "UPDATE changes SET mark = ''",
    # an older flowmake's reset to its own schema: the tables dropped (their triggers
    # with them) and made again, the changes table left as it was
    "DROP TABLE records; DROP TABLE run_targets; " + state_sqlite._SCHEMA,
])
def test_a_missing_trigger_or_mark_is_made_anew_with_a_new_value(store, damage):
    """As when a flowmake that drops the tables (another schema) wrote the file."""
    before = store.change_mark()
    db = raw(store)
    db.executescript(damage)
    db.execute(RECORD, ("a",))  # not marked, where a trigger is gone
    db.close()
    after = store.change_mark()
    assert after and after != before
    names = {r[0] for r in raw(store).execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert names.issuperset(state_sqlite._MARK_TRIGGERS)


def test_a_read_only_file_has_none(store):
    store.change_mark()
    uri = f"{store.path.resolve().as_uri()}?mode=ro"
    db = sqlite3.connect(uri, uri=True, isolation_level=None)
    assert state_sqlite.change_mark(db) is not None  # there: read
    db.close()
    fresh = Path(str(store.dir) + "-other")
    other = Store(fresh)
    other.close()
    db = sqlite3.connect(f"{(fresh / 'state.db').resolve().as_uri()}?mode=ro", uri=True,
                         isolation_level=None)
    assert state_sqlite.change_mark(db) is None  # not there, and cannot be made
    db.close()


def test_a_busy_file_has_none_at_once(store):
    writer = raw(store)
    writer.execute("BEGIN IMMEDIATE")  # a build's write
    try:
        started = time.monotonic()
        assert store.change_mark() is None
        assert time.monotonic() - started < 5
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert store.change_mark() is not None
    # the connection waits as long as before for other writes
    assert store.db.execute("PRAGMA busy_timeout").fetchone()[0] == \
        state_sqlite.BUSY_SECONDS * 1000
