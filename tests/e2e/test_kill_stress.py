"""kill -9 of flowmake at random points, each followed at once by a rebuild.

A SIGKILLed flowmake cannot stop its commands (each runs in a session of its own). The
next build must stop what the dead one left running before it runs anything itself, or
the orphan and the new command both write the same output and the interleaved file is
recorded fresh. Every command here writes its output in chunks, so an interleaving shows
as a wrong line count or order.
"""

from __future__ import annotations

import json
import random
import signal
import time

import pytest

CHUNKS = 20

# Six independent targets and one gathering them; each writes CHUNKS numbered lines, a
# 30 ms apart, after truncating its output (as `cmd > file` would).
FLOW = """
[flow]
cache = false
jobs = 3

[targets.part]
matrix = {{ n = [1, 2, 3, 4, 5, 6] }}
cmd = "echo $$$$ >> pids.txt; : > ${{outputs}}; for i in $$(seq {chunks}); do echo ${{n}}-$$i >> ${{outputs}}; sleep 0.03; done"
outputs = ["out/part-${{n}}.txt"]

[targets.all]
cmd = "echo $$$$ >> pids.txt; : > ${{outputs}}; for f in ${{inputs}}; do cat $$f >> ${{outputs}}; sleep 0.01; done"
inputs = ["out/part-1.txt", "out/part-2.txt", "out/part-3.txt", "out/part-4.txt", "out/part-5.txt", "out/part-6.txt"]
outputs = ["out/all.txt"]
"""


def expected(n: int) -> str:
    return "".join(f"{n}-{i}\n" for i in range(1, CHUNKS + 1))


def complete(project, name: str) -> bool:
    """Whether the output of ``name`` holds exactly what its command writes."""
    if name == "all":
        want = "".join(expected(n) for n in range(1, 7))
        path = "out/all.txt"
    else:
        n = int(name.split("=")[1].rstrip("]"))
        want, path = expected(n), f"out/part-{n}.txt"
    return project.exists(path) and project.read(path) == want


def wrong_but_fresh(project) -> list[str]:
    """Targets that `status` calls fresh while their output is not complete."""
    result = project.run("status", "--json")
    assert result.returncode == 0, result.stderr
    states = {t["name"]: t["state"] for t in json.loads(result.stdout)["targets"]}
    return [n for n, s in states.items() if s == "fresh" and not complete(project, n)]


def orphans_of(project) -> list[int]:
    if not project.exists("pids.txt"):
        return []
    return [int(p) for p in project.read("pids.txt").split() if project.pid_alive(int(p))]


@pytest.mark.slow
def test_kill_9_at_random_points_never_leaves_an_incomplete_output_fresh(project):
    project.flow(FLOW.format(chunks=CHUNKS))
    project.track_pid_file("pids.txt")
    rng = random.Random(20261201)
    trials, violations, left_running = 24, [], 0
    for trial in range(trials):
        if trial % 3 == 0:
            project.run("clean", "--all")  # some trials start from nothing, some mid-way
        proc = project.popen("build")
        time.sleep(rng.uniform(0.05, 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        # At once, while the orphans may still be writing:
        rebuilt = project.run("build")
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert "Traceback" not in rebuilt.stderr
        left_running += bool(orphans_of(project))
        violations += [(trial, n) for n in wrong_but_fresh(project)]
    assert violations == [], f"{len(violations)} incomplete outputs recorded fresh: {violations}"
    assert left_running == 0, f"{left_running} rebuilds left the dead build's commands running"


def test_the_next_build_stops_what_a_killed_build_left_running(project):
    project.flow("""
        [targets.slow]
        cmd = "echo $$$$ > slow.pid; echo partial > ${outputs}; touch started; sleep 30; echo complete >> ${outputs}"
        outputs = ["out/slow.txt"]
        """, cache=False)
    project.track_pid_file("slow.pid")
    proc = project.popen("build")
    project.wait_for(lambda: project.exists("started"), timeout=20, what="the command to start")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    orphan = int(project.read("slow.pid"))
    assert project.pid_alive(orphan)  # a SIGKILLed flowmake cannot stop it itself

    project.edit_flow("sleep 30", "sleep 0")
    result = project.run("build")
    assert result.returncode == 0, result.stderr
    assert not project.pid_alive(orphan)
    assert "build 1 did not finish (killed" in result.stderr
    assert "stopped 2 process(es)" in result.stderr  # sh and its sleep
    assert project.read("out/slow.txt") == "partial\ncomplete\n"


def test_a_killed_build_is_closed_as_interrupted_with_its_counts(project):
    project.flow("""
        [targets.quick]
        cmd = "echo q > ${outputs}"
        outputs = ["out/quick.txt"]

        [targets.slow]
        cmd = "touch started; sleep 30; echo s > ${outputs}"
        inputs = ["out/quick.txt"]
        outputs = ["out/slow.txt"]
        """, cache=False)
    proc = project.popen("build")
    project.wait_for(lambda: project.exists("started"), timeout=20, what="the command to start")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)

    log = json.loads(project.run("log", "--json").stdout)["runs"]
    assert log[0]["result"] == "running"  # nobody has looked yet
    project.edit_flow("sleep 30", "sleep 0")
    assert project.run("build").returncode == 0
    runs = json.loads(project.run("log", "--json").stdout)["runs"]
    killed = next(r for r in runs if r["run_id"] == log[0]["run_id"])
    assert killed["result"] == "interrupted"
    assert killed["counts"] == {"built": 1, "restored": 0, "fresh": 0, "failed": 0,
                                "skipped": 0}
