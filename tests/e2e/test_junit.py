"""`build --junit FILE` (SPEC §8): a JUnit XML report, valid against the JUnit schema the
CI servers read (tests/fixtures/junit.xsd), written also when the build fails or is
interrupted, atomically."""

from __future__ import annotations

import os
import signal
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

XSD = Path(__file__).parents[1] / "fixtures" / "junit.xsd"

FLOW = """
[targets.a]
cmd     = "echo making a; echo a > ${outputs}"
outputs = ["out/a.txt"]

[targets.b]
cmd     = "cat ${inputs} > ${outputs}"
inputs  = ["out/a.txt"]
outputs = ["out/b.txt"]

[targets.bad]
cmd     = "echo loading; echo 'ValueError: the table is empty' >&2; exit 3"
inputs  = ["out/a.txt"]
outputs = ["out/bad.txt"]

[targets.after]
cmd     = "cat ${inputs} > ${outputs}"
inputs  = ["out/bad.txt"]
outputs = ["out/after.txt"]
"""


@pytest.fixture(scope="module")
def schema():
    import xmlschema

    return xmlschema.XMLSchema(XSD)


def report(project, schema, rel: str = "junit.xml") -> ET.Element:
    """The report, checked against the schema and by junitparser, as an element tree."""
    import junitparser

    path = project.path(rel)
    schema.validate(str(path))
    parsed = junitparser.JUnitXml.fromfile(str(path))
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1 and suites[0].get("name") == "flowmake"
    assert [c.name for s in parsed for c in s] == [c.get("name") for c in suites[0]
                                                   .findall("testcase")]
    return suites[0]


def cases(suite: ET.Element) -> dict[str, ET.Element]:
    found = {c.get("name"): c for c in suite.findall("testcase")}
    assert all(c.get("classname") == "flowmake" for c in found.values())
    return found


def props(suite: ET.Element) -> dict[str, str]:
    return {p.get("name"): p.get("value") for p in suite.iter("property")}


def test_a_passing_build_with_built_restored_and_fresh_targets(project, schema):
    project.flow(FLOW)
    project.build("b", "--junit", "junit.xml")
    project.path("out/b.txt").unlink()
    project.run("clean", "a", check=True)
    project.edit_flow("cat ${inputs} > ${outputs}\"\ninputs  = [\"out/a.txt\"]\noutputs = [\"out/b.txt\"]",
                      "cat ${inputs} ${inputs} > ${outputs}\"\ninputs  = [\"out/a.txt\"]\n"
                      "outputs = [\"out/b.txt\"]")
    assert project.build("a", "b", "--junit", "junit.xml") == {"a": "restored", "b": "built"}
    suite = report(project, schema)
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("2", "0", "0")
    assert float(suite.get("time")) > 0 and "T" in suite.get("timestamp")
    assert props(suite)["result"] == "success" and props(suite)["run_id"] == "2"
    found = cases(suite)
    assert list(found) == ["a", "b"]  # build order
    assert found["a"].find("system-out").text.startswith("restored in ")
    assert "making a" in found["a"].find("system-out").text  # the replayed output
    assert found["b"].find("system-out").text.startswith("built in ")
    assert "command changed" in found["b"].find("system-out").text
    assert all(c.find("failure") is None and c.find("skipped") is None for c in found.values())
    assert all(float(c.get("time")) >= 0 for c in found.values())

    # A no-op build (the fast path would answer it) still writes its report: all fresh.
    assert project.build("a", "b") == {"a": "fresh", "b": "fresh"}
    assert project.build("a", "b", "--junit", "junit.xml") == {"a": "fresh", "b": "fresh"}
    found = cases(report(project, schema))
    assert [c.find("system-out").text for c in found.values()] == ["fresh\n", "fresh\n"]


def test_a_failed_build_has_its_failure_and_skipped_targets(project, schema):
    project.flow(FLOW, cache=False)
    result = project.run("build", "-k", "--junit", "reports/junit.xml")
    assert result.returncode == 1
    suite = report(project, schema, "reports/junit.xml")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped"),
            suite.get("errors")) == ("4", "1", "1", "0")
    assert props(suite)["result"] == "failed"
    found = cases(suite)
    assert list(found) == ["a", "b", "bad", "after"]
    failure = found["bad"].find("failure")
    assert failure.get("message") == "exit code 3"
    assert failure.text.splitlines() == ["loading", "ValueError: the table is empty"]
    assert found["after"].find("skipped").get("message") == "upstream 'bad' failed"
    assert found["b"].find("failure") is None

    # Without -k the build stops: what never started is skipped, saying why.
    project.run("clean", "--all", check=True)
    project.edit_flow('inputs  = ["out/a.txt"]\noutputs = ["out/b.txt"]',
                      'inputs  = ["out/bad.txt"]\noutputs = ["out/b.txt"]')
    assert project.run("build", "-j", "1", "--junit", "junit.xml").returncode == 1
    found = cases(report(project, schema))
    skipped = {n: c.find("skipped").get("message") for n, c in found.items()
               if c.find("skipped") is not None}
    assert skipped == {"b": "upstream 'bad' failed", "after": "upstream 'bad' failed"}


def test_output_that_xml_cannot_hold_still_gives_a_valid_report(project, schema):
    project.flow("""
        [targets.noisy]
        cmd     = "sh noisy.sh"
        outputs = ["out/x.txt"]
    """, {"noisy.sh": "printf '\\033[31mred\\033[0m \\001\\002 bell\\007 <tag> & \"q\" ]]>\\n'\n"
                      "printf '\\377\\n'\nexit 1\n"}, cache=False)
    assert project.run("build", "--junit", "junit.xml").returncode == 1
    failure = cases(report(project, schema))["noisy"].find("failure")
    assert failure.text.splitlines() == ['red \ufffd\ufffd bell\ufffd <tag> & "q" ]]>', "\ufffd"]


def test_written_by_rename_never_in_place(project, schema):
    project.flow(FLOW, cache=False)
    project.write("junit.xml", "old report\n")
    os.link(project.path("junit.xml"), project.path("kept.xml"))
    project.build("a", "--junit", "junit.xml")
    assert project.read("kept.xml") == "old report\n"  # the old file was replaced, not written
    assert cases(report(project, schema)).keys() == {"a"}
    assert sorted(p.name for p in project.root.iterdir() if p.name.endswith(".tmp")) == []


def test_relative_to_dash_c_and_bad_paths_are_refused_before_building(project, schema):
    project.flow(FLOW, cache=False)
    result = project.run("-C", "proj", "build", "a", "--junit", "r/junit.xml",
                         cwd=project.root.parent)
    assert result.returncode == 0, result.stderr
    assert cases(report(project, schema, "r/junit.xml")).keys() == {"a"}

    project.path("folder").mkdir()
    result = project.run("build", "b", "--junit", "folder")
    assert result.returncode == 2
    assert result.stderr.startswith("flowmake: error: --junit folder: is a directory")
    result = project.run("build", "b", "--junit", "out/a.txt/x.xml")
    assert result.returncode == 2 and "is not a folder" in result.stderr
    result = project.run("build", "-n", "b", "--junit", "j.xml")
    assert result.returncode == 2 and "-n" in result.stderr
    assert not project.exists("out/b.txt") and not project.exists("j.xml")


def test_an_interrupted_build_still_writes_its_report(project, schema):
    project.flow("""
        [targets.quick]
        cmd     = "echo q > ${outputs}"
        outputs = ["out/quick.txt"]

        [targets.slow]
        cmd     = "touch started; sleep 30; echo s > ${outputs}"
        inputs  = ["out/quick.txt"]
        outputs = ["out/slow.txt"]

        [targets.last]
        cmd     = "cat ${inputs} > ${outputs}"
        inputs  = ["out/slow.txt"]
        outputs = ["out/last.txt"]
    """, cache=False)
    proc = project.popen("build", "--junit", "junit.xml")
    project.wait_for(lambda: project.exists("started"), timeout=20, what="slow to start")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=20)
    assert proc.returncode == 130
    suite = report(project, schema)
    assert props(suite)["result"] == "interrupted"
    found = cases(suite)
    assert list(found) == ["quick", "slow", "last"]
    assert found["quick"].find("system-out").text.startswith("built in")
    failure = found["slow"].find("failure")
    assert (failure.get("message"), failure.get("type")) == ("interrupted", "interrupted")
    assert found["last"].find("skipped").get("message") == \
        "not started: the build was interrupted"


def test_interrupted_while_waiting_for_the_lock_writes_an_empty_report(project, schema):
    project.flow("""
        [targets.slow]
        cmd     = "touch started; sleep 30; echo s > ${outputs}"
        outputs = ["out/slow.txt"]
    """, cache=False)
    first = project.popen("build")
    project.wait_for(lambda: project.exists("started"), timeout=20, what="slow to start")
    waiting = project.path("waiting.txt")
    second = project.popen("build", "--junit", "junit.xml", stderr_to=waiting)
    project.wait_for(lambda: "waiting for another" in waiting.read_text(), timeout=20,
                     what="the second build to wait")
    second.send_signal(signal.SIGINT)
    second.communicate(timeout=20)
    assert second.returncode == 130
    suite = report(project, schema)
    assert suite.get("tests") == "0" and props(suite) == {
        "result": "interrupted", "started": props(suite)["started"]}
    first.send_signal(signal.SIGINT)
    first.communicate(timeout=20)
