"""The state under .flowmake/ meets faults: a concurrent clean, a damaged or misplaced
database, a read-only folder, a full disk, many first builds at once.

Each must end in one clear line naming the file (and saying that deleting .flowmake/ is
safe), never a traceback, and never a target recorded fresh that is not complete. The
read-only and full-disk cases use real mounts (a read-only bind mount, a small tmpfs):
they need root, which CI has; FLOWMAKE_MOUNT_TESTS=required makes a missing one fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

TWO = """
[targets.a]
cmd = "echo a > ${outputs}"
outputs = ["out/a.txt"]

[targets.b]
cmd = "cat ${inputs} > ${outputs}; echo b >> ${outputs}"
inputs = ["out/a.txt"]
outputs = ["out/b.txt"]
"""


def one_clear_line(result, *words: str) -> None:
    """Exit 2, no traceback, an error line holding ``words``, and the deletion hint."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("flowmake: error:")]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0], result.stderr
    assert "deleting .flowmake/ is always safe" in result.stderr


# -- a concurrent clean ------------------------------------------------------------------


def test_clean_waits_for_a_running_build(project):
    project.flow("""
        [targets.slow]
        cmd = ": > ${outputs}; touch started; for i in $$(seq 20); do echo $$i >> ${outputs}; sleep 0.05; done"
        outputs = ["out/slow.txt"]
        """, cache=False)
    build = project.popen("build")
    project.wait_for(lambda: project.exists("started"), timeout=20, what="the build to start")
    clean = project.run("clean", "--all")
    _, err = build.communicate(timeout=30)
    assert build.returncode == 0, err
    assert clean.returncode == 0, clean.stderr
    assert "waiting for another flowmake build" in clean.stderr
    # clean ran after the build: the output is gone and nothing claims it is fresh
    assert not project.exists("out/slow.txt")
    assert project.states()["slow"]["state"] == "stale"
    assert project.build() == {"slow": "built"}
    assert project.read("out/slow.txt") == "".join(f"{i}\n" for i in range(1, 21))


def test_clean_dry_run_does_not_wait(project):
    project.flow("""
        [targets.slow]
        cmd = "touch started; sleep 30; echo x > ${outputs}"
        outputs = ["out/slow.txt"]
        """, cache=False)
    project.write("out/slow.txt", "old\n")
    build = project.popen("build")
    project.wait_for(lambda: project.exists("started"), timeout=20, what="the build to start")
    started = time.monotonic()
    dry = project.run("clean", "--all", "-n")
    assert dry.returncode == 0 and time.monotonic() - started < 10
    assert "would remove out/slow.txt" in dry.stdout
    build.kill()


# -- a damaged or misplaced state ------------------------------------------------------


@pytest.mark.parametrize("command", [["build"], ["status"], ["why", "b"], ["log"],
                                     ["clean", "--all"]])
def test_a_junk_state_db_is_one_line_naming_it(project, command):
    project.flow(TWO)
    project.build()
    for extra in ("state.db-wal", "state.db-shm"):
        if project.exists(f".flowmake/{extra}"):
            project.path(f".flowmake/{extra}").unlink()
    project.path(".flowmake/state.db").write_bytes(b"this is not a database\n" * 400)
    project.path(".flowmake/noop").unlink(missing_ok=True)  # the no-op answer would hide it
    one_clear_line(project.run(*command), "state.db", "damaged")


def test_a_truncated_state_db_is_one_line_naming_it(project):
    project.flow(TWO)
    for _ in range(30):  # enough runs for the database to span many pages
        project.run("build", "-B")
    project.run("status")  # checkpointed on close: everything is in state.db itself
    db = project.path(".flowmake/state.db")
    for extra in ("state.db-wal", "state.db-shm"):
        project.path(f".flowmake/{extra}").unlink(missing_ok=True)
    size = db.stat().st_size
    assert size > 3 * 4096
    with open(db, "r+b") as f:
        f.truncate(size // 2)
    project.path(".flowmake/noop").unlink(missing_ok=True)
    results = [project.run(*c) for c in (["log"], ["status"], ["build"])]
    assert any(r.returncode == 2 for r in results)
    for result in results:
        assert "Traceback" not in result.stderr, result.stderr
        if result.returncode == 2:
            one_clear_line(result, "state.db")


def test_state_db_that_is_a_folder(project):
    project.flow(TWO)
    project.path(".flowmake/state.db").mkdir(parents=True)
    one_clear_line(project.run("build"), "state.db", "is a folder")
    one_clear_line(project.run("status"), "state.db", "is a folder")


def test_dot_flowmake_that_is_a_file(project):
    project.flow(TWO)
    project.write(".flowmake", "not a folder\n")
    for command in (["build"], ["status"], ["log"], ["clean", "--all"]):
        one_clear_line(project.run(*command), ".flowmake", "not a folder")


def test_deleting_the_state_as_the_hint_says_recovers(project):
    project.flow(TWO)
    project.build()
    project.path(".flowmake/state.db").write_bytes(b"junk" * 1000)
    for extra in ("state.db-wal", "state.db-shm", "noop"):
        project.path(f".flowmake/{extra}").unlink(missing_ok=True)
    assert project.run("build").returncode == 2
    import shutil

    shutil.rmtree(project.path(".flowmake"))
    assert project.build() == {"a": "fresh", "b": "fresh"}  # flow.lock knows them
    shutil.rmtree(project.path(".flowmake"))
    project.path("flow.lock").unlink()
    assert project.build() == {"a": "built", "b": "built"}


# -- many first builds at once ---------------------------------------------------------


def test_simultaneous_first_builds_of_a_fresh_project(project):
    """Opening a new state must wait for another process creating it, not fail with
    'database is locked' (it did for 3 of 80 processes)."""
    import shutil

    project.flow(TWO, cache=False)
    failures = []
    for _ in range(4):
        shutil.rmtree(project.path(".flowmake"), ignore_errors=True)
        procs = [project.popen(*(["status"] if i % 2 else ["build"])) for i in range(16)]
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            if proc.returncode != 0 or "Traceback" in err or "locked" in err:
                failures.append((proc.returncode, err[-500:]))
    assert failures == []
    assert project.run("status", "--check").returncode == 0


# -- real mounts: a read-only state, a full disk ----------------------------------------


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode != 0:
        if os.environ.get("FLOWMAKE_MOUNT_TESTS") == "required":
            pytest.fail(f"mount {' '.join(args)} failed: {result.stderr}")
        pytest.skip(f"cannot mount here (needs root): {result.stderr.strip()}")


@pytest.fixture
def mounts():
    done: list[Path] = []

    def mount(*args: str) -> None:
        _mount(*args)
        done.append(Path(args[-1]))

    yield mount
    for path in reversed(done):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.mark.skipif(sys.platform != "linux", reason="Linux mounts")
def test_read_only_state_still_answers_status_why_and_log(project, mounts):
    project.flow(TWO)
    project.build()
    state = project.path(".flowmake")
    mounts("--bind", str(state), str(state))
    mounts("-o", "remount,bind,ro", str(state))
    assert project.run("status", "--check").returncode == 0
    status = project.run("status", "--json")
    assert status.returncode == 0, status.stderr
    assert {t["name"]: t["state"] for t in json.loads(status.stdout)["targets"]} == {
        "a": "fresh", "b": "fresh"}
    project.write("out/a.txt", "changed\n")
    why = project.run("why", "a")
    assert why.returncode == 0, why.stderr
    assert "out/a.txt" in why.stdout
    log = project.run("log")
    assert log.returncode == 0, log.stderr
    assert "Traceback" not in why.stderr + log.stderr
    build = project.run("build")
    one_clear_line(build, ".flowmake")
    assert "read-only" in build.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="Linux mounts")
def test_a_read_only_state_is_read_with_the_log_a_fork_left(project, mounts):
    """A resident fork leaves SQLite's log beside state.db (its connection is not
    closed); a read-only state is read with it: the last build's records are there."""
    from tests.e2e.test_resident import start_server

    project.flow(TWO)
    start_server(project)
    project.build()
    assert project.build("-B") == {"a": "built", "b": "built"}  # records in the log
    state = project.path(".flowmake")
    assert (state / "state.db-wal").stat().st_size > 0
    mounts("--bind", str(state), str(state))
    mounts("-o", "remount,bind,ro", str(state))
    status = project.run("status", "--json")
    assert status.returncode == 0, status.stderr
    assert {t["name"]: t["state"] for t in json.loads(status.stdout)["targets"]} == {
        "a": "fresh", "b": "fresh"}
    log = project.run("log", "--json")
    assert log.returncode == 0, log.stderr
    assert len(json.loads(log.stdout)["runs"]) >= 2
    one_clear_line(project.run("build", "-B"), ".flowmake")


@pytest.mark.skipif(sys.platform != "linux", reason="Linux mounts")
def test_status_in_a_read_only_project_without_state(project, mounts):
    project.flow(TWO)
    project.write("out/a.txt", "a\n")
    mounts("--bind", str(project.root), str(project.root))
    mounts("-o", "remount,bind,ro", str(project.root))
    result = project.run("status", "--json")
    assert result.returncode == 0, result.stderr
    states = {t["name"]: t["state"] for t in json.loads(result.stdout)["targets"]}
    assert states == {"a": "stale", "b": "stale"}
    assert not project.exists(".flowmake")


@pytest.mark.skipif(sys.platform != "linux", reason="Linux mounts")
def test_a_full_disk_during_a_build(tmp_path, mounts, make_project):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounts("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk))
    project = make_project("disk/proj")
    # The command fills the disk and still succeeds: flowmake's own writes then fail.
    project.flow("""
        [targets.fill]
        cmd = "echo done > ${outputs}; [ -e once ] || { touch once; head -c 4000000 /dev/zero > filler 2>/dev/null; true; }"
        outputs = ["out/fill.txt"]

        [targets.after]
        cmd = "cat ${inputs} > ${outputs}"
        inputs = ["out/fill.txt"]
        outputs = ["out/after.txt"]
        """, cache=False)
    result = project.run("build")
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode in (1, 2), result.stderr
    if result.returncode == 2:
        one_clear_line(result, "no room left")
    project.path("filler").unlink()
    # Room again: the next build closes the broken run and builds what is not recorded.
    again = project.run("build", "--json")
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr
    assert project.read("out/after.txt") == "done\n"
    runs = json.loads(project.run("log", "--json").stdout)["runs"]
    assert all(r["result"] != "running" for r in runs)
    assert project.run("status", "--check").returncode == 0
