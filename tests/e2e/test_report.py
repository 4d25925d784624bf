"""`flowmake report [RUN_ID] [-o FILE]` (SPEC §8): the page's data and the command's
errors. The page in a browser: test_report_browser.py."""

from __future__ import annotations

import json
import re

FLOW = """
[targets.a]
cmd     = "sleep 0.3; echo a > ${outputs}"
outputs = ["out/a.txt"]

[targets.b]
cmd     = "sleep 0.2; cat ${inputs} > ${outputs}"
inputs  = ["out/a.txt"]
outputs = ["out/b.txt"]

[targets.c]
cmd     = "sleep 0.4; echo c > ${outputs}"
outputs = ["out/c.txt"]

[targets.bad]
cmd     = "echo loading; echo '</script><b>ValueError</b>' >&2; exit 3"
inputs  = ["out/b.txt"]
outputs = ["out/bad.txt"]
"""


def page_data(html: str) -> dict:
    match = re.search(r'<script id="flowmake-data" type="application/json">(.*?)</script>',
                      html, re.S)
    assert match, "no data in the page"
    return json.loads(match.group(1))


def test_the_latest_build_by_default_with_lanes_history_and_failures(project):
    project.flow(FLOW)
    project.run("build", "-k", "-j", "2", check=1)
    project.run("build", "-k", "-j", "2", "-B", "a", "b", "c", check=0)
    project.run("clean", "c", check=True)
    project.run("build", "-k", "-j", "2", check=1)
    result = project.run("report", check=True)
    assert result.stderr == "flowmake: wrote flowmake-report.html (run 3, failed, 2 targets that ran)\n"
    html = project.read("flowmake-report.html")
    assert "</script><b>" not in html  # the output cannot end the data's script
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in html
    doc = page_data(html)
    assert doc["run"]["run_id"] == 3 and doc["run"]["result"] == "failed"
    targets = {t["name"]: t for t in doc["targets"]}
    assert {n: t["status"] for n, t in targets.items()} == {"c": "restored", "bad": "failed"}
    assert targets["bad"]["output"].split("\n") == ["loading", "</script><b>ValueError</b>"]
    assert targets["bad"]["error"] == "exit code 3"
    # Each target's recent builds, oldest first, this one last: [run, duration, status].
    assert [h[0] for h in targets["c"]["history"]] == [1, 2, 3]
    assert [h[2] for h in targets["c"]["history"]] == ["b", "b", "r"]
    assert [h[0] for h in targets["bad"]["history"]] == [1, 3]

    first = page_data(project.run("report", "1", "-o", "r/one.html", check=True) and
                      project.read("r/one.html"))
    lines = {t["name"]: t for t in first["targets"]}
    assert set(lines) == {"a", "b", "c", "bad"}
    assert first["lanes"] == 2  # -j 2: two slots
    assert lines["b"]["started"] >= lines["a"]["finished"]
    assert lines["a"]["lane"] != lines["c"]["lane"]  # they ran side by side
    for t in lines.values():
        assert first["t0"] <= t["started"] <= t["finished"] <= first["t1"]
    assert project.run("report", "-", "-o", "latest.html", check=True).returncode == 0
    assert page_data(project.read("latest.html"))["run"]["run_id"] == 3


def test_report_errors_are_one_line(project):
    project.flow(FLOW)
    result = project.run("report")
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == "flowmake: error: no build recorded yet"
    project.run("build", "a", check=True)
    result = project.run("report", "7")
    assert result.returncode == 2 and "no build 7 in the history" in result.stderr
    result = project.run("report", "latest")
    assert result.returncode == 2 and "RUN_ID must be a build's number or -" in result.stderr
    project.path("somedir").mkdir()
    result = project.run("report", "-o", "somedir")
    assert result.returncode == 2 and "is a directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_no_op_build_gives_a_page_that_says_nothing_ran(project):
    project.flow(FLOW)
    project.run("build", "a", check=True)
    project.run("build", "a", check=True)
    project.run("report", "-q", check=True)
    doc = page_data(project.read("flowmake-report.html"))
    assert doc["targets"] == [] and doc["lanes"] == 0
    assert doc["run"]["counts"]["fresh"] == 1
