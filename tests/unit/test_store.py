"""flowmake.store.db: records, stat cache, run history and the project lock (real SQLite)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from flowmake.cli.workspace import open_store
from flowmake.store.db import Record, Store
from flowmake.store.mutex import project_lock
from flowmake.store.sqlite import SCHEMA_VERSION


def record(name: str, key: str = "k1", *, run_id: int | None = 1, outputs=None,
           parts=None) -> Record:
    return Record(name, key, json.dumps(parts or {"action": f"make {name}"}),
                  json.dumps(outputs or {f"{name}.out": "abc"}), run_id, 1234.5, 0.25)


# -- records --------------------------------------------------------------------------


def test_record_round_trip(store):
    rec = record("a", parts={"action": "x", "params": {"lr": 0.1}}, outputs={"o": "d1"})
    store.put_record(rec)
    got = store.record("a")
    assert got == rec
    assert got.parts == {"action": "x", "params": {"lr": 0.1}}
    assert got.outputs == {"o": "d1"}
    assert store.record("missing") is None


def test_records_survive_reopening(tmp_path):
    first = Store(tmp_path / ".flowmake")
    first.put_record(record("a"))
    first.close()
    second = Store(tmp_path / ".flowmake")
    try:
        assert second.record("a") == record("a")
    finally:
        second.close()


def test_put_record_replaces(store):
    store.put_record(record("a", "k1"))
    store.put_record(record("a", "k2", run_id=None))
    assert store.record("a").key == "k2"
    assert store.record("a").run_id is None
    assert list(store.records()) == ["a"]


def test_records_filtered_by_names(store):
    for name in "abc":
        store.put_record(record(name))
    assert set(store.records()) == {"a", "b", "c"}
    assert set(store.records(["a", "c", "zzz"])) == {"a", "c"}
    assert store.records([]) == {}


def test_records_named_reads_many_together_with_queued_ones_as_committed(store):
    names = [f"t{i}" for i in range(1200)]  # more than one query's 500
    for name in names:
        store.put_record(record(name), commit=False)
    store.commit()
    store.put_record(record("t7", "queued"), commit=False)  # not committed yet
    found = store.records_named([*names, "absent"])
    assert len(found) == 1200 and "absent" not in found
    assert found["t7"].key == "queued" and found["t7"] == store.record("t7")
    assert all(found[n] == store.record(n) for n in names[::97])
    assert store.records_named([]) == {}


def test_stat_entries_reads_many_together(store):
    from flowmake.model import StatEntry

    entries = {f"src/f{i}.txt": StatEntry(i, 10 * i, 100 + i, 5, f"d{i}") for i in range(700)}
    store.put_stats(entries)
    found = store.stat_entries([*entries, "src/absent.txt"])
    assert found == entries
    assert found["src/f3.txt"] == store.stat_entry("src/f3.txt")


def test_forget(store):
    for name in ["a", "b", "sweep[lr=0.1]"]:
        store.put_record(record(name))
    store.forget(["a", "sweep[lr=0.1]", "never-there"])
    assert set(store.records()) == {"b"}
    store.forget([])
    assert set(store.records()) == {"b"}


def test_record_write_invalidates_the_noop_fast_path(tmp_path):
    store = open_store(tmp_path / ".flowmake")  # as every command opens it
    marker = store.dir / "noop.marshal"
    marker.write_bytes(b"saved")
    store.put_record(record("a"))
    store.close()
    assert not marker.exists()


def test_finish_target_writes_line_and_record_together(store):
    run = store.start_run("build")
    store.finish_target(run, "a", "built", 1.5, ["never built"], "hello\n", record("a"))
    store.finish_target(run, "b", "failed", 0.5, ["input changed: x"], "boom\n", None)
    assert store.record("a") == record("a")
    assert store.record("b") is None  # a failure leaves no record
    history = store.target_history("a")
    assert history == [(run, "built", 1.5, ["never built"], "hello\n")]
    assert store.target_history("b") == [(run, "failed", 0.5, ["input changed: x"], "boom\n")]


def test_transaction_rolls_back_on_error(store):
    with pytest.raises(RuntimeError), store.transaction() as db:
        db.execute("INSERT INTO records VALUES ('x', 'k', '{}', '{}', 1, 0, 0)")
        raise RuntimeError("interrupted")
    assert store.record("x") is None
    store.put_record(record("y"))  # the connection is usable afterwards
    assert store.record("y") is not None


def test_old_schema_is_dropped(tmp_path):
    state = tmp_path / ".flowmake"
    state.mkdir()
    db = sqlite3.connect(state / "state.db")
    db.executescript("CREATE TABLE records (target TEXT, junk TEXT); PRAGMA user_version=0;")
    db.close()
    s = Store(state)
    try:
        assert s.records() == {}
        s.put_record(record("a"))
        assert s.record("a") == record("a")
        assert s.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        s.close()


# -- stat cache -----------------------------------------------------------------------


def test_stat_cache_put_and_remove(store):
    assert store.stat_cache() == {}
    store.put_stats({"a.txt": (3, 100, 7, 200, "d1"), "b.txt": (4, 101, 8, 201, "d2")})
    assert store.stat_cache() == {"a.txt": (3, 100, 7, 200, "d1"),
                                  "b.txt": (4, 101, 8, 201, "d2")}
    store.put_stats({"a.txt": (5, 102, 7, 202, "d3"), "b.txt": None})
    assert store.stat_cache() == {"a.txt": (5, 102, 7, 202, "d3")}
    store.put_stats({})
    assert store.stat_cache() == {"a.txt": (5, 102, 7, 202, "d3")}


def test_stat_cache_keeps_large_nanosecond_values(store):
    entry = (2**40, time.time_ns(), 2**62, time.time_ns(), "f" * 32)
    store.put_stats({"big": entry})
    assert store.stat_cache()["big"] == entry


# -- runs -----------------------------------------------------------------------------


def test_runs_start_and_finish(store):
    before = time.time()
    run = store.start_run("flowmake build -j 2")
    (started,) = store.runs()
    assert started.run_id == run and started.result == "running"
    assert started.finished is None and started.counts == {}
    assert started.command == "flowmake build -j 2" and started.started >= before - 1
    counts = {"built": 2, "restored": 0, "fresh": 1, "failed": 0, "skipped": 0}
    store.finish_run(run, "success", counts, keep=10)
    (done,) = store.runs()
    assert done.result == "success" and done.counts == counts
    assert done.finished >= done.started


def test_runs_newest_first_and_limited(store):
    ids = [store.start_run(f"cmd {i}") for i in range(5)]
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert [r.run_id for r in store.runs()] == ids[::-1]
    assert [r.run_id for r in store.runs(limit=2)] == ids[:-3:-1]


def test_finish_run_prunes_to_keep(store):
    ids = []
    for i in range(6):
        run = store.start_run(f"build {i}")
        store.finish_target(run, f"t{i}", "built", 0.1, [], "", None)
        store.finish_run(run, "success", {}, keep=3)
        ids.append(run)
    assert [r.run_id for r in store.runs(limit=100)] == ids[:-4:-1]
    # Target lines of pruned runs go too.
    assert store.target_history("t0") == []
    assert store.target_history("t2") == []
    assert [h[0] for h in store.target_history("t5")] == [ids[5]]


def test_a_finished_run_is_added_whole_and_prunes_to_keep(store):
    ids = [store.start_run(f"build {i}") for i in range(3)]
    before = time.time()
    counts = {"built": 0, "restored": 0, "fresh": 4, "failed": 0, "skipped": 0}
    run = store.add_finished_run("flowmake build", "success", counts, keep=2)
    assert run > ids[-1]
    newest, older = store.runs(limit=100)
    assert older.run_id == ids[-1] and newest.run_id == run
    assert newest.result == "success" and newest.counts == counts
    assert newest.command == "flowmake build" and newest.finished == newest.started >= before
    assert store.unfinished_runs() == [older]  # the added run was never left running


def test_target_history_newest_first(store):
    runs = [store.start_run("b") for _ in range(3)]
    for i, run in enumerate(runs):
        store.finish_target(run, "a", "built", float(i), [], f"out {i}", None)
    history = store.target_history("a")
    assert [h[0] for h in history] == runs[::-1]
    assert [h[4] for h in history] == ["out 2", "out 1", "out 0"]
    assert len(store.target_history("a", limit=1)) == 1


def test_run_targets(store):
    run = store.start_run("build")
    store.finish_target(run, "b", "built", 1.0, ["never built"], "out b", None)
    store.finish_target(run, "a", "fresh", 0.0, [], "", None)
    other = store.start_run("build")
    store.finish_target(other, "a", "built", 2.0, [], "", None)
    # In the order the build finished them, not by name.
    assert store.run_targets(run) == [("b", "built", 1.0, ["never built"], "out b"),
                                      ("a", "fresh", 0.0, [], "")]
    assert store.run_targets(other) == [("a", "built", 2.0, [], "")]
    assert store.run_targets(other + 1) == []


# -- the project lock -----------------------------------------------------------------

HOLDER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from flowmake.store.mutex import project_lock

    with project_lock(Path(sys.argv[1]), lambda message: print("WAIT", message, flush=True)):
        print("LOCKED", flush=True)
        sys.stdin.readline()  # hold the lock until told to go
""")


def hold_lock(state_dir: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(state_dir)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "LOCKED"
    return proc


def test_project_lock_waits_for_another_process(tmp_path):
    state = tmp_path / ".flowmake"
    holder = hold_lock(state)
    try:
        assert (state / "lock").read_text() == str(holder.pid)
        messages: list[str] = []
        acquired = threading.Event()

        def take() -> None:
            with project_lock(state, messages.append):
                acquired.set()
                assert (state / "lock").read_text() == str(os.getpid())

        thread = threading.Thread(target=take)
        thread.start()
        # The second taker waits (and says so, naming the holder) while the first holds it.
        assert not acquired.wait(0.5)
        assert len(messages) == 1
        assert f"pid {holder.pid}" in messages[0]
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert acquired.wait(10)
        thread.join(10)
        assert holder.wait(10) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_project_lock_is_released_when_the_holder_is_killed(tmp_path):
    state = tmp_path / ".flowmake"
    holder = hold_lock(state)
    messages: list[str] = []
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    started = time.monotonic()
    with project_lock(state, messages.append):
        pass
    assert time.monotonic() - started < 5


def test_project_lock_uncontended(tmp_path):
    state = tmp_path / "new" / ".flowmake"  # created when missing
    messages: list[str] = []
    with project_lock(state, messages.append):
        assert (state / "lock").read_text() == str(os.getpid())
    with project_lock(state, messages.append):  # re-entrant after release
        pass
    assert messages == []


def test_second_process_waits_while_we_hold_it(tmp_path):
    state = tmp_path / ".flowmake"
    with project_lock(state, lambda m: None):
        waiter = subprocess.Popen([sys.executable, "-c", HOLDER, str(state)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            line = waiter.stdout.readline()
            assert line.startswith("WAIT") and f"pid {os.getpid()}" in line
            time.sleep(0.3)
            assert waiter.poll() is None  # still waiting, not locked
        except BaseException:
            waiter.kill()
            raise
    try:
        assert waiter.stdout.readline().strip() == "LOCKED"
        waiter.stdin.write("\n")
        waiter.stdin.flush()
        assert waiter.wait(10) == 0
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()


def test_project_lock_without_waiting_says_whether_it_holds_it(tmp_path):
    state = tmp_path / ".flowmake"
    holder = hold_lock(state)
    try:
        started = time.monotonic()
        with project_lock(state, None) as held:
            assert held is False  # busy: told at once, not waited for
        assert time.monotonic() - started < 1
        assert (state / "lock").read_text() == str(holder.pid)  # left as the holder wrote it
    finally:
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert holder.wait(10) == 0
    with project_lock(state, None) as held:
        assert held is True
        assert (state / "lock").read_text() == str(os.getpid())


def test_data_version_changes_when_another_process_commits(tmp_path):
    state = tmp_path / ".flowmake"
    mine, other = Store(state), Store(state)
    try:
        before = mine.data_version()
        mine.start_run("flowmake status")  # our own commits do not count
        assert mine.data_version() == before
        other.start_run("flowmake build")  # another connection's (another flowmake's) do
        assert mine.data_version() != before
    finally:
        mine.close()
        other.close()


def test_a_fork_leaves_one_connection_a_database_open_and_its_log_uncopied(tmp_path):
    """In a resident fork (warm.forked) a Store's close leaves its connection to the
    process's end, so that SQLite's checkpoint is not in the command's time; one per
    database (a watch in a fork builds again and again: the one before is closed then),
    and the log keeps every commit for the next reader. Run in a fresh interpreter that
    ends by os._exit, as a fork does."""
    script = textwrap.dedent(f"""
        import os, sqlite3
        from pathlib import Path
        from flowmake import warm
        from flowmake.store import sqlite as s
        from flowmake.store.db import Record, Store
        warm.forked = True
        kept = []
        for i in range(3):
            store = Store(Path({str(tmp_path)!r}))
            store.put_record(Record(f"t{{i}}", "k", "{{}}", "{{}}", 1, 0.0, 0.0))
            store.close()
            kept.append(store.db)
        assert list(s._LEFT_OPEN.values()) == [kept[-1]], s._LEFT_OPEN
        for closed in kept[:-1]:
            try:
                closed.execute("SELECT 1")
            except sqlite3.ProgrammingError:
                continue
            raise SystemExit("an earlier connection is still open")
        os._exit(0)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    wal = tmp_path / "state.db-wal"
    assert wal.stat().st_size > 0  # not copied into state.db at a close
    db = sqlite3.connect(f"{(tmp_path / 'state.db').as_uri()}?mode=ro", uri=True)
    try:
        assert [r[0] for r in db.execute("SELECT target FROM records ORDER BY target")] == [
            "t0", "t1", "t2"]
    finally:
        db.close()
