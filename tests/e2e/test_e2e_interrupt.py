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


# How long to let flowmake settle after the command started, before signalling it. None:
# a signal that lands between the command's start and its registration with the executor
# still kills it (CommandRunner._once checks for a cancel once it has registered).
SETTLE = 0.0


def started(project, proc, settle=SETTLE):
    """Wait for the slow command to run (its marker file), failing fast if flowmake died."""
    def ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"flowmake ended early ({proc.returncode}):\n{out}\n{err}")
        return project.exists("started")

    project.wait_for(ready, timeout=20, what="the slow target to start")
    project.path("started").unlink()
    time.sleep(settle)


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
    started(slow, proc, settle=0)
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
    started(slow, proc, settle=0)
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


GATE = """
[targets.gate]
cmd = "touch started; n=0; while [ ! -e go ] && [ $$n -lt 400 ]; do sleep 0.05; n=$$((n+1)); done; echo done > ${outputs}"
outputs = ["out/gate.txt"]

[targets.after]
cmd = "cat ${inputs} > ${outputs}"
inputs = ["out/gate.txt"]
outputs = ["out/after.txt"]
"""


def test_a_second_build_waits_for_the_first(project):
    project.flow(GATE, cache=False)
    first = project.popen("build", "--json")
    started(project, first, settle=0)
    log = project.path("second.err")
    second = project.popen("build", "--json", stderr_to=log)
    # The second says that it waits, and does wait: the first is held until then.
    project.wait_for(lambda: "waiting" in log.read_text(), timeout=20,
                     what="the second build to say it waits")
    assert second.poll() is None
    project.write("go", "")
    out1, err1 = first.communicate(timeout=30)
    out2, _ = second.communicate(timeout=30)
    assert first.returncode == 0, err1
    assert second.returncode == 0, log.read_text()
    one = {t["name"]: t["status"] for t in json.loads(out1)["targets"]}
    two = {t["name"]: t["status"] for t in json.loads(out2)["targets"]}
    assert one == {"gate": "built", "after": "built"}
    assert two == {"gate": "fresh", "after": "fresh"}  # it saw the first build's records
    assert project.read("out/after.txt") == "done\n"
    assert project.run("status", "--check").returncode == 0


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


def _hold_the_lock(project):
    """Start a build that holds the project lock (the slow target sleeps 30 s), and a
    second build, with --json, that waits for it; return both once the second waits."""
    holder = project.popen("build")
    started(project, holder)
    log = project.path("waiter.err")
    waiter = project.popen("build", "--json", stderr_to=log)
    project.wait_for(lambda: "waiting" in log.read_text(), timeout=20,
                     what="the second build to wait for the lock")
    return holder, waiter, log


def _release(holder):
    holder.send_signal(signal.SIGTERM)
    holder.communicate(timeout=15)
    assert holder.returncode == 130


def test_sigint_while_waiting_for_the_lock(slow):
    holder, waiter, log = _hold_the_lock(slow)
    waiter.send_signal(signal.SIGINT)
    waiter.communicate(timeout=15)
    assert waiter.returncode == 130
    assert "Traceback" not in log.read_text()
    assert holder.poll() is None, "interrupting the waiting build must not stop the first"
    _release(holder)


def test_sigint_while_waiting_for_the_lock_still_prints_the_json_document(slow):
    holder, waiter, _ = _hold_the_lock(slow)
    waiter.send_signal(signal.SIGINT)
    out, _ = waiter.communicate(timeout=15)
    _release(holder)
    assert waiter.returncode == 130
    assert json.loads(out)["result"] == "interrupted"


def test_sigterm_while_waiting_for_the_lock_is_exit_130(slow):
    holder, waiter, log = _hold_the_lock(slow)
    waiter.send_signal(signal.SIGTERM)
    waiter.communicate(timeout=15)
    _release(holder)
    assert waiter.returncode == 130
    assert "interrupted" in log.read_text()
