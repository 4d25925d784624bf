"""The ``dask`` executor end to end: the real ``flowmake`` command on a real LocalCluster.

Every test here drives ``python -m flowmake build --executor dask --scheduler ADDRESS``
against the session cluster of ``conftest.py`` (worker processes under nannies), except
the ones about addresses, start-up and shut-down of a cluster flowmake starts itself.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("distributed")

FLOWMAKE = [sys.executable, "-m", "flowmake"]

DIAMOND = """
[params]
n = 3

[targets.top]
cmd     = "seq 1 ${params.n} > ${outputs}"
inputs  = ["src/seed.txt"]
outputs = ["data/top.txt"]

[targets.left]
python  = "pipeline.steps:left"
inputs  = { text = "data/top.txt" }
params  = { tag = "L" }
outputs = ["data/left.json"]

[targets.right]
cmd     = "sed 's/^/R/' ${inputs} > ${outputs} && echo right-ran-in $$PPID"
inputs  = ["data/top.txt"]
outputs = ["data/right.txt"]

[targets.bottom]
python  = "pipeline.steps:bottom"
inputs  = { left = "data/left.json", right = "data/right.txt" }
outputs = { joined = "out/bottom.txt", count = "out/count.json" }
"""

STEPS = """
def left(text, tag):
    return [tag + line for line in text.split()]


def bottom(left, right):
    print("bottom-done")
    return {"joined": "\\n".join(left) + "\\n" + right, "count": len(left)}
"""

FILES = {"src/seed.txt": "seed\n", "pipeline/__init__.py": "", "pipeline/steps.py": STEPS}


def on_dask(cluster: Any, *args: str) -> list[str]:
    return ["--executor", "dask", "--scheduler", cluster.address, *args]


def records(project: Any) -> dict[str, tuple[str, dict[str, str]]]:
    """{target: (key, {output: digest})} straight from the project's SQLite records."""
    db = sqlite3.connect(project.root / ".flowmake" / "state.db")
    try:
        rows = db.execute("SELECT target, key, outputs FROM records").fetchall()
    finally:
        db.close()
    return {name: (key, json.loads(outputs)) for name, key, outputs in rows}


def target_log(project: Any, name: str) -> dict[str, Any]:
    """The latest ``log`` entry of one target: status, duration, reasons, output."""
    doc = project.json("log", name, check=True)
    return doc["runs"][0]["targets"][0]


def wait_file(path: Path, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear within {timeout}s")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


# -- the same build as a local one ---------------------------------------------------


@pytest.mark.slow
def test_diamond_on_dask_matches_a_local_build(make_project: Any, cluster: Any) -> None:
    local, remote = make_project("local"), make_project("remote")
    for proj in (local, remote):
        proj.flow(DIAMOND, FILES)
    assert set(local.build("-j", "4").values()) == {"built"}
    assert remote.build(*on_dask(cluster, "-j", "4")) == {
        "top": "built", "left": "built", "right": "built", "bottom": "built"}

    outputs = ("data/top.txt", "data/left.json", "data/right.txt", "out/bottom.txt",
               "out/count.json")
    for rel in outputs:
        assert remote.read(rel) == local.read(rel)
    assert remote.read("out/bottom.txt") == "L1\nL2\nL3\nR1\nR2\nR3\n"
    assert remote.read("out/count.json").strip() == "3"
    assert records(remote) == records(local)  # same keys, same output digests
    assert "bottom-done" in target_log(remote, "bottom")["output"]

    again = remote.build(*on_dask(cluster))
    assert set(again.values()) == {"fresh"}
    # The records written from the workers' digests agree with the client's own checks.
    assert {t["state"] for t in remote.json("status", check=True)["targets"]} == {"fresh"}


@pytest.mark.slow
def test_param_change_rebuilds_on_dask_with_early_cutoff(project: Any, cluster: Any) -> None:
    project.flow(DIAMOND.replace("seq 1 ${params.n}", "seq 1 ${params.n} | head -n 2"), FILES)
    project.build(*on_dask(cluster))
    # n=3 → n=4 changes top's command, but its output (two lines) stays the same.
    result = project.build(*on_dask(cluster, "-p", "n=4"))
    assert result == {"top": "built", "left": "fresh", "right": "fresh", "bottom": "fresh"}


# -- failures, -k, timeouts, retries ---------------------------------------------------

FAILING = """
[targets.a]
cmd = "echo a > ${outputs}"
outputs = ["a.txt"]

[targets.bad]
cmd = "echo about to fail; exit 3"
inputs = ["a.txt"]
outputs = ["bad.txt"]

[targets.after_bad]
cmd = "cat ${inputs} > ${outputs}"
inputs = ["bad.txt"]
outputs = ["after.txt"]

[targets.slow_ok]
cmd = "sleep 1 && echo ok > ${outputs}"
inputs = ["a.txt"]
outputs = ["ok.txt"]
"""


@pytest.mark.slow
def test_failure_skips_dependents_and_keep_going_goes_on(project: Any, cluster: Any) -> None:
    project.flow(FAILING)
    doc = project.json("build", *on_dask(cluster, "-k", "-j", "4"), check=1)
    status = {t["name"]: t for t in doc["targets"]}
    assert doc["result"] == "failed"
    assert status["bad"]["status"] == "failed"
    assert status["bad"]["error"] == "exit code 3"  # the local executor's wording
    assert status["after_bad"]["status"] == "skipped"
    assert status["slow_ok"]["status"] == "built"  # -k: the independent branch went on
    assert "about to fail" in target_log(project, "bad")["output"]
    assert set(records(project)) == {"a", "slow_ok"}  # a failure is never recorded

    no_k = {t["name"]: t["status"] for t in
            project.json("build", *on_dask(cluster, "-B", "-j", "1"), check=1)["targets"]}
    assert no_k["bad"] == "failed" and no_k["after_bad"] == "skipped"


@pytest.mark.slow
def test_timeout_kills_the_command_on_the_worker_and_retries(project: Any,
                                                               cluster: Any) -> None:
    project.flow("""
        [targets.hang]
        cmd = "echo $$$$ >> pids.txt; echo started; sleep 60; echo never > ${outputs}"
        outputs = ["hang.txt"]
        timeout = 1
        retries = 1
    """)
    started = time.monotonic()
    doc = project.json("build", *on_dask(cluster), check=1)
    assert time.monotonic() - started < 40
    (entry,) = doc["targets"]
    assert entry["status"] == "failed" and entry["error"] == "timed out after 1s"
    output = target_log(project, "hang")["output"]
    assert output.count("started") == 2  # two attempts, each killed
    assert "--- attempt 2 of 2 (timed out after 1s) ---" in output
    pids = [int(p) for p in project.read("pids.txt").split()]
    assert len(pids) == 2 and not any(alive(p) for p in pids)  # the process groups died
    assert not project.exists("hang.txt") and records(project) == {}


@pytest.mark.slow
def test_retry_after_a_failed_attempt_succeeds(project: Any, cluster: Any) -> None:
    project.flow("""
        [targets.flaky]
        cmd = "n=$$(cat count 2>/dev/null || echo 0); echo $$((n+1)) > count; test $$n -ge 1 && echo ok > ${outputs}"
        outputs = ["flaky.txt"]
        retries = 2
    """)
    assert project.build(*on_dask(cluster)) == {"flaky": "built"}
    assert project.read("count") == "2\n" and project.read("flaky.txt") == "ok\n"
    assert "--- attempt 2 of 3 (exit code 1) ---" in target_log(project, "flaky")["output"]


def test_missing_declared_output_fails_on_the_worker(project: Any, cluster: Any) -> None:
    project.flow("""
        [targets.liar]
        cmd = "echo claims to write"
        outputs = ["never.txt"]
    """)
    doc = project.json("build", *on_dask(cluster), check=1)
    assert doc["targets"][0]["error"] == "declared output not produced: never.txt"


def test_verbose_prints_each_line_prefixed(project: Any, cluster: Any) -> None:
    project.flow("""
        [targets.talk]
        cmd = "echo one; echo two > ${outputs}; echo three"
        outputs = ["talk.txt"]
    """)
    result = project.run("build", "-v", *on_dask(cluster), check=True)
    assert "[talk] one" in result.stdout and "[talk] three" in result.stdout


@pytest.mark.slow
def test_listed_env_values_travel_from_the_client(project: Any, cluster: Any) -> None:
    # The cluster's workers never saw FM_DASK_VALUE: the value that entered the key on the
    # client is the one the command gets on the worker.
    project.flow("""
        [targets.greet]
        cmd = "echo $$FM_DASK_VALUE > ${outputs}"
        outputs = ["greet.txt"]
        env = ["FM_DASK_VALUE"]
    """)
    project.build(*on_dask(cluster), env={"FM_DASK_VALUE": "from-the-client"})
    assert project.read("greet.txt") == "from-the-client\n"
    assert project.build(*on_dask(cluster), env={"FM_DASK_VALUE": "other"}) == {
        "greet": "built"}
    assert project.read("greet.txt") == "other\n"


# -- a worker that dies mid-target -------------------------------------------------------

KILLABLE = """
[targets.victim]
cmd = "echo $$PPID >> worker_pids.txt; sleep 4; echo complete > ${outputs}"
outputs = ["victim.txt"]
retries = RETRIES
"""


def kill_worker_of_first_attempt(project: Any, cluster: Any) -> int:
    """SIGKILL the worker process running the target's first attempt; its pid."""
    pid = int(wait_file(project.path("worker_pids.txt")).split()[0])
    assert pid in cluster.worker_pids().values()  # $PPID of the command is a Dask worker
    os.kill(pid, signal.SIGKILL)
    return pid


@pytest.mark.slow
def test_worker_killed_mid_target_fails_it_and_never_records_it(project: Any,
                                                                  cluster: Any) -> None:
    project.flow(KILLABLE.replace("RETRIES", "0"))
    proc = project.popen("build", "--json", *on_dask(cluster))
    kill_worker_of_first_attempt(project, cluster)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1, stderr
    (entry,) = json.loads(stdout)["targets"]
    assert entry["status"] == "failed"
    assert entry["error"].startswith("the Dask worker running it died")
    assert records(project) == {}
    time.sleep(5)  # longer than the command's sleep: its shell died with the worker
    assert not project.exists("victim.txt")
    assert project.states()["victim"]["state"] == "stale"


@pytest.mark.slow
def test_worker_killed_mid_target_is_retried_elsewhere(project: Any, cluster: Any) -> None:
    project.flow(KILLABLE.replace("RETRIES", "1"))
    proc = project.popen("build", "--json", *on_dask(cluster))
    killed = kill_worker_of_first_attempt(project, cluster)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert json.loads(stdout)["targets"][0]["status"] == "built"
    pids = [int(p) for p in project.read("worker_pids.txt").split()]
    assert len(pids) == 2 and pids[0] == killed and pids[1] != killed
    assert project.read("victim.txt") == "complete\n"
    assert "the Dask worker running it died" in target_log(project, "victim")["output"]
    assert set(records(project)) == {"victim"}


# -- Ctrl-C ---------------------------------------------------------------------------------


SLOW = """
import os
import time


def wait(seconds):
    with open("pid3", "w") as f:
        f.write(str(os.getpid()))
    time.sleep(seconds)
    return f"slept {seconds}\\n"
"""


@pytest.mark.slow
def test_sigint_cancels_dask_tasks_and_kills_their_commands(project: Any,
                                                              cluster: Any) -> None:
    project.flow("""
        [targets.long1]
        cmd = "echo $$$$ > pid1; sleep 60; echo done > ${outputs}"
        outputs = ["long1.txt"]

        [targets.long2]
        cmd = "echo $$$$ > pid2; sleep 60; echo done > ${outputs}"
        outputs = ["long2.txt"]

        [targets.long3]
        python = "slow:wait"
        params = { seconds = 60 }
        outputs = ["long3.txt"]

        [targets.queued]
        cmd = "echo ran > ${outputs}"
        inputs = ["long1.txt"]
        outputs = ["queued.txt"]
    """, {"slow.py": SLOW})
    proc = project.popen("build", "--json", "-j", "3", *on_dask(cluster))
    pids = [int(wait_file(project.path(f"pid{i}"))) for i in (1, 2, 3)]
    assert all(alive(p) for p in pids)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert time.monotonic() - sent < 20
    doc = json.loads(stdout)
    assert doc["result"] == "interrupted"
    status = {t["name"]: t for t in doc["targets"]}
    for name in ("long1", "long2", "long3"):
        assert status[name]["status"] == "failed" and status[name]["error"] == "interrupted"
    assert status["queued"]["status"] == "skipped"
    assert not any(alive(p) for p in pids)  # killed on the workers, not left to finish
    assert records(project) == {}
    # The cluster is fine afterwards: the next build runs everything.
    project.edit_flow("sleep 60", "sleep 0")
    project.edit_flow("seconds = 60", "seconds = 0")
    assert set(project.build(*on_dask(cluster)).values()) == {"built"}
    assert project.read("long3.txt") == "slept 0\n"


# -- choosing the executor and the scheduler -----------------------------------------------

ONE = """
[targets.where]
cmd = "echo $$PPID > ${outputs}"
outputs = ["where.txt"]
"""


def built_on_cluster(project: Any, cluster: Any) -> bool:
    return int(project.read("where.txt")) in cluster.worker_pids().values()


def test_scheduler_from_the_environment(project: Any, cluster: Any) -> None:
    project.flow(ONE)
    project.build("--executor", "dask", env={"FLOWMAKE_DASK_SCHEDULER": cluster.address})
    assert built_on_cluster(project, cluster)


def test_scheduler_from_flow_toml(project: Any, cluster: Any) -> None:
    project.flow(f'[flow]\nexecutor = "dask"\ndask_scheduler = "{cluster.address}"\n' + ONE)
    project.build()
    assert built_on_cluster(project, cluster)


def test_scheduler_option_alone_selects_dask(project: Any, cluster: Any) -> None:
    project.flow(ONE)
    project.build("--scheduler", cluster.address)
    assert built_on_cluster(project, cluster)


def test_command_line_outranks_the_environment(project: Any, cluster: Any) -> None:
    project.flow(ONE)
    project.build(*on_dask(cluster), env={"FLOWMAKE_DASK_SCHEDULER": "tcp://127.0.0.1:9"})
    assert built_on_cluster(project, cluster)


@pytest.mark.slow
def test_unreachable_scheduler_is_exit_2(project: Any) -> None:
    project.flow(ONE)
    result = project.run("build", "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9",
                         env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr
    runs = project.json("log", check=True)["runs"]
    assert [r["result"] for r in runs] == ["failed"]  # finished, never left "running"


def test_unknown_executor_is_exit_2_naming_the_installed_ones(project: Any) -> None:
    project.flow(ONE)
    result = project.run("build", "--executor", "nosuch")
    assert result.returncode == 2
    assert "unknown executor 'nosuch' (installed: dask, local)" in result.stderr
    assert not project.exists("where.txt") and "Traceback" not in result.stderr


def test_all_fresh_build_starts_no_cluster(project: Any) -> None:
    project.flow(ONE)
    project.build()  # locally
    # An unreachable scheduler is never contacted when nothing has to run.
    result = project.build("--executor", "dask", "--scheduler", "tcp://127.0.0.1:9")
    assert result == {"where": "fresh"}


# -- a cluster flowmake starts itself -------------------------------------------------------


@pytest.mark.slow
def test_own_local_cluster_builds_and_is_shut_down(project: Any) -> None:
    project.flow(DIAMOND, FILES)
    env = {"FLOWMAKE_DASK_SCHEDULER": ""}
    assert set(project.build("--executor", "dask", "-j", "2", env=env).values()) == {"built"}
    worker = int(target_log(project, "right")["output"].split()[-1])
    assert worker != os.getpid()
    assert not alive(worker)  # the cluster's worker processes ended with the build
    assert project.read("out/bottom.txt") == "L1\nL2\nL3\nR1\nR2\nR3\n"


@pytest.mark.slow
def test_ctrl_c_to_the_whole_group_with_own_cluster(project: Any) -> None:
    """A terminal sends SIGINT to every process of the group, Dask workers included."""
    project.flow("""
        [targets.long]
        cmd = "echo $$$$ > pid; sleep 60; echo done > ${outputs}"
        outputs = ["long.txt"]
    """)
    env = {**os.environ, "NO_COLOR": "1", "FLOWMAKE_DASK_SCHEDULER": ""}
    proc = subprocess.Popen([*FLOWMAKE, "build", "--json", "--executor", "dask"],
                            cwd=project.root, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        pid = int(wait_file(project.path("pid"), timeout=60))
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, stderr
    assert json.loads(stdout)["result"] == "interrupted"
    assert "Traceback" not in stderr, stderr
    assert not alive(pid) and not project.exists("long.txt")
