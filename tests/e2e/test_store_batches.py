"""The state store commits targets' records in batches (store/sqlite.py): a build killed
with SIGKILL loses at most the records of the targets it finished in its last
WRITE_SECONDS, and never one of a target that was not complete.

Here a slow target holds the only job slot while another waits for it, so the scheduler
has work queued and does not commit on its own: only the queue's timer can have
committed the quick targets' records by the time flowmake is killed.
"""

from __future__ import annotations

import json
import os
import signal
import time

from flowmake.store.sqlite import WRITE_SECONDS

FLOW = """
[flow]
jobs = 1
cache = false

[targets.quick]
matrix = { n = [1, 2, 3, 4] }
cmd = "echo ${n} > ${outputs}"
outputs = ["out/quick-${n}.txt"]

[targets.slow]
cmd = "echo $$$$ > slow.pid; touch started; sleep $$(cat delay.txt); echo s > ${outputs}"
outputs = ["out/slow.txt"]

[targets.waiting]
cmd = "echo w > ${outputs}"
outputs = ["out/waiting.txt"]
"""


def test_a_build_killed_while_a_target_waits_for_a_slot_keeps_what_it_finished(project):
    project.flow(FLOW, {"delay.txt": "30\n"})
    project.track_pid_file("slow.pid")
    proc = project.popen("build")
    project.wait_for(lambda: project.exists("started"), timeout=20, what="the slow target")
    assert all(project.exists(f"out/quick-{n}.txt") for n in range(1, 5))
    assert not project.exists("out/waiting.txt")  # queued behind the slow one
    time.sleep(WRITE_SECONDS + 0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    os.killpg(int(project.read("slow.pid")), signal.SIGKILL)

    states = {name: entry["state"] for name, entry in project.states().items()}
    assert states == {"quick[n=1]": "fresh", "quick[n=2]": "fresh", "quick[n=3]": "fresh",
                      "quick[n=4]": "fresh", "slow": "stale", "waiting": "stale"}
    project.write("delay.txt", "0\n")
    result = project.run("build", "--json")
    assert result.returncode == 0, result.stderr
    built = {t["name"]: t["status"] for t in json.loads(result.stdout)["targets"]}
    assert built == {"quick[n=1]": "fresh", "quick[n=2]": "fresh", "quick[n=3]": "fresh",
                     "quick[n=4]": "fresh", "slow": "built", "waiting": "built"}
    runs = json.loads(project.run("log", "--json").stdout)["runs"]
    killed = min(runs, key=lambda r: r["run_id"])
    assert killed["result"] == "interrupted"
    assert killed["counts"]["built"] == 4  # the killed build's lines went with the records
