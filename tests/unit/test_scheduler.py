"""The scheduler on fakes: FakeExecutor (nothing is started) and an in-memory Store.

Real flow.toml loading and real files for inputs and outputs (the hasher reads them);
every decision the scheduler makes is checked here without a process or a database file.
"""

from __future__ import annotations

import io
import os
import pickle
import signal
from pathlib import Path

import pytest

from flowmake.config import load as config
from flowmake.errors import StateError
from flowmake.graph import build_graph
from flowmake.model import OutcomeStatus
from flowmake.outcome import Outcome, Outcomes
from flowmake.plan.check import Checker
from flowmake.plan.fingerprint import Hasher
from flowmake.report.live import RichReporter, make_reporter
from flowmake.schedule import Collaborators, Scheduler, SchedulerConfig, Summary
from flowmake.store.db import Store
from flowmake.testing import FakeExecutor, Script, interrupt_now, memory_store


def make(root: Path, flow: str, files: dict[str, str] | None = None):
    (root / "flow.toml").write_text(flow)
    for rel, text in (files or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    project = config.load(root / "flow.toml")
    return project, build_graph(project)


def run(project, graph, executor: FakeExecutor, store=None, *, jobs: int = 1,
        keep_going: bool = False, names: list[str] | None = None) -> Summary:
    store = store or memory_store()
    checker = Checker(graph, store.records(), Hasher(str(project.root)), environ={})
    run_id = store.start_run("test")
    parts = Collaborators(checker, store, lambda: executor,
                          make_reporter(io.StringIO(), no_color=True))
    config = SchedulerConfig(run_id, jobs=jobs, keep_going=keep_going)
    scheduler = Scheduler(project, graph, names or list(graph.targets), config, parts)
    return scheduler.run()


def statuses(summary: Summary) -> dict[str, str]:
    return {n: o.status for n, o in summary.outcomes.items()}


CHAIN = """
[targets.a]
cmd = "x"
outputs = ["a.txt"]

[targets.b]
cmd = "x"
inputs = ["a.txt"]
outputs = ["b.txt"]

[targets.c]
cmd = "x"
inputs = ["b.txt"]
outputs = ["c.txt"]
"""

WIDE = "".join(f'[targets.t{i}]\ncmd = "x"\noutputs = ["t{i}.txt"]\n\n' for i in range(6))


def test_dependencies_run_first(tmp_path):
    project, graph = make(tmp_path, CHAIN)
    executor = FakeExecutor()
    summary = run(project, graph, executor, jobs=4)
    assert executor.submitted == ["a", "b", "c"]
    assert statuses(summary) == {"a": "built", "b": "built", "c": "built"}
    assert summary.result == "success" and executor.shut_down


@pytest.mark.parametrize("jobs", [1, 2, 4])
def test_at_most_j_jobs_run_at_once(tmp_path, jobs):
    project, graph = make(tmp_path, WIDE)
    executor = FakeExecutor()
    summary = run(project, graph, executor, jobs=jobs)
    assert executor.most_at_once == jobs
    assert set(statuses(summary).values()) == {"built"}


def test_a_failure_stops_the_build_and_skips_the_rest(tmp_path):
    project, graph = make(tmp_path, CHAIN + WIDE)
    executor = FakeExecutor(script={"a": FakeExecutor.fails("exit code 3")})
    summary = run(project, graph, executor, jobs=1)
    found = statuses(summary)
    assert found["a"] == "failed" and summary.outcomes["a"].error == "exit code 3"
    assert found["b"] == found["c"] == "skipped"
    assert summary.outcomes["b"].error == "upstream 'a' failed"
    assert executor.submitted == ["a"]  # -j 1, no -k: nothing else started
    assert summary.result == "failed"


def test_keep_going_builds_independent_branches(tmp_path):
    project, graph = make(tmp_path, CHAIN + WIDE)
    executor = FakeExecutor(script={"a": FakeExecutor.fails("exit code 3")})
    summary = run(project, graph, executor, jobs=1, keep_going=True)
    found = statuses(summary)
    assert found["b"] == found["c"] == "skipped"  # downstream of the failure
    assert all(found[f"t{i}"] == "built" for i in range(6))
    assert summary.result == "failed"


def test_cancel_stops_running_jobs_and_records_nothing_for_them(tmp_path):
    project, graph = make(tmp_path, WIDE)
    store = memory_store()
    executor = FakeExecutor(script={"t0": Script(interrupt=True)})
    summary = run(project, graph, executor, store, jobs=2)
    assert summary.result == "interrupted"
    assert executor.cancelled
    assert statuses(summary)["t0"] == "failed"
    assert summary.outcomes["t0"].error == "interrupted"
    assert statuses(summary)["t1"] == "failed"  # running beside it: interrupted too
    assert {statuses(summary)[f"t{i}"] for i in range(2, 6)} == {"skipped"}
    assert store.records() == {}


def test_resource_capacities_bound_what_runs_together(tmp_path):
    flow = "[flow.resources]\ngpu = 1\n\n" + "".join(
        f'[targets.g{i}]\ncmd = "x"\noutputs = ["g{i}.txt"]\nresources = {{ gpu = 1 }}\n\n'
        for i in range(3)) + '[targets.free]\ncmd = "x"\noutputs = ["free.txt"]\n'
    project, graph = make(tmp_path, flow)
    executor = FakeExecutor()
    summary = run(project, graph, executor, jobs=4)
    assert executor.most_at_once == 2  # one gpu target beside the free one, never two
    assert set(statuses(summary).values()) == {"built"}


def test_early_cutoff_spares_dependents_of_an_unchanged_output(tmp_path):
    project, graph = make(tmp_path, CHAIN.replace('cmd = "x"\noutputs = ["a.txt"]',
                                                  'cmd = "x"\ninputs = ["src.txt"]\noutputs = ["a.txt"]'),
                          {"src.txt": "1\n"})
    store = memory_store()
    run(project, graph, FakeExecutor(), store)
    (tmp_path / "src.txt").write_text("2\n")  # a reruns, and writes what it wrote before
    executor = FakeExecutor()
    summary = run(project, graph, executor, store)
    assert executor.submitted == ["a"]
    assert statuses(summary) == {"a": "built", "b": "fresh", "c": "fresh"}
    # ...and a changed output does rebuild them
    (tmp_path / "src.txt").write_text("3\n")
    executor = FakeExecutor(script={"a": Script(writes={"a.txt": "new\n"})})
    summary = run(project, graph, executor, store)
    assert executor.submitted == ["a", "b"]  # b writes what it wrote before: c is spared
    assert statuses(summary) == {"a": "built", "b": "built", "c": "fresh"}


def test_a_second_build_runs_nothing(tmp_path):
    project, graph = make(tmp_path, CHAIN + WIDE)
    store = memory_store()
    run(project, graph, FakeExecutor(), store, jobs=2)
    executor = FakeExecutor()
    summary = run(project, graph, executor, store, jobs=2)
    assert executor.submitted == []
    assert set(statuses(summary).values()) == {"fresh"}


# -- Ctrl-C at each moment of a job's life (a real SIGINT, delivered by the fakes) -------
#
# Whenever it lands: a job that ended with success is recorded built (its record written),
# a job still running is reported interrupted with no record, a job never started is
# skipped, and no target ever has a record unless its outcome is built.


@pytest.fixture(autouse=False)
def ctrl_c():
    """SIGINT raises KeyboardInterrupt here, as in a flowmake process (not pytest's)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


class SignallingStore(Store):
    """An in-memory Store that delivers one Ctrl-C right after it wrote ``at``'s line
    (and record): between a job's record and its outcome."""

    def __init__(self, at: str, full_after: bool = False) -> None:
        super().__init__(Path(os.devnull), memory=True)
        self.at: str | None = at
        self.full = False
        self.full_after = full_after  # then every later write fails: a full disk

    def finish_target(self, run_id, target, *args, **kwargs) -> None:
        if self.full:
            raise StateError("state.db", "database or disk is full")
        super().finish_target(run_id, target, *args, **kwargs)
        self.full = self.full_after and target == self.at
        if target == self.at:
            self.at = None
            interrupt_now()


class SignallingCache:
    """An artifact cache that misses, and delivers one Ctrl-C as it saves ``at``'s
    outputs: after the job ended, before its record."""

    def __init__(self, at: str) -> None:
        self.at: str | None = at
        self.saved: list[str] = []

    def restore(self, step) -> str | None:
        return None

    def save(self, step, result) -> None:
        self.saved.append(step.name)
        if step.name == self.at:
            self.at = None
            interrupt_now()


def interrupted_run(project, graph, executor: FakeExecutor, store: Store, *, jobs: int,
                    restorer=None) -> Summary:
    checker = Checker(graph, store.records(), Hasher(str(project.root)), environ={})
    parts = Collaborators(checker, store, lambda: executor,
                          make_reporter(io.StringIO(), no_color=True), restorer)
    config = SchedulerConfig(store.start_run("test"), jobs=jobs)
    summary = Scheduler(project, graph, list(graph.targets), config, parts).run()
    assert summary.result == "interrupted" and executor.cancelled
    return summary


def assert_consistent(summary: Summary, executor: FakeExecutor, store: Store) -> None:
    """Built <=> recorded (with the run's line); started and not built => interrupted;
    never started => skipped."""
    records = store.records()
    lines = {line[0]: line[1] for line in store.run_targets(summary.run_id)}
    for name, outcome in summary.outcomes.items():
        assert (name in records) == (outcome.status == "built"), (name, outcome)
        if outcome.status == "built":
            assert lines[name] == "built"
            assert records[name].outputs == {f"{name}.txt": records[name].outputs[f"{name}.txt"]}
        elif name in executor.submitted:
            assert (outcome.status, outcome.error) == ("failed", "interrupted"), name
            assert lines[name] == "failed"
        else:
            assert outcome.status == "skipped", name
            assert name not in lines


def test_ctrl_c_while_a_job_is_submitted_reports_it_interrupted(tmp_path, ctrl_c):
    project, graph = make(tmp_path, WIDE)
    store = memory_store()
    executor = FakeExecutor(script={"t1": Script(signal="submit")})
    summary = interrupted_run(project, graph, executor, store, jobs=2)
    assert executor.submitted == ["t0", "t1"]
    assert statuses(summary) == {"t0": "failed", "t1": "failed", "t2": "skipped",
                                 "t3": "skipped", "t4": "skipped", "t5": "skipped"}
    assert_consistent(summary, executor, store)


def test_ctrl_c_as_a_job_ends_records_it_built(tmp_path, ctrl_c):
    project, graph = make(tmp_path, CHAIN)
    store = memory_store()
    executor = FakeExecutor(script={"a": Script(signal="finish")})
    summary = interrupted_run(project, graph, executor, store, jobs=1)
    assert statuses(summary) == {"a": "built", "b": "skipped", "c": "skipped"}
    assert_consistent(summary, executor, store)


def test_ctrl_c_between_a_job_ending_and_its_record_records_it_built(tmp_path, ctrl_c):
    project, graph = make(tmp_path, WIDE)
    store = memory_store()
    cache = SignallingCache("t0")
    executor = FakeExecutor()
    summary = interrupted_run(project, graph, executor, store, jobs=2, restorer=cache)
    # -j 2: t0 and t1 ran; t0 ended and t2 took its slot before t0's bookkeeping; the
    # Ctrl-C came while t0's outputs were being saved, before its record
    assert statuses(summary) == {"t0": "built", "t1": "failed", "t2": "failed",
                                 "t3": "skipped", "t4": "skipped", "t5": "skipped"}
    assert_consistent(summary, executor, store)


def test_ctrl_c_between_a_record_and_its_outcome_reports_it_built(tmp_path, ctrl_c):
    project, graph = make(tmp_path, WIDE)
    store = SignallingStore("t0")
    executor = FakeExecutor()
    summary = interrupted_run(project, graph, executor, store, jobs=2)
    assert statuses(summary)["t0"] == "built"
    assert_consistent(summary, executor, store)


@pytest.mark.parametrize("where", ["record", "finish"])
def test_ctrl_c_when_several_jobs_end_at_once(tmp_path, ctrl_c, where):
    """Three jobs end together; the Ctrl-C lands as the first is recorded (the other two
    ended but are not recorded yet), or as the first ends (the others still run)."""
    project, graph = make(tmp_path, WIDE)
    store = SignallingStore("t0") if where == "record" else memory_store()
    script = {"t0": Script(signal="finish")} if where == "finish" else {}
    executor = FakeExecutor(script=script, batch=3)
    summary = interrupted_run(project, graph, executor, store, jobs=3)
    found = statuses(summary)
    if where == "record":  # t3..t5 took the freed slots before the bookkeeping
        assert found == {"t0": "built", "t1": "built", "t2": "built",
                         "t3": "failed", "t4": "failed", "t5": "failed"}
    else:
        assert found == {"t0": "built", "t1": "failed", "t2": "failed",
                         "t3": "skipped", "t4": "skipped", "t5": "skipped"}
    assert_consistent(summary, executor, store)


def test_ctrl_c_with_a_full_disk_still_ends_the_build_as_interrupted(tmp_path, ctrl_c):
    """The jobs that ended cannot be recorded after the Ctrl-C: each is reported
    interrupted (not recorded), and the build still ends as interrupted."""
    project, graph = make(tmp_path, WIDE)
    store = SignallingStore("t0", full_after=True)
    executor = FakeExecutor(batch=2)
    summary = interrupted_run(project, graph, executor, store, jobs=2)
    assert statuses(summary) == {"t0": "built", "t1": "failed", "t2": "failed",
                                 "t3": "failed", "t4": "skipped", "t5": "skipped"}
    assert set(store.records()) == {"t0"}
    assert all(summary.outcomes[n].error == "interrupted" for n in ("t1", "t2", "t3"))


def test_trusted_targets_are_fresh_without_a_check_and_keep_their_place(tmp_path):
    # a cone build (cli/cone.py): the scheduler steps only through the cone; the trusted
    # targets are fresh, reported, and in the summary in the graph's order as before
    project, graph = make(tmp_path, CHAIN + WIDE)
    store = memory_store()
    run(project, graph, FakeExecutor(), store, jobs=2)
    checker = Checker(graph, store.records(), Hasher(str(project.root)), environ={})
    checked: list[str] = []
    check = checker.check
    checker.check = lambda target, *a: checked.append(target.name) or check(target, *a)
    (tmp_path / "b.txt").write_text("changed")  # c is stale, a and b are trusted
    out, events = io.StringIO(), []
    trusted = frozenset(graph.targets) - {"c"}
    parts = Collaborators(checker, store, FakeExecutor, make_reporter(out, no_color=True),
                          on_event=lambda name, o: events.append((name, o.name)), trusted=trusted)
    scheduler = Scheduler(project, graph, list(graph.targets),
                          SchedulerConfig(store.start_run("test"), jobs=2), parts)
    summary = scheduler.run()
    assert checked == ["c"]
    assert list(summary.outcomes) == graph.order(list(graph.targets))
    assert statuses(summary) == {n: "built" if n == "c" else "fresh" for n in graph.targets}
    assert sorted(n for e, n in events if e == "target_finish") == sorted(graph.targets)
    assert summary.counts()["fresh"] == len(trusted)


def test_trusted_outcomes_are_made_only_when_asked_for(tmp_path):
    # at 10,000 targets an Outcome each for the trusted ones cost more than the cone's
    # check: the summary holds the stepped ones, and answers for the rest on demand
    project, graph = make(tmp_path, CHAIN + WIDE)
    store = memory_store()
    run(project, graph, FakeExecutor(), store, jobs=2)
    checker = Checker(graph, store.records(), Hasher(str(project.root)), environ={})
    (tmp_path / "b.txt").write_text("changed")
    out = io.StringIO()
    trusted = frozenset(graph.targets) - {"c"}
    parts = Collaborators(checker, store, FakeExecutor, make_reporter(out, no_color=True),
                          trusted=trusted)
    summary = Scheduler(project, graph, list(graph.targets),
                        SchedulerConfig(store.start_run("test"), jobs=2), parts).run()
    outcomes = summary.outcomes
    assert isinstance(outcomes, Outcomes)
    assert list(outcomes.stepped) == ["c"]  # no Outcome made for a trusted target
    assert len(outcomes) == len(graph.targets) and "a" in outcomes and "nope" not in outcomes
    assert outcomes["a"] == Outcome("a", OutcomeStatus.FRESH)
    with pytest.raises(KeyError):
        outcomes["nope"]
    assert [t["name"] for t in summary.to_json()["targets"]] == graph.order()
    assert summary.counts() == {**dict.fromkeys(map(str, OutcomeStatus), 0),
                                "built": 1, "fresh": len(trusted)}
    assert "FAILED" not in out.getvalue()
    assert dict(pickle.loads(pickle.dumps(summary)).outcomes) == dict(outcomes)  # the API's


def test_the_live_view_counts_the_trusted_targets_done() -> None:
    reporter = RichReporter(io.StringIO())
    reporter.build_start(5, 2)
    reporter.targets_fresh(frozenset({"a", "b", "c"}))
    assert (reporter.done, reporter.total) == (3, 5)
    reporter.live.stop()


def test_verbose_plain_lines_list_each_trusted_target() -> None:
    out = io.StringIO()
    reporter = make_reporter(out, no_color=True, verbose=True)
    reporter.targets_fresh(frozenset({"b", "a"}))
    assert out.getvalue().splitlines() == ["fresh    a", "fresh    b"]
