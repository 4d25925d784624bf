"""Run from a subfolder, flowmake finds the nearest flow.toml above it (SPEC §10), as git
and DVC do; paths stay relative to the project root whatever the current folder."""

from __future__ import annotations

import json
import os
import time
from typing import Any

FLOW = """
[flow]
cache = false

[targets.copy]
cmd     = "cp ${inputs} ${outputs}"
inputs  = ["data/in.txt"]
outputs = ["out/copy.txt"]

[targets.late]
cmd     = "cat ${inputs} > ${outputs}"
inputs  = ["data/later.txt"]
outputs = ["out/late.txt"]
"""


def nested(project: Any) -> Any:
    project.flow(FLOW, {"data/in.txt": "hello\n", "data/later.txt": "l\n",
                        "sub/deeper/keep.txt": ""})
    return project.root / "sub" / "deeper"


def test_build_from_a_nested_folder_uses_the_project_root(project: Any) -> None:
    here = nested(project)
    result = project.run("build", "copy", cwd=here, check=True)
    assert "ok       copy" in result.stdout
    assert project.read("out/copy.txt") == "hello\n"  # at the root, not under sub/deeper
    assert not (here / "out").exists() and not (here / ".flowmake").exists()
    listed = json.loads(project.run("list", "--json", cwd=here, check=True).stdout)
    copy = next(t for t in listed["targets"] if t["name"] == "copy")
    assert copy["inputs"] == ["data/in.txt"] and copy["outputs"] == ["out/copy.txt"]
    status = json.loads(project.run("status", "--json", "copy", cwd=here, check=True).stdout)
    assert status["targets"][0]["state"] == "fresh"
    # The state and history are the project's: the same run seen from the root.
    log = json.loads(project.run("log", "--json", check=True).stdout)
    assert len(log["runs"]) == 1


def test_the_no_op_fast_path_finds_the_same_file(project: Any) -> None:
    here = nested(project)
    project.run("build", cwd=here, check=True)
    past = time.time() - 10
    for path in project.root.rglob("*"):
        if ".flowmake" not in path.parts:
            os.utime(path, (past, past))
    project.run("build", cwd=here, check=True)  # all fresh: saves the fast path
    result = project.run("-v", "build", cwd=here, check=True)
    assert "no-op fast path" in result.stderr, result.stderr


def test_errors_name_the_flow_file_and_its_line_from_a_subfolder(project: Any) -> None:
    here = nested(project)
    (project.root / "data/later.txt").unlink()
    result = project.run("build", "late", cwd=here)
    assert result.returncode == 2
    lines = FLOW.lstrip("\n").splitlines()
    line = next(i for i, text in enumerate(lines, 1) if text == "[targets.late]") + 2
    assert result.stderr.splitlines()[0] == (
        f"flowmake: error: flow.toml:{line}: targets.late.inputs: input 'data/later.txt'"
        " of target 'late' does not exist and no target produces it"), result.stderr


def test_the_nearest_flow_toml_wins(project: Any) -> None:
    here = nested(project)
    inner = project.root / "sub"
    (inner / "flow.toml").write_text('[targets.inner]\ncmd = "echo inner > ${outputs}"\n'
                                     'outputs = ["inner.txt"]\n')
    result = json.loads(project.run("list", "--json", cwd=here, check=True).stdout)
    assert [t["name"] for t in result["targets"]] == ["inner"]
    project.run("build", cwd=here, check=True)
    assert (inner / "inner.txt").read_text() == "inner\n"


def test_dash_c_and_dash_f_say_where_and_nothing_is_searched(project: Any) -> None:
    here = nested(project)
    result = project.run("-C", "sub", "list", check=2)
    assert result.stderr.splitlines()[0] == (
        f"flowmake: error: flow.toml: no flow.toml in {project.root / 'sub'}")
    result = project.run("-f", "nothere.toml", "list", cwd=here, check=2)
    assert "nothere.toml: no such file" in result.stderr


def test_no_flow_toml_anywhere_says_so(tmp_path: Any, make_project: Any) -> None:
    lone = make_project("lone")
    (lone.root / "a" / "b").mkdir(parents=True)
    result = lone.run("status", cwd=lone.root / "a" / "b", check=2)
    first = result.stderr.splitlines()[0]
    assert first.startswith("flowmake: error: flow.toml: no flow.toml in ")
    assert first.endswith("/a/b or any folder above it")
    assert "flowmake init" in result.stderr
