"""The state store's queue of per-target rows (store/sqlite.py), on real SQLite files.

A target's line and record are queued and committed with other targets' rows: the
tests look through a second connection (what another flowmake, or the next build after
a SIGKILL, would see), and make a commit fail with a real SQLite error (a trigger).
"""

from __future__ import annotations

import io
import json
import sqlite3
import time
from pathlib import Path

import pytest

from flowmake.config import load as config
from flowmake.errors import StateError
from flowmake.graph import build_graph
from flowmake.plan.check import Checker
from flowmake.plan.fingerprint import Hasher
from flowmake.report.live import make_reporter
from flowmake.schedule import Collaborators, Scheduler, SchedulerConfig
from flowmake.store.db import Record, Store
from flowmake.store.sqlite import WRITE_BATCH, WRITE_SECONDS
from flowmake.testing import FakeExecutor, Script


def record(name: str, run_id: int = 1) -> Record:
    return Record(name, "k", json.dumps({"action": name}), json.dumps({f"{name}.out": "d"}),
                  run_id, 1234.5, 0.25)


def seen(store: Store) -> tuple[set[str], set[str]]:
    """The records and the run lines another connection sees (committed only)."""
    other = sqlite3.connect(store.path)
    try:
        records = {r[0] for r in other.execute("SELECT target FROM records")}
        lines = {r[0] for r in other.execute("SELECT target FROM run_targets")}
    finally:
        other.close()
    return records, lines


def queue_built(store: Store, run: int, *names: str) -> None:
    for name in names:
        store.finish_target(run, name, "built", 0.1, [], "", record(name, run), commit=False)


def test_queued_rows_are_committed_together_by_commit(store):
    run = store.start_run("build")
    queue_built(store, run, "a", "b")
    assert seen(store) == (set(), set())  # a SIGKILL now loses both (they are built again)
    assert store.record("a") == record("a", run)  # the store itself answers a queued record
    store.commit()
    assert seen(store) == ({"a", "b"}, {"a", "b"})


def test_any_other_call_commits_the_queue_first(store):
    run = store.start_run("build")
    queue_built(store, run, "a")
    assert [line[0] for line in store.run_targets(run)] == ["a"]  # a read sees it
    assert seen(store) == ({"a"}, {"a"})
    queue_built(store, run, "b")
    store.forget(["b"])  # after the queued record, not before it
    assert store.record("b") is None
    assert seen(store) == ({"a"}, {"a", "b"})


def test_the_timer_commits_a_queued_row_without_another_call(store):
    run = store.start_run("build")
    queue_built(store, run, "a")
    deadline = time.monotonic() + WRITE_SECONDS + 5
    while seen(store) != ({"a"}, {"a"}) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen(store) == ({"a"}, {"a"})


def test_a_full_batch_is_committed_at_once(store):
    run = store.start_run("build")
    queue_built(store, run, *(f"t{i}" for i in range(WRITE_BATCH // 2)))  # two rows each
    records, lines = seen(store)
    assert len(records) + len(lines) == WRITE_BATCH


def test_close_commits_the_queue(tmp_path):
    store = Store(tmp_path / ".flowmake")
    run = store.start_run("build")
    queue_built(store, run, "a")
    store.close()
    again = Store(tmp_path / ".flowmake")
    try:
        assert again.record("a") == record("a", run)
    finally:
        again.close()


def refuse_records(store: Store) -> sqlite3.Connection:
    """Another connection with a trigger that makes every insert of a record fail."""
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("CREATE TRIGGER refuse BEFORE INSERT ON records"
                  " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
    return other


def test_a_failed_commit_keeps_the_rows_and_raises_until_they_are_committed(store):
    run = store.start_run("build")
    other = refuse_records(store)
    queue_built(store, run, "a")
    with pytest.raises(StateError, match="refused by the test"):
        store.commit()
    assert seen(store) == (set(), set())  # nothing half: the line went with the record
    with pytest.raises(StateError):  # still queued: the next call says so again
        store.runs()
    other.execute("DROP TRIGGER refuse")
    other.close()
    store.commit()
    assert seen(store) == ({"a"}, {"a"})


def test_a_commit_the_timer_could_not_make_is_raised_by_the_next_one(store):
    run = store.start_run("build")
    other = refuse_records(store)
    queue_built(store, run, "a")
    time.sleep(WRITE_SECONDS + 0.5)  # the timer tried, and failed
    with pytest.raises(StateError, match="refused by the test"):
        store.commit()
    other.execute("DROP TRIGGER refuse")
    other.close()
    store.close()  # commits what is still queued
    assert seen(store) == ({"a"}, {"a"})


def make(root: Path, flow: str):
    (root / "flow.toml").write_text(flow)
    project = config.load(root / "flow.toml")
    return project, build_graph(project)


WIDE = "".join(f'[targets.t{i}]\ncmd = "x"\noutputs = ["t{i}.txt"]\n\n' for i in range(600))


class CheckingReporter:
    """A quiet reporter that, as the build says it is done, looks at what another
    connection sees."""

    def __init__(self, store: Store) -> None:
        self.inner = make_reporter(io.StringIO(), no_color=True)
        self.store = store
        self.at_finish: tuple[set[str], set[str]] | None = None

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def build_finish(self, summary) -> None:
        self.at_finish = seen(self.store)
        self.inner.build_finish(summary)


def schedule(project, graph, store: Store, executor: FakeExecutor, reporter=None):
    """Every target built by ``executor`` at -j2, recorded in ``store``."""
    reporter = reporter or make_reporter(io.StringIO(), no_color=True)
    checker = Checker(graph, store.records(), Hasher(str(project.root)), environ={})
    parts = Collaborators(checker, store, lambda: executor, reporter)
    config = SchedulerConfig(store.start_run("test"), jobs=2)
    return Scheduler(project, graph, list(graph.targets), config, parts).run()


def test_a_wide_build_commits_in_a_few_transactions_and_all_before_it_ends(tmp_path: Path):
    project, graph = make(tmp_path, WIDE)
    store = Store(tmp_path / ".flowmake")
    begins: list[str] = []
    store.db.set_trace_callback(lambda sql: begins.append(sql) if sql.startswith("BEGIN") else None)
    try:
        reporter = CheckingReporter(store)
        summary = schedule(project, graph, store, FakeExecutor(2), reporter)
        assert summary.result == "success"
        # was one transaction per target (600); now one per WRITE_BATCH rows or timer tick
        assert len(begins) <= 10, len(begins)
        assert reporter.at_finish == (set(graph.targets), set(graph.targets))
    finally:
        store.close()


CHAIN = "".join(f'[targets.c{i}]\ncmd = "x"\noutputs = ["c{i}.txt"]\n'
                + (f'inputs = ["c{i - 1}.txt"]\n' if i else "") + "\n" for i in range(5))


def test_a_job_starts_only_once_its_upstreams_records_are_committed(tmp_path: Path):
    """A kill -9 while a job runs keeps the records of what it is built from (the queue
    alone would lose up to WRITE_SECONDS of them: tests/e2e/test_e2e_interrupt.py's kill -9
    saw `quick` stale after its dependent started)."""
    project, graph = make(tmp_path, CHAIN)
    store = Store(tmp_path / ".flowmake")
    committed_at_submit: dict[str, set[str]] = {}

    def looking(job):  # called as the job is submitted (and again as it finishes)
        committed_at_submit.setdefault(job.name, seen(store)[0])
        return Script()

    try:
        summary = schedule(project, graph, store,
                           FakeExecutor(2, script=dict.fromkeys(graph.targets, looking)))
        assert summary.result == "success"
        for i in range(1, 5):
            assert f"c{i - 1}" in committed_at_submit[f"c{i}"], committed_at_submit
    finally:
        store.close()

