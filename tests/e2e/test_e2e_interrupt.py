"""Interrupted, killed and concurrent builds: the state on disk stays right.

The slow target writes its shell's pid and a marker first, so the test knows when it runs
(and can clean up after a kill -9, which leaves the command's process group behind).
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

SLOW = """
[targets.quick]
cmd = "echo q > ${outputs}"
outputs = ["out/quick.txt"]

[targets.slow]
cmd = "echo $$$$ > slow.pid; echo partial > ${outputs}; touch started; sleep $$(cat delay.txt); echo complete >> ${outputs}"
inputs = ["out/quick.txt"]
outputs = ["out/slow.txt"]
"""


@pytest.fixture
def slow(project):
    project.flow(SLOW, {"delay.txt": "30\n"}, cache=False)
    project.track_pid_file("slow.pid")
    return project


def started(project, proc):
    """Wait for the slow command to run (its marker file), failing fast if flowmake died."""
    def ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"flowmake ended early ({proc.returncode}):\n{out}\n{err}")
        return project.exists("started")

    project.wait_for(ready, timeout=20, what="the slow target to start")
    project.path("started").unlink()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_the_build_and_records_nothing_half_done(slow, sig):
    proc = slow.popen("build", "--json")
    started(slow, proc)
    shell = int(slow.read("slow.pid"))
    sent = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=15)
    took = time.monotonic() - sent
    assert proc.returncode == 130, err
    assert took < 6, f"flowmake took {took:.1f}s to stop"
    doc = json.loads(out)
    assert doc["result"] == "interrupted"
    statuses = {t["name"]: t["status"] for t in doc["targets"]}
    assert statuses["quick"] == "built"
    assert statuses["slow"] not in ("built", "fresh")
    assert "Traceback" not in err
    # The command's process group went with it.
    slow.wait_for(lambda: not slow.pid_alive(shell), timeout=5, what="the command to die")
    states = slow.states()
    assert states["slow"]["state"] == "stale"
    assert states["quick"]["state"] == "fresh"
    assert slow.read("out/slow.txt") == "partial\n"

    slow.write("delay.txt", "0\n")
    assert slow.build() == {"quick": "fresh", "slow": "built"}
    assert slow.read("out/slow.txt") == "partial\ncomplete\n"


def test_sigint_without_json(slow):
    proc = slow.popen("build")
    started(slow, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 130
    assert "interrupted" in out + err
    assert "Traceback" not in err


def test_kill_9_mid_build_then_the_next_build_recovers(slow):
    proc = slow.popen("build")
    started(slow, proc)
    proc.kill()
    proc.wait(timeout=10)
    # A SIGKILLed flowmake cannot stop its command; do it for it (its own process group).
    os.killpg(int(slow.read("slow.pid")), signal.SIGKILL)
    assert slow.read("out/slow.txt") == "partial\n"

    states = slow.states()
    assert states["quick"]["state"] == "fresh"  # finished before the kill: kept
    assert states["slow"]["state"] == "stale"
    slow.write("delay.txt", "0\n")
    assert slow.build() == {"quick": "fresh", "slow": "built"}
    assert slow.read("out/slow.txt") == "partial\ncomplete\n"
    assert slow.run("status", "--check").returncode == 0


def test_kill_9_during_a_rebuild_leaves_the_old_record_unable_to_pass_as_fresh(slow):
    slow.write("delay.txt", "0\n")
    slow.build()
    assert slow.read("out/slow.txt") == "partial\ncomplete\n"

    slow.write("delay.txt", "30\n")
    slow.path("started").unlink()  # the marker of the first build
    proc = slow.popen("build", "-B", "slow")
    started(slow, proc)
    proc.kill()
    proc.wait(timeout=10)
    os.killpg(int(slow.read("slow.pid")), signal.SIGKILL)
    assert slow.read("out/slow.txt") == "partial\n"  # half-written by the killed build

    states = slow.states()
    assert states["slow"]["state"] == "stale"
    assert "output modified: out/slow.txt" in states["slow"]["reasons"]
    slow.write("delay.txt", "0\n")
    assert slow.build()["slow"] == "built"
    assert slow.read("out/slow.txt") == "partial\ncomplete\n"


def test_a_second_build_waits_for_the_first(slow):
    slow.write("delay.txt", "2\n")
    first = slow.popen("build", "--json")
    started(slow, first)
    second = slow.popen("build", "--json")
    out2, err2 = second.communicate(timeout=60)
    out1, err1 = first.communicate(timeout=60)
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    assert "waiting" in err2
    one = {t["name"]: t["status"] for t in json.loads(out1)["targets"]}
    two = {t["name"]: t["status"] for t in json.loads(out2)["targets"]}
    assert one == {"quick": "built", "slow": "built"}
    assert two == {"quick": "fresh", "slow": "fresh"}  # it saw the first build's records
    assert slow.read("out/slow.txt") == "partial\ncomplete\n"
    assert slow.run("status", "--check").returncode == 0


def test_status_and_list_work_while_a_build_holds_the_lock(slow):
    build = slow.popen("build")
    started(slow, build)
    t0 = time.monotonic()
    states = slow.states()
    assert time.monotonic() - t0 < 10
    assert states["quick"]["state"] == "fresh"
    assert states["slow"]["state"] == "stale"
    assert slow.run("list", check=True).stdout.count("cmd") == 2
    assert build.poll() is None, "the build should still be running"
    build.send_signal(signal.SIGTERM)
    build.communicate(timeout=15)
    assert build.returncode == 130
