"""A folder of 10,000 small input files is read once, then answered from the stat cache.

Counted from the outside: flowmake runs under a Python audit hook that logs every file it
opens (sys.addaudithook, the "open" event), in a real subprocess on real files.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from tests.conftest import Project, base_env, describe

FILES = 10_000
OPEN_LOG = """
import os, runpy, sys
log = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
def hook(event, args):
    if event == "open" and isinstance(args[0], str) and "/data/" in args[0]:
        os.write(log, (args[0] + "\\n").encode())
sys.addaudithook(hook)
sys.argv = ["flowmake", *sys.argv[2:]]
runpy.run_module("flowmake", run_name="__main__", alter_sys=True)
"""


def run_counting(project: Project, *args: str) -> list[str]:
    """Run ``flowmake ARGS`` and return the data/ files it opened."""
    log = project.root / ".opened.log"
    log.unlink(missing_ok=True)
    # In-process: the hook sees this process's opens, not a resident server's fork's.
    result = subprocess.run([sys.executable, "-c", OPEN_LOG, str(log), *args], cwd=project.root,
                            env=base_env({"FLOWMAKE_RESIDENT": "0"}), text=True,
                            capture_output=True, check=False)
    assert result.returncode == 0, describe(result)
    return log.read_text().splitlines() if log.exists() else []


def make_folder(project: Project) -> None:
    data = project.root / "data"
    old = time.time_ns() - 3600 * 10**9  # an hour old: past the "racy" window
    for i in range(FILES):
        sub = data / f"d{i % 100:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"f{i}.txt"
        path.write_text(f"file {i}\n")
        os.utime(path, ns=(old, old))


def test_a_folder_of_10000_files_is_hashed_once(project: Project) -> None:
    project.flow('[targets.count]\ncmd = "ls -R data | wc -l > ${outputs}"\n'
                 'inputs = ["data"]\noutputs = ["out/count.txt"]\n')
    make_folder(project)
    first = run_counting(project, "-q", "build")
    assert len(first) == FILES and len(set(first)) == FILES
    # A comment in flow.toml: the no-op fast path no longer applies, the full check runs.
    (project.root / "flow.toml").write_text(project.read("flow.toml") + "# edited\n")
    assert run_counting(project, "status") == []
    assert project.states()["count"]["state"] == "fresh"
    edited = project.root / "data/d07/f7.txt"
    edited.write_text("FILE 7\n")  # same size, new mtime: the one file read again
    old = time.time_ns() - 60 * 10**9
    os.utime(edited, ns=(old, old))
    assert run_counting(project, "status") == [str(edited)]
    assert project.states()["count"]["state"] == "stale"

