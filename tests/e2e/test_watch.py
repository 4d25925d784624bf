"""`flowmake build --watch` (SPEC §10): a real process, real file changes, real signals."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("watchfiles")

FLOW = """
[flow]
cache = false

[targets.copy]
cmd     = "cat ${inputs} > ${outputs}"
inputs  = ["data/in.txt"]
outputs = ["out/copy.txt"]

[targets.count]
python  = "steps:count"
inputs  = { text = "out/copy.txt" }
outputs = ["out/count.json"]
"""

STEPS = "def count(text):\n    return {'words': len(text.split())}\n"


def words(project: Any) -> Any:
    try:
        return json.loads(project.read("out/count.json"))
    except (OSError, ValueError):
        return None


class Watch:
    """``flowmake build --watch`` in the background, its stdout and stderr in files."""

    def __init__(self, project: Any, *args: str, env: dict[str, str] | None = None) -> None:
        self.project = project
        self.out = project.root.parent / "watch.out"
        self.err = project.root.parent / "watch.err"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "flowmake", "build", "--watch", *args],
                cwd=project.root, stdout=out, stderr=err, stdin=subprocess.DEVNULL, text=True,
                env={**os.environ, "NO_COLOR": "1", "FLOWMAKE_TRACE": "resident", **(env or {})},
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        project.procs.append(self.proc)

    def stdout(self) -> str:
        return self.out.read_text()

    def stderr(self) -> str:
        return self.err.read_text()

    def builds(self) -> int:
        """Builds finished so far (each ends with its summary line)."""
        return sum(1 for line in self.stdout().splitlines() if line.startswith("flowmake: "))

    def wait_builds(self, count: int, timeout: float = 30) -> None:
        self.project.wait_for(lambda: self.builds() >= count, timeout=timeout,
                              what=f"{count} builds\n{self.stdout()}\n{self.stderr()}")

    def wait_watching(self, count: int, timeout: float = 30) -> None:
        """Until the watch says for the ``count``-th time that it waits for changes."""
        self.project.wait_for(lambda: self.stderr().count("watching ") >= count,
                              timeout=timeout, what=f"watching #{count}\n{self.stderr()}")

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:  # what each process and thread was waiting in
            pytest.fail(f"no exit 20 s after SIGINT\n{self.stdout()}\n{self.stderr()}\n"
                        + "\n".join(_threads(pid) for pid in self.pids()))

    def pids(self) -> list[int]:
        """The client and the process that runs the watch (itself, or a resident fork)."""
        forks = re.findall(r"run by process (\d+)", self.stderr())
        return [self.proc.pid, *map(int, forks)]


def _threads(pid: int) -> str:
    """A process's threads: name, state, kernel wait channel, signal masks."""
    lines = [f"process {pid}:"]
    for task in sorted(Path(f"/proc/{pid}/task").glob("*")):
        try:
            status = dict(line.split(":\t", 1) for line in
                          (task / "status").read_text().splitlines() if ":\t" in line)
            wchan = (task / "wchan").read_text()
        except OSError:
            continue
        lines.append(f"  {task.name} {status.get('Name')} {status.get('State')} wchan={wchan} "
                     + " ".join(f"{k}={status.get(k)}" for k in ("SigPnd", "SigBlk", "SigIgn",
                                                                  "SigCgt")))
    return "\n".join(lines)


def test_a_changed_input_rebuilds_and_ctrl_c_exits_130(project: Any) -> None:
    project.flow(FLOW, {"data/in.txt": "one two\n", "steps.py": STEPS})
    watch = Watch(project)
    watch.wait_builds(1)
    watch.wait_watching(1)
    assert words(project) == {"words": 2}
    assert "built" in watch.stdout().splitlines()[-1]
    project.write("data/in.txt", "one two three\n")
    watch.wait_builds(2)
    assert project.read("out/copy.txt") == "one two three\n"
    assert words(project) == {"words": 3}
    assert "changed: data/in.txt; building" in watch.stderr()
    start = time.monotonic()
    assert watch.interrupt() == 130
    assert time.monotonic() - start < 5
    assert "flowmake: interrupted" in watch.stderr()
    assert "Traceback" not in watch.stderr()


def test_code_and_flow_toml_changes_rebuild_outputs_and_state_do_not(project: Any) -> None:
    project.flow(FLOW, {"data/in.txt": "a b\n", "steps.py": STEPS})
    watch = Watch(project)
    watch.wait_watching(1)
    # Outputs and .flowmake/ are never sources: writing them starts no build.
    project.write("out/copy.txt", "tampered\n")
    project.write(".flowmake/junk.txt", "x")
    project.write("notes.txt", "not an input\n")
    time.sleep(2.5)  # past watchfiles' debounce
    assert watch.builds() == 1
    # A python target's code.
    project.write("steps.py", STEPS.replace("len(text.split())", "len(text.split()) * 10"))
    watch.wait_builds(2)
    assert words(project) == {"words": 20}
    # flow.toml itself.
    project.edit_flow("cat ${inputs} > ${outputs}", "cat ${inputs} ${inputs} > ${outputs}")
    watch.wait_builds(3)
    assert project.read("out/copy.txt") == "a b\na b\n"
    assert watch.interrupt() == 130


def test_a_change_during_a_build_builds_once_more_after_it(project: Any) -> None:
    project.flow("""
        [flow]
        cache = false

        [targets.slow]
        cmd     = "sleep 2 && cat ${inputs} > ${outputs}"
        inputs  = ["data/in.txt"]
        outputs = ["out/slow.txt"]
    """, {"data/in.txt": "v1\n"})
    watch = Watch(project)
    project.wait_for(lambda: "run      slow" in watch.stdout(), what="the first build to start")
    project.write("data/in.txt", "v2\n")  # while it runs
    watch.wait_builds(2, timeout=40)
    watch.wait_watching(2)
    assert project.read("out/slow.txt") == "v2\n"
    time.sleep(2.5)
    assert watch.builds() == 2  # one more build, not one per write
    assert watch.interrupt() == 130


def test_a_broken_flow_toml_is_reported_and_waited_out(project: Any) -> None:
    project.flow(FLOW, {"data/in.txt": "a\n", "steps.py": STEPS})
    watch = Watch(project)
    watch.wait_watching(1)
    project.edit_flow('inputs  = ["data/in.txt"]', 'inputs  = "data/in.txt"')
    project.wait_for(lambda: "targets.copy.inputs: expected an array" in watch.stderr(),
                     what=f"the config error\n{watch.stderr()}")
    assert watch.proc.poll() is None  # still watching
    project.edit_flow('inputs  = "data/in.txt"', 'inputs  = ["data/in.txt"]')
    project.write("data/in.txt", "a b c d\n")
    project.wait_for(lambda: words(project) == {"words": 4},
                     what=f"the rebuild after the fix\n{watch.stderr()}")
    assert watch.interrupt() == 130
    assert "Traceback" not in watch.stderr()


def test_without_watchfiles_it_is_exit_2_with_the_install_hint(project: Any,
                                                                tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    (blocker / "watchfiles").mkdir(parents=True)
    (blocker / "watchfiles/__init__.py").write_text("raise ImportError('not installed')\n")
    project.flow(FLOW, {"data/in.txt": "a\n", "steps.py": STEPS})
    result = project.run("build", "--watch", env={"PYTHONPATH": str(blocker)})
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        "flowmake: error: build --watch needs the watchfiles package, which is not installed",
        "  hint: pip install 'flowmake[watch]' (or: pip install watchfiles)"]
    assert not project.exists("out/copy.txt")


def test_watch_refuses_json(project: Any) -> None:
    project.flow(FLOW, {"data/in.txt": "a\n", "steps.py": STEPS})
    result = project.run("build", "--watch", "--json")
    assert result.returncode == 2
    assert "--watch cannot be used with --json" in result.stderr


def test_params_files_includes_and_new_foreach_files_rebuild(project: Any) -> None:
    project.flow("""
        [flow]
        cache        = false
        include      = ["flows/*.toml"]
        params_files = ["params.yaml"]

        [targets.each]
        foreach = "data/*.txt"
        cmd     = "cat ${item} > ${outputs}"
        inputs  = ["${item}"]
        outputs = ["out/${item.stem}.txt"]
    """, {"data/a.txt": "a\n", "params.yaml": "n: 1\n",
          "flows/more.toml": '[targets.n]\ncmd = "echo ${params.n} > ${outputs}"\n'
                             'outputs = ["out/n.txt"]\n'})
    watch = Watch(project)
    watch.wait_watching(1)
    project.write("data/b.txt", "b\n")  # a new file: a new instance
    project.wait_for(lambda: project.exists("out/b.txt"), what=f"out/b.txt\n{watch.stderr()}")
    watch.wait_watching(2)
    project.write("params.yaml", "n: 2\n")
    project.wait_for(lambda: project.exists("out/n.txt") and project.read("out/n.txt") == "2\n",
                     what=f"n = 2\n{watch.stderr()}")
    watch.wait_watching(3)
    project.write("flows/more.toml", '[targets.n]\ncmd = "echo x${params.n} > ${outputs}"\n'
                                     'outputs = ["out/n.txt"]\n')
    project.wait_for(lambda: project.read("out/n.txt") == "x2\n", what=watch.stderr())
    assert watch.interrupt() == 130
