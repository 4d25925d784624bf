"""`[flow] include` (SPEC §10): targets and params from more files, names unique across
them, paths relative to the project root, errors naming the file and line."""

from __future__ import annotations

import json
from typing import Any

FLOW = """
[flow]
cache   = false
include = ["flows/*.toml"]

[params]
greeting = "hi"

[targets.base]
cmd     = "echo ${params.greeting} > ${outputs}"
outputs = ["out/base.txt"]
"""

STAGE = """
[params]
times = 2

[targets.stage]
cmd     = "cat ${inputs} ${inputs} > ${outputs} && echo ${params.times} >> ${outputs}"
inputs  = ["out/base.txt"]
outputs = ["out/stage.txt"]
"""


def test_targets_and_params_come_from_included_files(project: Any) -> None:
    project.flow(FLOW, {"flows/stage.toml": STAGE})
    assert project.build() == {"base": "built", "stage": "built"}
    assert project.read("out/stage.txt") == "hi\nhi\n2\n"  # paths from the project root
    project.write("flows/stage.toml", STAGE.replace("times = 2", "times = 3"))
    assert project.build() == {"base": "fresh", "stage": "built"}
    project.write("flows/more.toml", '[targets.more]\ncmd = "echo ${params.times} > ${outputs}"'
                                     '\noutputs = ["out/more.txt"]\n')
    assert project.build() == {"base": "fresh", "stage": "fresh", "more": "built"}
    assert project.read("out/more.txt") == "3\n"  # params are shared across files
    project.path("flows/more.toml").unlink()
    assert set(project.states()) == {"base", "stage"}


def test_a_duplicate_name_names_both_files_and_lines(project: Any) -> None:
    project.flow(FLOW, {"flows/stage.toml": STAGE,
                        "flows/zz.toml": "\n\n[targets.stage]\ncmd = 'true'\n"})
    result = project.run("status")
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == (
        "flowmake: error: flows/zz.toml:3: targets.stage: target 'stage' is also declared"
        " in flows/stage.toml:5")
    project.write("flows/zz.toml", "[params]\ngreeting = 'yo'\n")
    result = project.run("status")
    assert result.stderr.splitlines()[0] == (
        "flowmake: error: flows/zz.toml:2: params.greeting: param 'greeting' is also declared"
        " in flow.toml:6")


def test_errors_in_an_included_file_name_it_and_its_line(project: Any) -> None:
    project.flow(FLOW, {"flows/stage.toml": STAGE.replace('outputs = ["out/stage.txt"]',
                                                          'outputs = "out/stage.txt"')})
    result = project.run("build")
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == (
        "flowmake: error: flows/stage.toml:8: targets.stage.outputs: expected an array of"
        " strings, got a string")
    project.write("flows/stage.toml", "[targets.x\n")
    result = project.run("build")
    assert result.stderr.splitlines()[0].startswith(
        "flowmake: error: flows/stage.toml:1: invalid TOML")
    project.write("flows/stage.toml", "[flow]\njobs = 2\n")
    result = project.run("build")
    assert result.stderr.splitlines()[0] == (
        "flowmake: error: flows/stage.toml:1: flow: unknown key: an included file holds"
        " [params] and [targets.*] only")
    assert "[flow] settings belong in flow.toml" in result.stderr


def test_an_error_found_after_loading_names_the_included_file(project: Any) -> None:
    project.flow(FLOW, {"flows/stage.toml": STAGE.replace("out/base.txt", "missing.txt")})
    result = project.run("build")
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == (
        "flowmake: error: flows/stage.toml:7: targets.stage.inputs: input 'missing.txt' of"
        " target 'stage' does not exist and no target produces it")


def test_a_named_include_must_exist_and_a_glob_may_match_nothing(project: Any) -> None:
    project.flow(FLOW.replace('include = ["flows/*.toml"]', 'include = ["flows/one.toml"]'))
    result = project.run("status")
    assert result.returncode == 2
    assert "flow.toml:3: flow.include: 'flows/one.toml': no such file" in result.stderr
    project.flow(FLOW)
    assert set(project.states()) == {"base"}


def test_list_and_the_lock_hold_every_file_s_targets(project: Any) -> None:
    project.flow(FLOW, {"flows/stage.toml": STAGE})
    project.build()
    names = [t["name"] for t in json.loads(project.run("list", "--json").stdout)["targets"]]
    assert names == ["base", "stage"]
    assert "[targets.stage]" in project.read("flow.lock")
