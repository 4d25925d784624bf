"""`build --junit FILE`: the build as a JUnit XML report (SPEC §8).

The format GitLab (``artifacts:reports:junit``), Jenkins, Azure Pipelines and the GitHub
test-report actions read: a ``<testsuites>`` root holding one ``<testsuite
name="flowmake">``, one ``<testcase classname="flowmake" name=TARGET>`` per selected
target in build order. A failed target has ``<failure message=ERROR>`` with its captured
output as text; a skipped one ``<skipped message=REASON>``; built, restored and fresh ones
pass, their status (and output) in ``<system-out>``. Written with ElementTree, atomically,
also when the build failed or was interrupted.
"""

from __future__ import annotations

import re
import socket
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from flowmake.errors import UsageError
from flowmake.fsutil import atomic_write
from flowmake.model import OutcomeStatus, RunResult

if TYPE_CHECKING:
    from flowmake.schedule import Outcome, Summary

# ANSI escape sequences (a coloured tool's output), then what XML 1.0 cannot hold at all.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]")
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """``text`` as XML can carry it: colour codes dropped, other control characters and
    undecodable bytes (surrogate escapes) shown as U+FFFD."""
    return _NOT_XML.sub("\ufffd", _ANSI.sub("", text))


def skip_reason(outcome: Outcome, result: str) -> str:
    if outcome.error:
        return outcome.error
    if result == RunResult.INTERRUPTED:
        return "not started: the build was interrupted"
    return "not started: the build stopped after a failure (-k goes on past one)"


def _passed_text(outcome: Outcome) -> str:
    line = outcome.status if outcome.status == OutcomeStatus.FRESH \
        else f"{outcome.status} in {outcome.duration:.2f}s"
    if outcome.reasons:
        line += f" ({'; '.join(outcome.reasons)})"
    return line + "\n" + outcome.output if outcome.output else line + "\n"


def _testcase(suite: ET.Element, outcome: Outcome, result: str) -> None:
    case = ET.SubElement(suite, "testcase", classname="flowmake", name=xml_text(outcome.name),
                         time=f"{outcome.duration:.3f}")
    if outcome.status == OutcomeStatus.FAILED:
        failure = ET.SubElement(case, "failure", message=xml_text(outcome.error or "failed"),
                                type="interrupted" if outcome.error == "interrupted"
                                else "failed")
        failure.text = xml_text(outcome.output)
    elif outcome.status == OutcomeStatus.SKIPPED:
        ET.SubElement(case, "skipped", message=xml_text(skip_reason(outcome, result)))
    else:
        ET.SubElement(case, "system-out").text = xml_text(_passed_text(outcome))


def junit_xml(summary: Summary, started: float | None) -> bytes:
    """The report of one build; ``started`` the run's wall-clock start."""
    outcomes = list(summary.outcomes.values())
    counts = summary.counts()
    totals = {"tests": str(len(outcomes)), "failures": str(counts[OutcomeStatus.FAILED]),
              "errors": "0", "skipped": str(counts[OutcomeStatus.SKIPPED]),
              "time": f"{summary.duration:.3f}"}
    root = ET.Element("testsuites", {"name": "flowmake", **totals})
    when = datetime.fromtimestamp(started) if started is not None else datetime.now()
    suite = ET.SubElement(root, "testsuite", {
        "name": "flowmake", **totals, "timestamp": when.strftime("%Y-%m-%dT%H:%M:%S"),
        "hostname": xml_text(socket.gethostname()) or "localhost"})
    properties = ET.SubElement(suite, "properties")
    for name, value in (("run_id", summary.run_id), ("result", summary.result),
                        ("started", when.astimezone().isoformat(timespec="milliseconds"))):
        if value is not None:
            ET.SubElement(properties, "property", name=name, value=str(value))
    for outcome in outcomes:
        _testcase(suite, outcome, summary.result)
    ET.indent(root)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True)) + b"\n"


def check_path(path: Path) -> None:
    """Before the build: a folder, or a path under a file, cannot take the report."""
    if path.is_dir():
        raise UsageError(f"--junit {path}: is a directory", hint="name a file: --junit report.xml")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"--junit {path}: cannot write: {parent} is not a folder")
            break


def write_junit(path: Path, summary: Summary, started: float | None) -> None:
    """Write the report atomically (temporary file, rename), making its parent folders;
    a failure to write is one warning: the build's own result stands."""
    import sys

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, junit_xml(summary, started), fsync=False)
    except OSError as exc:
        print(f"flowmake: warning: --junit {path}: not written: {exc.strerror or exc}",
              file=sys.stderr)
