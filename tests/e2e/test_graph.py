"""`flowmake graph`: text tree, Mermaid, dot (parsed with pydot), JSON and the HTML page."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pydot
import pytest

# pydot's parser uses pyparsing names that newer pyparsing deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pydot")

HOSTILE_HELP = "Fetch </script><script>alert(1)</script> & <b>more</b>"
FLOW = f"""
[targets.raw]
help    = "{HOSTILE_HELP}"
cmd     = "echo raw > ${{outputs}}"
outputs = ["data/raw.txt"]

[targets.clean]
cmd     = "cat ${{inputs}} > ${{outputs}}"
inputs  = ["data/raw.txt"]
outputs = ["data/clean.txt"]

[targets.fit]
matrix  = {{ k = [1, 2] }}
cmd     = "echo ${{k}} | cat - ${{inputs}} > ${{outputs}}"
inputs  = ["data/clean.txt"]
outputs = ["models/fit-${{k}}.txt"]

[targets.report]
cmd     = "cat ${{inputs}} > ${{outputs}}"
inputs  = ["models/fit-*.txt", "data/raw.txt"]
outputs = ["report.txt"]

[targets.lint]
cmd     = "true"
always  = true
"""
NAMES = {"raw", "clean", "fit[k=1]", "fit[k=2]", "report", "lint"}
EDGES = {("raw", "clean"), ("clean", "fit[k=1]"), ("clean", "fit[k=2]"),
         ("fit[k=1]", "report"), ("fit[k=2]", "report"), ("raw", "report")}


def flowmake(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "flowmake", "-C", str(root), *args],
                          capture_output=True, text=True, env=env, timeout=120)


def graph(root: Path, *args: str) -> str:
    result = flowmake(root, "graph", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "flow.toml").write_text(textwrap.dedent(FLOW))
    return tmp_path


def test_text_tree(root):
    assert graph(root) == textwrap.dedent("""\
        report
        ├── fit[k=1]
        │   └── clean
        │       └── raw
        ├── fit[k=2]
        │   └── clean (upstream drawn above)
        └── raw
        lint
        """)
    assert graph(root, "clean") == "clean\n└── raw\n"


def parse_mermaid(text: str) -> tuple[dict[str, str], set[tuple[str, str]], dict[str, list[str]]]:
    """(id -> label, edges by label, subgraph label -> member labels), checking each line."""
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    labels: dict[str, str] = {}
    edges: list[tuple[str, str]] = []
    groups: dict[str, list[str]] = {}
    group: str | None = None
    for line in lines[1:]:
        if m := re.fullmatch(r"\s*subgraph (\w+)\[\"([^\"]*)\"\]", line):
            group = m.group(2)
            groups[group] = []
        elif line.strip() == "end":
            group = None
        elif m := re.fullmatch(r"\s*(\w+)\[\"([^\"]*)\"\]", line):
            assert m.group(1) not in labels, f"declared twice: {line}"
            labels[m.group(1)] = m.group(2)
            if group is not None:
                groups[group].append(m.group(2))
        elif m := re.fullmatch(r"\s*(\w+) --> (\w+)", line):
            edges.append((m.group(1), m.group(2)))
        else:
            raise AssertionError(f"unexpected mermaid line: {line!r}")
    assert group is None, "unclosed subgraph"
    assert all(a in labels and b in labels for a, b in edges), "edge to an undeclared node"
    return labels, {(labels[a], labels[b]) for a, b in edges}, groups


def test_mermaid(root):
    labels, edges, groups = parse_mermaid(graph(root, "--format", "mermaid"))
    assert set(labels.values()) == NAMES
    assert edges == EDGES
    assert groups == {"fit": ["fit[k=1]", "fit[k=2]"]}


def test_mermaid_selection(root):
    labels, edges, groups = parse_mermaid(graph(root, "fit[k=2]", "--format", "mermaid"))
    assert set(labels.values()) == {"raw", "clean", "fit[k=2]"}
    assert groups == {"fit": ["fit[k=2]"]}
    assert edges == {("raw", "clean"), ("clean", "fit[k=2]")}


def dot_name(node: pydot.Node | str) -> str:
    name = node if isinstance(node, str) else node.get_name()
    return name[1:-1] if name.startswith('"') else name


def test_dot_parses_with_every_node_and_edge(root):
    text = graph(root, "--format", "dot")
    [dot] = pydot.graph_from_dot_data(text)
    assert dot.get_type() == "digraph"
    nodes = {dot_name(n) for n in dot.get_nodes()} - {"node"}
    [cluster] = dot.get_subgraphs()
    members = {dot_name(n) for n in cluster.get_nodes()}
    assert cluster.get_name() == "cluster_0" and cluster.get_label() == '"fit"'
    assert members == {"fit[k=1]", "fit[k=2]"}
    assert nodes | members == NAMES
    assert {(dot_name(e.get_source()), dot_name(e.get_destination()))
            for e in dot.get_edges()} == EDGES
    raw = next(n for n in dot.get_nodes() if dot_name(n) == "raw")
    assert "alert(1)" in raw.get("tooltip")


def json_doc(root: Path, *args: str) -> dict:
    return json.loads(graph(root, "--format", "json", *args))


def test_json_structure_and_states(root):
    assert flowmake(root, "build", "clean").returncode == 0
    doc = json_doc(root)
    nodes = {n["name"]: n for n in doc["nodes"]}
    assert set(nodes) == NAMES
    assert {(e["from"], e["to"]) for e in doc["edges"]} == EDGES
    order = [n["name"] for n in doc["nodes"]]  # upstream first
    assert all(order.index(a) < order.index(b) for a, b in EDGES)
    assert {n: nodes[n]["depth"] for n in NAMES} == {
        "raw": 0, "clean": 1, "fit[k=1]": 2, "fit[k=2]": 2, "report": 3, "lint": 0}
    assert {n: nodes[n]["state"] for n in NAMES} == {
        "raw": "fresh", "clean": "fresh", "fit[k=1]": "stale", "fit[k=2]": "stale",
        "report": "stale", "lint": "stale"}
    assert doc["counts"] == {"fresh": 2, "stale": 4, "restorable": 0}
    assert nodes["fit[k=1]"]["reasons"] == ["never built"]
    assert nodes["fit[k=1]"]["matrix"] == "fit" and nodes["fit[k=1]"]["params"] == {"k": 1}
    assert nodes["lint"]["reasons"] == ["never built", "always"]
    assert nodes["clean"]["last_run"]["status"] == "built"
    assert nodes["clean"]["last_run"]["run_id"] == 1
    assert nodes["clean"]["last_built"]["duration"] >= 0
    assert nodes["report"]["last_run"] is None and nodes["report"]["last_built"] is None
    assert sorted(nodes["clean"]["downstream"]) == ["fit[k=1]", "fit[k=2]"]
    assert nodes["raw"]["help"] == HOSTILE_HELP


def test_json_after_a_change_upstream(root):
    assert flowmake(root, "build").returncode == 0
    (root / "data" / "clean.txt").write_text("tampered\n")
    nodes = {n["name"]: n for n in json_doc(root)["nodes"]}
    assert nodes["raw"]["state"] == "fresh"
    assert nodes["clean"]["reasons"] == ["output modified: data/clean.txt"]
    # clean is restorable: a build puts back its recorded output, so fit is judged on
    # that and stays fresh (it would not rerun).
    assert nodes["clean"]["state"] == "restorable"
    assert nodes["fit[k=1]"]["state"] == "fresh"
    assert nodes["fit[k=1]"]["reasons"] == []
    assert nodes["report"]["state"] == "fresh"  # likewise, downstream of fit


def embedded_data(page: str) -> dict:
    m = re.search(r'<script id="flowmake-data" type="application/json">(.*?)</script>', page, re.S)
    assert m, "no embedded data"
    return json.loads(m.group(1))


def test_html_is_self_contained_and_carries_the_states(root):
    assert flowmake(root, "build", "raw").returncode == 0
    result = flowmake(root, "graph", "--format", "html", "-o", "site/graph.html")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and "wrote" in result.stderr
    page = (root / "site" / "graph.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    # Nothing from the network: no external scripts, styles, fonts or images.
    assert not re.search(r"<(script|link|img|iframe)[^>]*\b(src|href)=", page)
    assert "@import" not in page and "url(http" not in page
    assert set(re.findall(r"https?://[^\s\"')]+", page)) <= {"http://www.w3.org/2000/svg"}
    assert "{{" not in page and "/*{{" not in page  # every marker filled in
    # The data survives a hostile help text without breaking out of its <script>.
    assert "</script><script>alert(1)" not in page
    data = embedded_data(page)
    assert data == {**json_doc(root), "nodes": data["nodes"]}
    nodes = {n["name"]: n for n in data["nodes"]}
    assert nodes["raw"]["help"] == HOSTILE_HELP
    assert nodes["raw"]["state"] == "fresh" and nodes["clean"]["state"] == "stale"


def test_output_file_for_text_formats(root):
    result = flowmake(root, "graph", "--format", "dot", "-o", "g.dot")
    assert result.returncode == 0 and result.stdout == ""
    [dot] = pydot.graph_from_dot_data((root / "g.dot").read_text())
    assert len(dot.get_edges()) == len(EDGES)


def test_unknown_target_and_format(root):
    result = flowmake(root, "graph", "claen")
    assert result.returncode == 2 and "did you mean 'clean'" in result.stderr
    result = flowmake(root, "graph", "--format", "png")
    assert result.returncode == 2 and "invalid choice: 'png'" in result.stderr
