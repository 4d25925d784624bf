"""`build --no-record` (for hooks): the build is kept out of `log`'s history, while what
it builds is recorded (records, flow.lock, the artifact cache) as usual."""

from __future__ import annotations

import os
import time

FLOW = """
[flow]
history = 2

[params]
n = 1

[targets.a]
cmd     = "echo ${params.n} > ${outputs}"
outputs = ["out/a.txt"]

[targets.b]
cmd     = "cat ${inputs} > ${outputs}"
inputs  = ["out/a.txt"]
outputs = ["out/b.txt"]
"""


def run_ids(project) -> list[int]:
    return [r["run_id"] for r in project.json("log", check=True)["runs"]]


def test_what_it_builds_is_recorded_but_the_run_is_not_in_the_history(project):
    project.flow(FLOW)
    doc = project.json("build", "--no-record", check=True)
    assert doc["run_id"] is None and doc["result"] == "success"
    assert {t["name"]: t["status"] for t in doc["targets"]} == {"a": "built", "b": "built"}
    assert run_ids(project) == []
    assert project.run("log", "a", check=True).stdout.startswith("a: no run recorded")
    assert {n: s["state"] for n, s in project.states().items()} == {"a": "fresh", "b": "fresh"}
    assert "\n[targets.b]\n" in project.read("flow.lock")
    # The next build has nothing to do; one kept in the history says so.
    assert project.build() == {"a": "fresh", "b": "fresh"}
    assert run_ids(project) == [2]
    # The summary line says where the run went.
    out = project.run("build", "--no-record", check=True).stdout
    assert out.rstrip().endswith("(not kept in the history)")


def test_a_no_op_from_the_fast_path_is_not_kept_either(project):
    project.flow(FLOW)
    project.build()
    past = time.time() - 10  # nothing "racy" (just written): the fast path may be saved
    for path in [project.path("flow.toml"), *project.path("out").iterdir()]:
        os.utime(path, (past, past))
    project.build()  # all fresh: the fast path's answer is saved
    assert project.exists(".flowmake/noop.marshal")
    assert run_ids(project) == [2, 1]
    result = project.run("build", "--no-record", "-v", check=True)
    assert "no-op fast path" in result.stderr
    assert run_ids(project) == [2, 1]
    assert project.json("build", "--no-record", check=True)["run_id"] is None
    assert run_ids(project) == [2, 1]


def test_a_failed_build_is_kept_out_too_and_still_fails(project):
    project.flow(FLOW + '\n[targets.bad]\ncmd = "exit 4"\noutputs = ["out/bad.txt"]\n')
    result = project.run("build", "--no-record", "-k")
    assert result.returncode == 1 and "FAILED   bad" in result.stdout
    assert run_ids(project) == []
    assert project.states()["a"]["state"] == "fresh"


def test_the_history_keeps_its_newest_builds_counted_not_by_id(project):
    project.flow(FLOW)
    project.build()
    project.build("-B")
    for _ in range(3):  # run ids 3, 4, 5 are taken and not kept
        project.build("-B", "--no-record")
    assert run_ids(project) == [2, 1]
    project.build("-p", "n=2")
    assert run_ids(project) == [6, 2]  # history = 2: the newest two builds kept
    lines = project.json("log", "2", check=True)["runs"][0]["targets"]
    assert [t["name"] for t in lines] == ["a", "b"]  # and their target lines
