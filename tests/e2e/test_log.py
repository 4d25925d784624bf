"""`flowmake log`: the builds, one build's targets, one target's history, and pruning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

import pytest

FLOW = """
[flow]
history = {history}

[params]
n = 1

[targets.gen]
cmd     = "echo generating n=${{params.n}} && echo ${{params.n}} > ${{outputs}}"
outputs = ["out/gen.txt"]

[targets.use]
cmd     = "echo using && cat ${{inputs}} > ${{outputs}}"
inputs  = ["out/gen.txt"]
outputs = ["out/use.txt"]

[targets.bad]
cmd     = "echo about to fail && exit 3"
outputs = ["out/bad.txt"]
"""


def flowmake(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "flowmake", "-C", str(root), *args],
                          capture_output=True, text=True, env=env, timeout=120)


def log_doc(root: Path, *args: str) -> dict:
    result = flowmake(root, "log", *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def make(tmp_path: Path, history: int = 100) -> Path:
    (tmp_path / "flow.toml").write_text(textwrap.dedent(FLOW.format(history=history)))
    return tmp_path


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Read-only for the tests that use it. Three builds: run 1 builds gen and use; run 2 (n=2) rebuilds both; run 3 fails bad
    (gen and use fresh)."""
    tmp_path = make(tmp_path_factory.mktemp("log"))
    assert flowmake(tmp_path, "build", "gen", "use").returncode == 0
    assert flowmake(tmp_path, "build", "-p", "n=2", "use").returncode == 0
    assert flowmake(tmp_path, "build", "-k", "-p", "n=2", "bad", "use").returncode == 1
    return tmp_path


def test_no_builds_yet(tmp_path):
    make(tmp_path)
    result = flowmake(tmp_path, "log")
    assert result.returncode == 0 and "no builds recorded yet" in result.stdout
    assert log_doc(tmp_path) == {"runs": []}


def test_runs_newest_first_with_the_documented_fields(root):
    runs = log_doc(root)["runs"]
    assert [r["run_id"] for r in runs] == [3, 2, 1]
    assert [r["result"] for r in runs] == ["failed", "success", "success"]
    assert runs[0]["command"] == f"flowmake -C {root} build -k -p n=2 bad use"
    assert runs[1]["command"].endswith("build -p n=2 use")
    assert runs[2]["counts"] == {"built": 2, "restored": 0, "fresh": 0, "failed": 0, "skipped": 0}
    assert runs[1]["counts"]["built"] == 2
    assert runs[0]["counts"] == {"built": 0, "restored": 0, "fresh": 2, "failed": 1, "skipped": 0}
    for run in runs:
        started = datetime.fromisoformat(run["started"]).timestamp()
        assert abs(started - time.time()) < 600
        assert datetime.fromisoformat(run["finished"]).timestamp() >= started
        assert run["duration"] >= 0
    assert runs[2]["started"] <= runs[1]["started"] <= runs[0]["started"]


def test_runs_as_text(root):
    result = flowmake(root, "log")
    assert result.returncode == 0
    header, *lines = result.stdout.splitlines()
    assert header.split() == ["run", "started", "took", "result", "targets", "command"]
    assert [line.split()[0] for line in lines] == ["3", "2", "1"]
    assert "failed" in lines[0] and "2 fresh, 1 failed" in lines[0]
    assert lines[0].endswith("build -k -p n=2 bad use")


def test_limit(root):
    assert [r["run_id"] for r in log_doc(root, "--limit", "2")["runs"]] == [3, 2]
    assert flowmake(root, "log", "--limit", "0").returncode == 2


def test_one_build_lists_its_targets(root):
    [run] = log_doc(root, "2")["runs"]
    assert run["run_id"] == 2 and run["result"] == "success"
    targets = {t["name"]: t for t in run["targets"]}
    assert set(targets) == {"gen", "use"}
    assert targets["gen"]["status"] == "built"
    assert targets["gen"]["reasons"] == ["command changed", "param params.n: 1 → 2"]
    assert targets["gen"]["output"].strip() == "generating n=2"
    assert targets["use"]["duration"] >= 0

    text = flowmake(root, "log", "3").stdout.splitlines()
    assert text[0].startswith("run 3: failed, started ")
    assert "command:" in text[1] and text[1].endswith("build -k -p n=2 bad use")
    [bad] = [line for line in text if line.split()[0] == "bad"]
    assert bad.split()[1] == "failed" and "(never built)" in bad


def test_one_build_with_output(root):
    result = flowmake(root, "-v", "log", "3")
    assert "    about to fail" in result.stdout.splitlines()


def test_unknown_build(root):
    result = flowmake(root, "log", "99")
    assert result.returncode == 2
    assert "no build 99 in the history" in result.stderr and "Traceback" not in result.stderr


def test_target_history_and_latest_output(root):
    result = flowmake(root, "log", "gen")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[1] for line in lines[:2]] == ["2", "1"]  # run 3 did not run gen
    assert "built" in lines[0] and "param params.n: 1 → 2" in lines[0]
    # The latest run's output only, unless -v.
    assert "output of gen in run 2 (built):" in lines
    assert "  generating n=2" in lines and "  generating n=1" not in lines
    every = flowmake(root, "-v", "log", "gen").stdout.splitlines()
    assert "  generating n=1" in every and "  generating n=2" in every


def test_target_history_json(root):
    runs = log_doc(root, "bad")["runs"]
    assert [r["run_id"] for r in runs] == [3]
    assert runs[0]["result"] == "failed"
    [entry] = runs[0]["targets"]
    assert entry["name"] == "bad" and entry["status"] == "failed"
    assert entry["output"].strip() == "about to fail"


def test_unknown_target_suggests(root):
    result = flowmake(root, "log", "gne")
    assert result.returncode == 2
    assert "unknown target 'gne' (did you mean 'gen'?)" in result.stderr


@pytest.mark.slow
def test_history_is_pruned_to_the_configured_number_of_builds(tmp_path):
    root = make(tmp_path, history=3)
    for n in range(1, 6):
        result = flowmake(root, "build", "-p", f"n={n}", "gen")
        assert result.returncode == 0, result.stderr
    runs = log_doc(root)["runs"]
    assert [r["run_id"] for r in runs] == [5, 4, 3]
    assert flowmake(root, "log", "2").returncode == 2
    history = log_doc(root, "gen")["runs"]
    assert [r["run_id"] for r in history] == [5, 4, 3]
    assert [r["targets"][0]["output"].strip() for r in history] == [
        "generating n=5", "generating n=4", "generating n=3"]


def test_a_fresh_build_is_recorded_too(tmp_path):
    root = make(tmp_path)
    for _ in range(2):
        assert flowmake(root, "build", "use").returncode == 0
    [latest] = log_doc(root, "--limit", "1")["runs"]
    assert latest["run_id"] == 2 and latest["result"] == "success"
    assert latest["counts"]["fresh"] == 2 and latest["counts"]["built"] == 0
    text = flowmake(root, "log", "2").stdout
    assert "no target ran: everything was fresh" in text
