"""The state's change log (store/sqlite.py): SQLite triggers count every insert, update or
delete of a record or a target line and note each target's latest change, whoever writes
them (a raw connection here, as another flowmake or a user's tool would be); a file
without it gets it, and a new epoch, on first use; a read-only or busy file gives None
(real SQLite files)."""

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


def test_the_log_is_made_once_and_kept_while_nothing_changes(store):
    first = store.change_log()
    assert first is not None and len(first[0]) == 16 and first[1] == 0
    assert store.change_log() == first
    store.close()
    again = Store(store.dir)
    try:
        assert again.change_log() == first  # kept in the file
    finally:
        again.close()


@pytest.mark.parametrize(("change", "names"), [
    ((RECORD, ("a",)), {"a"}), ((RECORD, ("new",)), {"new"}),
    (("UPDATE records SET built_at = 99.0 WHERE target = 'a'", ()), {"a"}),
    (("UPDATE records SET duration = 0.25 WHERE target = 'a'", ()), {"a"}),  # same value
    (("UPDATE records SET target = 'renamed' WHERE target = 'a'", ()), {"a", "renamed"}),
    (("DELETE FROM records WHERE target = 'a'", ()), {"a"}), ((LINE, ("b",)), {"b"}),
    (("UPDATE run_targets SET status = 'failed'", ()), {"a", "b"}),
    (("DELETE FROM run_targets", ()), {"a", "b"}),
    # an outer conflict clause overrides a trigger's own: the log's never meet one
    (("INSERT OR IGNORE INTO records VALUES ('c', 'k', '{}', '{}', 1, 1.0, 0.1)", ()),
     {"c"}),
    (("INSERT OR FAIL INTO run_targets (run_id, target) VALUES (2, 'a')", ()), {"a"}),
    (("INSERT OR ABORT INTO run_targets (run_id, target) VALUES (3, 'a')", ()), {"a"}),
    (("INSERT OR ROLLBACK INTO run_targets (run_id, target) VALUES (4, 'a')", ()), {"a"}),
    (("UPDATE OR IGNORE records SET duration = 1.5 WHERE target = 'a'", ()), {"a"}),
    (("UPDATE OR FAIL run_targets SET status = 'x' WHERE target = 'b'", ()), {"b"}),
    (("INSERT INTO run_targets (run_id, target) VALUES (5, NULL)", ()), {""}),
])
def test_every_change_of_a_record_or_a_line_is_counted_with_its_target(store, change, names):
    db = raw(store)
    db.execute(RECORD, ("a",))
    db.execute(LINE, ("a",))
    db.execute(LINE, ("b",))
    epoch, before = store.change_log() or ("", 0)
    db.execute(RECORD, ("a",))  # 'a' is in the log already: its entry is moved on
    epoch, before = store.change_log() or ("", 0)
    db.execute(*change)
    db.close()
    found = store.change_log()
    assert found is not None and found[0] == epoch and found[1] > before
    assert set(store.changed_since(before)) == names
    assert set(store.changed_since(found[1])) == set()


def test_other_tables_and_ignored_writes_leave_it(store):
    db = raw(store)
    db.execute(RECORD, ("a",))
    before = store.change_log()
    db.execute("INSERT INTO runs (started, command, result, counts) VALUES (1, 'b', 'ok', '{}')")
    db.execute("INSERT INTO stat_cache VALUES ('p', 1, 2, 3, 4, 'd')")
    db.execute("INSERT OR IGNORE INTO records VALUES ('a', 'k2', '{}', '{}', 1, 1.0, 0.1)")
    db.close()
    assert store.change_log() == before


def test_a_change_through_flowmake_is_counted(store):
    from tests.unit.test_store import record

    epoch, before = store.change_log() or ("", 0)
    store.put_record(record("a"))
    assert store.change_log() == (epoch, before + 1)
    assert store.changed_since(before) == ["a"]


@pytest.mark.parametrize("damage", [
    "DROP TRIGGER log_records_update", "DELETE FROM change_log",
    "UPDATE change_log SET epoch = ''", "DROP TABLE changed_targets",
    # an older flowmake's reset to its own schema: the tables dropped (their triggers
    # with them) and made again, the log's tables left as they were
    "DROP TABLE records; DROP TABLE run_targets; " + state_sqlite._SCHEMA,
])
def test_a_missing_trigger_or_log_is_made_anew_in_a_new_epoch(store, damage):
    """As when a flowmake that drops the tables (another schema) wrote the file."""
    before = store.change_log()
    db = raw(store)
    db.executescript(damage)
    if "changed_targets" not in damage:
        db.execute(RECORD, ("a",))  # not counted, where a trigger is gone
    db.close()
    after = store.change_log()
    assert after is not None and before is not None and after[0] != before[0]
    names = {r[0] for r in raw(store).execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert names.issuperset(state_sqlite._LOG_TRIGGERS)


def test_an_earlier_change_marks_triggers_are_replaced(store):
    """The change mark of the flowmake before the log: its triggers go, its table stays
    (a flowmake of that version makes its triggers again and finds it)."""
    db = raw(store)
    db.executescript(
        "CREATE TABLE changes (mark BLOB NOT NULL); INSERT INTO changes VALUES (x'00');"
        "CREATE TRIGGER mark_records_insert AFTER INSERT ON records"
        " BEGIN UPDATE changes SET mark = randomblob(8); END")
    store.change_log()
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    assert "mark_records_insert" not in names and "changes" in names
    db.close()


def test_a_read_only_file_has_none(store):
    store.change_log()
    uri = f"{store.path.resolve().as_uri()}?mode=ro"
    db = sqlite3.connect(uri, uri=True, isolation_level=None)
    assert state_sqlite.change_log(db) is not None  # there: read
    db.close()
    fresh = Path(str(store.dir) + "-other")
    other = Store(fresh)
    other.close()
    db = sqlite3.connect(f"{(fresh / 'state.db').resolve().as_uri()}?mode=ro", uri=True,
                         isolation_level=None)
    assert state_sqlite.change_log(db) is None  # not there, and cannot be made
    db.close()


def test_a_busy_file_has_none_at_once(store):
    writer = raw(store)
    writer.execute("BEGIN IMMEDIATE")  # a build's write
    try:
        started = time.monotonic()
        assert store.change_log() is None
        assert time.monotonic() - started < 5
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert store.change_log() is not None
    # the connection waits as long as before for other writes
    assert store.db.execute("PRAGMA busy_timeout").fetchone()[0] == \
        state_sqlite.BUSY_SECONDS * 1000
