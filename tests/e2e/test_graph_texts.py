"""`graph --format json` keeps the parts of its document that only the compiled flow
decides in ``.flowmake/graph.texts`` (cli/graphtexts.py): the document made from them is
the one made without them; an edited flow, a damaged file or another flow's file is
never used; a resident server keeps the file decoded for its forks."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from tests.conftest import Project
from tests.e2e.test_resident import start_server

FLOW = """
[params]
rate = 0.5

[targets.src]
help = 'naïve "quoted" \\ back\tslash ✓'
cmd = "echo ${params.rate} > ${outputs}"
outputs = ["out/src.txt"]

[targets.fit]
matrix = { k = [1, 2] }
cmd = "cat ${inputs} > ${outputs} && echo ${k} >> ${outputs}"
inputs = ["out/src.txt"]
outputs = ["out/fit-${k}.txt"]

[targets.join]
cmd = "cat ${inputs} > ${outputs}"
inputs = ["out/fit-1.txt", "out/fit-2.txt"]
outputs = ["out/join.txt"]

[targets.stamp]
cmd = "date > ${outputs}"
outputs = ["out/stamp.txt"]
always = true
"""

IN_PROCESS = {"FLOWMAKE_RESIDENT": "0"}


def texts(project: Project) -> Path:
    return project.root / ".flowmake" / "graph.texts"


def graph(project: Project, *args: str, env: dict[str, str | None] | None = None) -> str:
    return project.run("graph", "--format", "json", *args, check=True,
                       env={**IN_PROCESS, **(env or {})}).stdout


def age(project: Project) -> None:
    """Every file past the racy window: the compiled flow is trusted, not parsed again."""
    old = time.time() - 60
    for path in [project.root, *project.root.rglob("*")]:
        os.utime(path, (old, old))


def built(project: Project) -> Project:
    project.flow(FLOW)
    project.run("build", check=True, env=IN_PROCESS)
    age(project)
    return project


def test_the_saved_parts_give_the_document_made_without_them(project: Project) -> None:
    built(project)
    made = graph(project)  # the parts made, and saved
    saved = texts(project).stat()
    assert graph(project) == made  # the parts read back
    assert texts(project).stat().st_mtime_ns == saved.st_mtime_ns  # used, not made again
    doc = json.loads(made)
    by_name = {n["name"]: n for n in doc["nodes"]}
    assert by_name["src"]["help"] == 'naïve "quoted" \\ back\tslash ✓'
    assert by_name["src"]["params"] == {"params.rate": 0.5}
    assert by_name["join"]["inputs"] == ["out/fit-1.txt", "out/fit-2.txt"]
    assert by_name["join"]["depth"] == 2 and by_name["join"]["upstream"] == [
        "fit[k=1]", "fit[k=2]"]
    assert by_name["stamp"]["always"] is True and by_name["stamp"]["display"] == "always"
    assert by_name["src"]["always"] is False and by_name["src"]["display"] == "fresh"
    assert by_name["src"]["last_built"]["run_id"] >= 1
    assert {(e["from"], e["to"]) for e in doc["edges"]} == {
        ("src", "fit[k=1]"), ("src", "fit[k=2]"), ("fit[k=1]", "join"), ("fit[k=2]", "join")}
    # Every target named: the same document, from the same parts.
    assert graph(project, *by_name) == made
    # A selection is made without them: its own upstream and depths.
    part = json.loads(graph(project, "fit[k=1]"))
    assert [n["name"] for n in part["nodes"]] == ["src", "fit[k=1]"]
    assert part["nodes"][1]["downstream"] == [] and part["edges"] == [
        {"from": "src", "to": "fit[k=1]"}]


def test_the_states_and_records_are_each_commands_own(project: Project) -> None:
    built(project)
    graph(project)
    project.edit_flow("echo ${params.rate}", "echo ${params.rate} again")  # src stale
    age(project)
    doc = json.loads(graph(project))
    by_name = {n["name"]: n for n in doc["nodes"]}
    assert by_name["src"]["state"] == "stale" and by_name["src"]["reasons"]
    assert by_name["src"]["action"] == "echo 0.5 again > out/src.txt"
    before = by_name["join"]["last_built"]["run_id"]
    project.run("build", check=True, env=IN_PROCESS)
    age(project)
    doc = json.loads(graph(project))
    by_name = {n["name"]: n for n in doc["nodes"]}
    assert by_name["src"]["state"] == "fresh"
    assert by_name["join"]["last_built"]["run_id"] > before


def test_an_edited_flow_gets_its_own_parts(project: Project) -> None:
    built(project)
    graph(project)
    project.edit_flow("help = 'naïve", "help = 'edited, naïve")
    age(project)
    doc = json.loads(graph(project))
    assert {n["name"]: n for n in doc["nodes"]}["src"]["help"].startswith("edited, naïve")
    project.edit_flow('[targets.stamp]', '[targets.extra]\ncmd = "true"\n\n[targets.stamp]')
    age(project)
    doc = json.loads(graph(project))
    assert "extra" in {n["name"] for n in doc["nodes"]}
    assert json.loads(graph(project)) == doc


def test_a_damaged_or_foreign_file_is_not_used_and_is_made_again(project: Project,
                                                                 tmp_path: Path) -> None:
    built(project)
    good = graph(project)
    data = texts(project).read_bytes()
    body_at = data.index(b"\n") + 1
    flipped = bytearray(data)
    flipped[body_at + 40] ^= 0x01  # a node's text, one bit
    other = Project(tmp_path / "other")  # the same shape, another help text
    built(other).edit_flow("help = 'naïve", "help = 'other")
    age(other)
    graph(other)
    damages = {"one bit": bytes(flipped), "cut short": data[:len(data) // 2],
               "no header": data[body_at:], "empty": b"",
               "not ascii": data[:body_at] + "é".encode() + data[body_at + 2:],
               "another flow's": texts(other).read_bytes()}
    for what, damaged in damages.items():
        texts(project).write_bytes(damaged)
        assert graph(project) == good, what
        assert texts(project).read_bytes() == data, what  # made again, as it was
    shutil.rmtree(project.root / ".flowmake")  # no state at all: parsed, built, shown
    project.run("build", check=True, env=IN_PROCESS)
    assert json.loads(graph(project))["counts"] == json.loads(good)["counts"]


TRACE = {"FLOWMAKE_TRACE": "resident", "FLOWMAKE_RESIDENT": None}


def served(project: Project, in_process: str, kept: str) -> None:
    """A resident server started: its forks print ``in_process``, the second one with the
    file ``kept`` as the server decoded it (the first fork reads the file)."""
    start_server(project)
    for _ in range(2):
        result = project.run("graph", "--format", "json", check=True, env=TRACE)
        assert result.stdout == in_process
    assert f"{kept} as the server decoded it" in result.stderr


def test_a_resident_fork_gets_the_parts_decoded(project: Project) -> None:
    built(project)
    served(project, graph(project), "graph.texts")
    project.edit_flow("help = 'naïve", "help = 'resident, naïve")
    age(project)
    result = project.run("graph", "--format", "json", check=True, env=TRACE)
    assert "graph.texts as the server decoded it" not in result.stderr
    assert '"help": "resident, na\\u00efve' in result.stdout
