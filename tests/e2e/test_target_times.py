"""Each target's start and end times and error, kept in the history (SPEC §8).

`log --json` gives every target line `started` and `finished` (ISO 8601 with offset) and
`error`; an interrupted build keeps a line for each target it stopped.
"""

from __future__ import annotations

import signal
import sqlite3
from datetime import datetime

FLOW = """
[targets.a]
cmd     = "sleep 0.3; echo a > ${outputs}"
outputs = ["out/a.txt"]

[targets.b]
cmd     = "sleep 0.2; cat ${inputs} > ${outputs}"
inputs  = ["out/a.txt"]
outputs = ["out/b.txt"]

[targets.side]
cmd     = "sleep 0.3; echo side > ${outputs}"
outputs = ["out/side.txt"]

[targets.bad]
cmd     = "echo about to fail; exit 3"
inputs  = ["out/a.txt"]
outputs = ["out/bad.txt"]
"""


def _targets(project, ref: str) -> dict[str, dict]:
    doc = project.json("log", ref, check=True)
    return {t["name"]: t for t in doc["runs"][0]["targets"]}


def _at(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    assert when.tzinfo is not None, text  # with its offset, like the runs' times
    return when


def test_log_json_gives_each_target_its_times_and_error(project):
    project.flow(FLOW)
    assert project.build("-k", "-j", "2", check=1) == {
        "a": "built", "b": "built", "side": "built", "bad": "failed"}
    run = project.json("log", "1", check=True)["runs"][0]
    lines = {t["name"]: t for t in run["targets"]}
    for name, line in lines.items():
        # the documented fields are all still there
        assert {"name", "status", "duration", "reasons", "output"} <= set(line), name
        started, finished = _at(line["started"]), _at(line["finished"])
        assert _at(run["started"]) <= started <= finished <= _at(run["finished"]), name
        assert (finished - started).total_seconds() >= line["duration"] - 0.05, name
    assert (_at(lines["a"]["finished"]) - _at(lines["a"]["started"])).total_seconds() >= 0.3
    # A dependent starts after its dependency ended; independent targets overlap.
    assert _at(lines["b"]["started"]) >= _at(lines["a"]["finished"])
    assert _at(lines["bad"]["started"]) >= _at(lines["a"]["finished"])
    assert _at(lines["side"]["started"]) < _at(lines["a"]["finished"])
    assert lines["bad"]["error"] == "exit code 3"
    assert all(lines[n]["error"] is None for n in ("a", "b", "side"))


def test_a_restored_target_has_its_restore_times(project):
    project.flow(FLOW)
    project.build("b")
    project.run("clean", "--all", check=True)
    assert project.build("b") == {"a": "restored", "b": "restored"}
    lines = _targets(project, "-")
    for name in ("a", "b"):
        started, finished = _at(lines[name]["started"]), _at(lines[name]["finished"])
        assert started <= finished
        # restoring is copying, not sleeping: far shorter than the build took
        assert (finished - started).total_seconds() < 0.25
    assert _at(lines["b"]["started"]) >= _at(lines["a"]["finished"])


def test_target_history_json_has_times_too(project):
    project.flow(FLOW)
    project.build("a")
    project.build("-B", "a")
    doc = project.json("log", "a", check=True)
    got = [(r["run_id"], t["started"] is not None, t["finished"] is not None)
           for r in doc["runs"] for t in r["targets"]]
    assert got == [(2, True, True), (1, True, True)]


def test_an_interrupted_build_keeps_a_line_for_each_stopped_target(project):
    project.flow("""
        [targets.a]
        cmd     = "touch started-a; sleep 30; echo a > ${outputs}"
        outputs = ["out/a.txt"]

        [targets.b]
        cmd     = "touch started-b; sleep 30; echo b > ${outputs}"
        outputs = ["out/b.txt"]
    """, cache=False)
    proc = project.popen("build", "-j", "2")
    project.wait_for(lambda: project.exists("started-a") and project.exists("started-b"),
                     timeout=20, what="a and b to start")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=20)
    assert proc.returncode == 130
    lines = _targets(project, "1")
    assert set(lines) == {"a", "b"}
    for line in lines.values():
        assert line["status"] == "failed" and line["error"] == "interrupted"
        assert _at(line["started"]) <= _at(line["finished"])
    text = project.run("log", "1", check=True).stdout
    assert "without a line here" not in text
    # after the run's header and its environment ("  python: ...", "  git: ..."): the targets
    assert sorted(line.split()[:2] for line in text.splitlines()[3:]
                  if not line.split()[0].endswith(":")) == [
        ["a", "failed"], ["b", "failed"]], text
    # Nothing of them is recorded fresh.
    assert {n: s["state"] for n, s in project.states().items()} == {"a": "stale", "b": "stale"}


def test_an_older_state_layout_is_dropped_not_misread(project):
    project.flow(FLOW)
    project.path(".flowmake").mkdir()
    db = sqlite3.connect(project.path(".flowmake/state.db"))
    db.executescript("""
        CREATE TABLE run_targets (run_id INTEGER, target TEXT, status TEXT, duration REAL,
                                  reasons TEXT, output TEXT, PRIMARY KEY (run_id, target));
        INSERT INTO run_targets VALUES (1, 'a', 'built', 1.0, '[]', 'old');
        PRAGMA user_version=2;
    """)
    db.close()
    assert project.build("a") == {"a": "built"}
    assert _targets(project, "-")["a"]["started"] is not None
