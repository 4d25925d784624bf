"""The scheduler on fakes: FakeExecutor (nothing is started) and an in-memory Store.

Real flow.toml loading and real files for inputs and outputs (the hasher reads them);
every decision the scheduler makes is checked here without a process or a database file.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from flowmake.config import load as config
from flowmake.graph import build_graph
from flowmake.plan.check import Checker
from flowmake.plan.fingerprint import Hasher
from flowmake.report.live import make_reporter
from flowmake.schedule import Collaborators, Scheduler, SchedulerConfig, Summary
from flowmake.testing import FakeExecutor, Script, memory_store


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
