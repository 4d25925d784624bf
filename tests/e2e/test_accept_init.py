"""`flowmake accept` (record as fresh without running) and `flowmake init` (starter file)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    import tomli as tomllib

FLOW = """
[flow]
cache = false   # states here are fresh or stale: nothing is restorable

[targets.gen]
cmd     = "echo generated > ${outputs}"
outputs = ["out/gen.txt"]

[targets.fmt]
cmd     = "tr a-z A-Z < ${inputs} > ${outputs}"
inputs  = ["out/gen.txt"]
outputs = ["out/fmt.txt"]

[targets.part]
matrix  = { k = [1, 2] }
cmd     = "echo part ${k} > ${outputs}"
outputs = ["out/part-${k}.txt"]
"""


def flowmake(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "flowmake", "-C", str(root), *args],
                          capture_output=True, text=True, env=env, timeout=120)


def states(root: Path) -> dict[str, tuple[str, list[str]]]:
    result = flowmake(root, "status", "--json")
    return {t["name"]: (t["state"], t["reasons"]) for t in json.loads(result.stdout)["targets"]}


def run_ids(root: Path) -> list[int]:
    return [r["run_id"] for r in json.loads(flowmake(root, "log", "--json").stdout)["runs"]]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "flow.toml").write_text(textwrap.dedent(FLOW))
    return tmp_path


@pytest.fixture
def built(root: Path) -> Path:
    assert flowmake(root, "build").returncode == 0
    return root


# -- accept -----------------------------------------------------------------------------


def test_accept_after_a_cosmetic_change(built):
    flow = built / "flow.toml"
    flow.write_text(flow.read_text().replace("tr a-z A-Z <", "tr 'a-z' 'A-Z' <"))
    assert states(built)["fmt"] == ("stale", ["command changed"])
    before = (built / "out" / "fmt.txt").stat().st_mtime_ns

    result = flowmake(built, "accept", "fmt")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "accepted fmt\n"
    assert states(built)["fmt"] == ("fresh", [])
    # Nothing ran: the output is the very same file, and the next build finds it fresh.
    assert (built / "out" / "fmt.txt").stat().st_mtime_ns == before
    doc = json.loads(flowmake(built, "build", "--json").stdout)
    assert {t["status"] for t in doc["targets"]} == {"fresh"}


def test_accept_adopts_outputs_made_by_hand(root):
    (root / "out").mkdir()
    (root / "out" / "gen.txt").write_text("made by hand\n")
    assert states(root)["gen"] == ("stale", ["never built"])
    assert flowmake(root, "accept", "gen").returncode == 0
    assert states(root)["gen"] == ("fresh", [])
    # A later edit of the accepted output is noticed like any other.
    (root / "out" / "gen.txt").write_text("edited\n")
    assert states(root)["gen"] == ("stale", ["output modified: out/gen.txt"])


def test_accept_is_kept_in_the_history(built):
    assert flowmake(built, "accept", "part").returncode == 0
    latest = json.loads(flowmake(built, "log", "--json", "--limit", "1").stdout)["runs"][0]
    assert latest["command"] == "flowmake accept part"
    assert latest["counts"]["accepted"] == 2 and latest["counts"]["built"] == 0
    entries = json.loads(flowmake(built, "log", str(latest["run_id"]), "--json").stdout)
    assert {t["name"]: t["status"] for t in entries["runs"][0]["targets"]} == {
        "part[k=1]": "accepted", "part[k=2]": "accepted"}


def test_accept_a_whole_matrix(built):
    for k in (1, 2):
        (built / "out" / f"part-{k}.txt").write_text(f"retouched {k}\n")
    assert {n: s for n, (s, _) in states(built).items() if n.startswith("part")} == {
        "part[k=1]": "stale", "part[k=2]": "stale"}
    result = flowmake(built, "accept", "part")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["accepted part[k=1]", "accepted part[k=2]"]
    assert {s for s, _ in states(built).values()} == {"fresh"}


def test_missing_output_cannot_be_accepted(built):
    (built / "out" / "fmt.txt").unlink()
    runs = run_ids(built)
    result = flowmake(built, "accept", "fmt")
    assert result.returncode == 2
    assert "cannot accept 'fmt': output 'out/fmt.txt' is missing" in result.stderr
    assert "Traceback" not in result.stderr
    assert states(built)["fmt"] == ("stale", ["output missing: out/fmt.txt"])
    assert run_ids(built) == runs  # no history entry for a refused accept


def test_missing_input_cannot_be_accepted(root):
    result = flowmake(root, "accept", "fmt")
    assert result.returncode == 2
    assert "cannot accept 'fmt': input 'out/gen.txt' does not exist" in result.stderr


def test_one_bad_target_means_none_is_accepted(built):
    flow = built / "flow.toml"
    flow.write_text(flow.read_text().replace("echo part", "echo PART"))
    (built / "out" / "fmt.txt").unlink()
    result = flowmake(built, "accept", "part", "fmt")
    assert result.returncode == 2
    assert {s for n, (s, _) in states(built).items() if n.startswith("part")} == {"stale"}


def test_accept_unknown_target(built):
    result = flowmake(built, "accept", "fnt")
    assert result.returncode == 2
    assert "unknown target 'fnt' (did you mean 'fmt'?)" in result.stderr


# -- init -------------------------------------------------------------------------------


def test_init_writes_a_commented_starter_that_builds(tmp_path):
    result = flowmake(tmp_path, "init")
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "flow.toml").read_text()
    assert sum(line.lstrip().startswith("#") for line in text.splitlines()) >= 15
    doc = tomllib.loads(text)
    assert set(doc["targets"]) == {"numbers", "report"}
    listed = json.loads(flowmake(tmp_path, "list", "--json").stdout)["targets"]
    assert [t["name"] for t in listed] == ["numbers", "report"]
    assert all(t["help"] for t in listed)
    build = flowmake(tmp_path, "build")
    assert build.returncode == 0, build.stderr
    assert (tmp_path / "out" / "report.txt").read_text() == "sum: 55\n"
    assert flowmake(tmp_path, "-p", "count=4", "build").returncode == 0
    assert (tmp_path / "out" / "report.txt").read_text() == "sum: 10\n"


def test_init_never_overwrites(tmp_path):
    (tmp_path / "flow.toml").write_text("# mine\n")
    result = flowmake(tmp_path, "init")
    assert result.returncode == 2
    assert "flow.toml already exists; not overwriting it" in result.stderr
    assert (tmp_path / "flow.toml").read_text() == "# mine\n"


def test_init_in_a_new_folder_and_under_another_name(tmp_path):
    target = tmp_path / "new" / "project"
    env = {**os.environ, "NO_COLOR": "1"}
    result = subprocess.run([sys.executable, "-m", "flowmake", "-C", str(target), "init"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (target / "flow.toml").is_file()
    assert flowmake(tmp_path, "-f", "pipeline.toml", "init").returncode == 0
    assert flowmake(tmp_path, "-f", "pipeline.toml", "list").returncode == 0
    assert flowmake(tmp_path, "-f", "pipeline.toml", "init").returncode == 2
