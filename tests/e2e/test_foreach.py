"""`foreach` (SPEC §10): one instance per matching file, read when flow.toml is loaded."""

from __future__ import annotations

import json
from typing import Any

FLOW = """
[flow]
cache = false

[targets.convert]
foreach = "data/raw/*.csv"
help    = "one per raw file"
cmd     = "echo ${item.name} ${item.dir} > ${outputs} && cat ${item} >> ${outputs}"
inputs  = ["${item}"]
outputs = ["out/${item.stem}.txt"]

[targets.report]
cmd     = "cat ${inputs} > ${outputs}"
inputs  = ["out/*.txt"]
deps    = ["convert"]
outputs = ["report.txt"]
"""


def raw(project: Any, *names: str) -> None:
    project.files({f"data/raw/{n}.csv": f"{n}\n" for n in names})


def test_one_instance_per_file_named_by_stem(project: Any) -> None:
    project.flow(FLOW)
    raw(project, "a", "b")
    assert project.build() == {"convert[a]": "built", "convert[b]": "built", "report": "built"}
    assert project.read("out/a.txt") == "a.csv data/raw\na\n"
    listed = json.loads(project.run("list", "--json", check=True).stdout)["targets"]
    convert = [t for t in listed if t.get("matrix") == "convert"]
    assert [(t["name"], t["item"], t["inputs"]) for t in convert] == [
        ("convert[a]", "data/raw/a.csv", ["data/raw/a.csv"]),
        ("convert[b]", "data/raw/b.csv", ["data/raw/b.csv"])]
    report = next(t for t in listed if t["name"] == "report")
    assert sorted(report["deps"]) == ["convert[a]", "convert[b]"]  # deps name the whole set


def test_a_new_file_builds_only_its_instance_and_a_removed_one_goes(project: Any) -> None:
    project.flow(FLOW)
    raw(project, "a", "b")
    project.build()
    raw(project, "c")  # the compiled flow notices the folder changed
    assert project.build() == {"convert[a]": "fresh", "convert[b]": "fresh",
                               "convert[c]": "built", "report": "built"}
    assert project.read("report.txt").count("\n") == 6
    project.path("data/raw/b.csv").unlink()
    project.path("out/b.txt").unlink()
    states = project.states()
    assert "convert[b]" not in states
    assert project.build() == {"convert[a]": "fresh", "convert[c]": "fresh", "report": "built"}
    assert "b.csv" not in project.read("report.txt")
    lock = project.read("flow.lock")
    assert '"convert[b]"' not in lock and '"convert[c]"' in lock


def test_colliding_stems_are_named_by_path(project: Any) -> None:
    project.flow("""
        [flow]
        cache = false

        [targets.t]
        foreach = ["in/**/*.txt"]
        cmd     = "cp ${item} ${outputs}"
        outputs = ["out/${item}"]
    """, {"in/x.txt": "1", "in/sub/x.txt": "2", "in/y.txt": "3"})
    assert set(project.build()) == {"t[in/x.txt]", "t[in/sub/x.txt]", "t[y]"}
    assert project.read("out/in/sub/x.txt") == "2"


def test_foreach_and_matrix_combine(project: Any) -> None:
    project.flow("""
        [flow]
        cache = false

        [targets.fit]
        foreach = "data/*.csv"
        matrix  = { lr = [0.1, 0.01] }
        params  = { src = "${item.stem}" }
        cmd     = "echo ${src} ${lr} > ${outputs}"
        outputs = ["models/${item.stem}-${lr}.txt"]

        [targets.best]
        cmd     = "cat ${inputs} > ${outputs}"
        inputs  = ["models/*.txt"]
        outputs = ["best.txt"]
    """, {"data/a.csv": "", "data/b.csv": ""})
    assert set(project.build()) == {"fit[a,lr=0.1]", "fit[a,lr=0.01]", "fit[b,lr=0.1]",
                                    "fit[b,lr=0.01]", "best"}
    assert project.read("models/b-0.01.txt") == "b 0.01\n"
    instances = ("fit[a,lr=0.1]", "fit[a,lr=0.01]", "fit[b,lr=0.1]", "fit[b,lr=0.01]")
    assert project.build("fit") == dict.fromkeys(instances, "fresh")
    graph = json.loads(project.run("graph", "--format", "json", check=True).stdout)
    assert {n["name"] for n in graph["nodes"] if n.get("matrix") == "fit"} == set(instances)


def test_status_graph_and_selection_see_the_set(project: Any) -> None:
    project.flow(FLOW)
    raw(project, "a", "b")
    project.build()
    text = project.run("status", "report", check=True).stdout
    assert "convert[a]: fresh" in text and "convert[b]: fresh" in text
    assert set(project.build("convert")) == {"convert[a]", "convert[b]"}
    mermaid = project.run("graph", "--format", "mermaid", check=True).stdout
    group = mermaid.split('subgraph m', 1)[1].split("end", 1)[0]  # grouped like a matrix
    assert '"convert"]' in group and "convert[a]" in group and "convert[b]" in group


def test_foreach_errors_are_exit_2_naming_the_key(project: Any) -> None:
    project.flow(FLOW)
    result = project.run("status")  # no file yet
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == (
        "flowmake: error: flow.toml:5: targets.convert.foreach: matches no file"
        " (data/raw/*.csv)")
    assert "hint:" in result.stderr
    project.flow(FLOW.replace('foreach = "data/raw/*.csv"', "foreach = 3"))
    result = project.run("status")
    assert result.returncode == 2
    assert "targets.convert.foreach: expected an array of strings, got an integer" in \
        result.stderr
    project.flow(FLOW.replace("${item.stem}", "${item.stemm}"))
    raw(project, "a")
    result = project.run("status")
    assert "unknown reference '${item.stemm}' (did you mean '${item.stem}'?)" in result.stderr


def test_the_instance_count_is_bounded_before_expanding(project: Any) -> None:
    values = ", ".join(str(i) for i in range(1000))
    project.flow(f"""
        [targets.t]
        foreach = "d/*.txt"
        matrix  = {{ i = [{values}] }}
        cmd     = "true"
    """)
    project.files({f"d/{i}.txt": "" for i in range(101)})  # 101 x 1,000 > 100,000
    result = project.run("status")
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == (
        "flowmake: error: flow.toml:3: targets.t.matrix: expands to 101,000 instances;"
        " at most 100,000 are allowed")
